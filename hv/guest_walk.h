// A guest page-table walker: guest-linear -> guest-physical with the guest's own paging state.
//
// hv needs it for one job: to read the instruction at the guest's RIP when it completes an
// access to unbacked or read-only guest-physical memory (hv/exit_ept.cpp) while the guest has
// paging on. The CPU has just executed that instruction, so a translation existed a moment ago;
// the walk can still fail (another vCPU changed the tables, a table lies outside the guest's
// RAM, a corrupt entry), and every failure is a clean status, never a crash: the caller stops
// the vCPU with a report.
//
// Modes (selected by CR0.PG, CR4.PAE, EFER.LMA, CR4.LA57, as the CPU does): paging off, 32-bit
// paging (4 KiB and, with CR4.PSE, 4 MiB pages incl. PSE-36 address bits), PAE (4 PDPTEs, 2 MiB
// and 4 KiB pages), 4-level and 5-level IA-32e paging (1 GiB, 2 MiB, 4 KiB pages). Permissions
// (U/S, R/W, NX, SMEP...) are not checked: the walk answers "where is this byte", for a fetch
// the CPU already performed, and no access is granted because of it.
//
// Guest memory is read only through `read` (the VM's memslots, bounds-checked by the caller's
// callback), entry by entry. Pure code with no kernel dependencies: the host unit tests
// compile it directly (tests/unit/guest_walk_test.cpp).
#pragma once

#include <stdint.h>

namespace hv {

struct GuestPaging {
  uint64_t cr0 = 0;
  uint64_t cr3 = 0;
  uint64_t cr4 = 0;
  uint64_t efer = 0;
  // PAE paging (not IA-32e) uses the four PDPTEs the CPU loaded with CR3, not what memory says
  // now; with EPT the VMCS holds them (guest PDPTE0-3, saved on every VM exit). When
  // `pdptes_valid` is false they are read from memory at CR3 instead.
  bool pdptes_valid = false;
  uint64_t pdpte[4] = {};
  // The guest's MAXPHYADDR: address bits at and above it in an entry are reserved.
  unsigned maxphyaddr = 36;
};

enum class WalkStatus : uint8_t {
  ok,
  not_present,     // an entry on the way has P = 0 (the guest would take a #PF)
  reserved_bit,    // an entry has a reserved bit set (the guest would take a #PF)
  table_unbacked,  // a paging structure lies outside the guest's RAM slots
  non_canonical,   // IA-32e: the linear address is not canonical
};
const char* to_string(WalkStatus s);

// Reads `size` (4 or 8) bytes of guest-physical memory at `gpa` into *value; false when the
// range is not backed by guest RAM. `gpa` is aligned to `size`.
using GuestRead = bool (*)(void* ctx, uint64_t gpa, unsigned size, uint64_t* value);

struct WalkResult {
  WalkStatus status = WalkStatus::not_present;
  uint64_t gpa = 0;       // ok: the guest-physical address of `linear`
  uint64_t page_size = 0; // ok: size of the page that maps it (bytes; 4 GiB span with paging off)
  int level = 0;          // the level at which the walk ended (1 = PTE ... 5 = PML5E; 0 = paging off)
};

WalkResult guest_walk(const GuestPaging& p, uint64_t linear, GuestRead read, void* ctx);

}  // namespace hv
