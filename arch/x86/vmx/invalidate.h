// INVEPT and INVVPID with the types the capability MSR allows (SDM Vol. 3C, 29.4.3 and 31.3).
//
// INVEPT single-context drops the guest-physical and combined mappings tagged with one EPTP;
// global drops those of every EPTP. INVVPID single-context drops the linear and combined
// mappings of one VPID; all-context those of every VPID except 0. When the CPU lacks the
// narrow type we fall back to the wide one: flushing more than asked is always correct.
#pragma once

#include <stdint.h>

#include "arch/x86/vmx/capabilities.h"
#include "arch/x86/vmx/instructions.h"

namespace x86::vmx {

inline constexpr uint64_t kInveptSingleContext = 1;
inline constexpr uint64_t kInveptGlobal = 2;
inline constexpr uint64_t kInvvpidIndividualAddress = 0;
inline constexpr uint64_t kInvvpidSingleContext = 1;
inline constexpr uint64_t kInvvpidAllContext = 2;

// Flush the EPT-derived mappings of `eptp` on this CPU (single-context if supported, else global).
Status invept_context(const Capabilities& caps, uint64_t eptp);
Status invept_global();
// Flush the linear mappings of `vpid` on this CPU (single-context if supported, else all).
Status invvpid_context(const Capabilities& caps, uint16_t vpid);

}  // namespace x86::vmx
