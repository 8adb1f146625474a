// The guest's MAXPHYADDR: the host's physical-address width (CPUID 0x80000008, 36 bits when
// the leaf is missing), at most 48 (a 4-level EPT maps 48 bits of guest-physical space).
#pragma once

#include "arch/x86/cpu.h"

namespace hv {

inline unsigned guest_phys_bits() {
  const unsigned host = (x86::cpuid(0x80000000).eax >= 0x80000008) ? (x86::cpuid(0x80000008).eax & 0xFF) : 36;
  return host > 48 ? 48 : host;
}

}  // namespace hv
