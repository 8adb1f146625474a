// The kernel's identity map of physical memory.
//
// boot/entry.asm maps the first 4 GiB with 2 MiB pages. extend_identity_map() maps the rest
// of RAM (1 GiB pages when the CPU has them, else 2 MiB pages in page directories taken from
// the physical memory manager) and makes the LAPIC/IOAPIC window uncacheable. Everything the
// kernel touches is reached through this map: virtual address == physical address.
#pragma once

#include <stdint.h>

namespace x86::paging {

// Maps [4 GiB, top) as well (top is capped at 512 GiB, one PDPT). Returns the mapped limit.
uint64_t extend_identity_map(uint64_t top);
// Unmaps physical page 0 so that a null-pointer access faults: the first 2 MiB are split into
// 4 KiB pages (one page table from the memory manager). Call once the BIOS data area has been
// read (acpi::init). Returns false when no page was available (then nothing changes).
bool protect_null_page();
// First address above the identity map.
uint64_t mapped_limit();
inline bool is_mapped(uint64_t pa, uint64_t len) { return pa + len >= pa && pa + len <= mapped_limit(); }
// The PML4 every CPU uses (CR3 value, below 4 GiB).
uint64_t kernel_cr3();

}  // namespace x86::paging
