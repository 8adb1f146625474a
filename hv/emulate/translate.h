// Guest-linear -> guest-physical for the emulator (GuestAccess::translate), with the guest's own
// page tables (hv/guest_walk.h) and the faults the CPU would raise:
//   not present        -> #PF, error code P=0
//   reserved bit set   -> #PF, error code P=1 RSVD=1
//   non-canonical      -> #GP(0)
//   table outside RAM  -> stop (the CPU would have taken an EPT violation on the table itself)
// plus W/R for writes, U/S at CPL 3, and I/D for instruction fetches where the CPU reports it
// (EFER.NXE with PAE or 4/5-level paging, or CR4.SMEP). Permissions (R/W, U/S, NX, SMEP, SMAP)
// are not checked: the CPU checked them for the access that exited; the other half of a
// page-crossing access and MOVS's second operand are translated without them (docs/guest-
// platform.md, section 5, "not emulated").
//
// `hint`: the exit's own guest-linear -> guest-physical pair (EPT violation with a valid
// guest-linear address): the page it names is translated by it instead of by a walk, because
// that is the translation the CPU used (the guest's tables may say otherwise now).
#pragma once

#include <stdint.h>

#include "hv/emulate/guest_access.h"
#include "hv/guest_walk.h"

namespace hv::emu {

struct TranslateHint {
  bool valid = false;
  uint64_t linear = 0;
  uint64_t gpa = 0;
};

// The #PF error code for a failed walk (status not_present or reserved_bit).
uint32_t page_fault_error(const GuestPaging& p, WalkStatus s, AccessKind kind, unsigned cpl);

GuestAccess::Translation translate_linear(const GuestPaging& p, GuestRead read, void* ctx, const TranslateHint& hint,
                                          uint64_t linear, AccessKind kind, unsigned cpl);

}  // namespace hv::emu
