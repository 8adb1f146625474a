// Guest-linear memory for the emulator, on top of GuestAccess (guest_access.h): an access is
// cut at 4 KiB page boundaries into at most two parts, each translated on its own (the CPU's
// rule: the two halves of a page-crossing access may map anywhere). A read or write translates
// every part before it touches any, so a #PF on the second page leaves the first untouched,
// as on the CPU. Linear addresses wrap at 4 GiB outside 64-bit mode (`lin_mask`).
#pragma once

#include <stdint.h>

#include "hv/emulate/guest_access.h"

namespace hv::emu {

Fault read_linear(GuestAccess& g, uint64_t linear, unsigned size, unsigned cpl, uint64_t lin_mask, uint64_t* value);
Fault write_linear(GuestAccess& g, uint64_t linear, unsigned size, unsigned cpl, uint64_t lin_mask, uint64_t value);
// Up to `max` instruction bytes at `linear`; returns how many it got. When it stops early
// because a page does not translate (or is not RAM), *fault says why, for the byte at *fault.linear.
unsigned fetch_linear(GuestAccess& g, uint64_t linear, unsigned max, unsigned cpl, uint64_t lin_mask, uint8_t* out,
                      Fault* fault);

}  // namespace hv::emu
