// The physical memory manager: 4 KiB frames and 2 MiB blocks from the multiboot2 memory map.
//
// A bitmap with one bit per 4 KiB frame (1 = in use) covers physical memory up to the end of
// the highest usable range. At init every frame is "in use"; the frames of usable ranges are
// then released, except the low 1 MiB (firmware data, the AP trampoline), the kernel image,
// the boot information, the modules and the bitmap itself; ranges of any other type are
// marked in use again where they overlap (the firmware's word wins). The bitmap sits in
// usable memory below 4 GiB, inside the boot identity map.
//
// Allocation is first-fit under one spinlock; 2 MiB blocks are 2 MiB aligned. Pages come
// back zeroed when asked. All addresses are physical (the kernel is identity-mapped).
#pragma once

#include <stdint.h>

#include "arch/x86/multiboot2.h"

namespace x86::pmm {

inline constexpr uint64_t k4K = 4096;
inline constexpr uint64_t k2M = 2ull << 20;

// Returns nullptr on success, else why it failed (then nothing can be allocated).
const char* init(const mb2::BootInfo& boot);

uint64_t alloc_4k(bool zero = true);  // 0 when out of memory
uint64_t alloc_2m(bool zero = true);  // 0 when no free, aligned 2 MiB block exists
// `count` physically contiguous 4 KiB frames (kernel stacks); 0 when none. Free with free_4k
// on each frame.
uint64_t alloc_pages(unsigned count, bool zero = true);
// `count` contiguous frames whose first address is a multiple of `align` bytes (a power of
// two, at least 4 KiB): e.g. 1 GiB-aligned guest RAM that the EPT can map with 1 GiB leaves.
// 0 when no such run is free. Free with free_4k on each frame.
uint64_t alloc_aligned(uint64_t count, uint64_t align, bool zero = true);
// Whether alloc_aligned(count, align) would succeed now (nothing is allocated).
bool aligned_run_free(uint64_t count, uint64_t align);
void free_4k(uint64_t pa);
void free_2m(uint64_t pa);

struct Stats {
  uint64_t usable_bytes;     // available in the memory map
  unsigned usable_ranges;
  uint64_t managed_frames;   // frames handed to the allocator at init
  uint64_t free_frames;      // currently free
  uint64_t top;              // end of the highest usable range
};
Stats stats();

// A free page below 1 MiB for the AP trampoline (0 when the map has none). Chosen at init
// from the memory map; never handed out by alloc_4k().
uint64_t trampoline_page();
// When init() found no free page below 640 KiB for the AP trampoline (GRUB under UEFI fills low
// memory with modules first), moves the smallest module that lies entirely below 640 KiB to
// frames above 1 MiB, updates `boot` (its start and end), and gives its first page to the
// trampoline. Nothing to do otherwise. The moved module's name, or nullptr.
const char* ensure_trampoline_page(mb2::BootInfo& boot);

}  // namespace x86::pmm
