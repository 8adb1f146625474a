// Computing the value of a VMX control field from what we want and what the CPU allows.
//
// Each control field has a capability MSR (SDM Vol. 3D, A.3-A.5): its low half lists the bits
// that must be 1 (allowed 0-settings), its high half the bits that may be 1 (allowed
// 1-settings). When IA32_VMX_BASIC[55] is set the TRUE_* MSRs are the authoritative ones
// (Capabilities already picked them). The value we program is
//     (required | wanted) | must_be_one,   then  & may_be_one,
// and the computation fails, naming the bit, when a control we *require* can't be 1.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace x86::vmx {

struct ControlRequest {
  const char* field_name;  // "pin-based", "secondary", ... (for the failure message)
  uint64_t cap_msr;        // capability MSR value for this field
  uint32_t required;       // hv can't work without these
  uint32_t optional;       // used when available
};

// Returns nullptr and sets `out`, or returns a sentence naming the missing control, written
// into the caller's `why` (`why_size` bytes; at least kWhySize for the whole sentence) and
// returned as `why`. The buffer is the caller's so that CPUs setting up VMCSs at the same
// time cannot overwrite each other's message.
inline constexpr size_t kWhySize = 160;
const char* compute_controls(const ControlRequest& req, uint32_t& out, char* why, size_t why_size);

// Bits that the CPU forced on although we didn't ask (for the debug log).
inline uint32_t forced_bits(const ControlRequest& req, uint32_t value) {
  return value & ~(req.required | req.optional);
}

}  // namespace x86::vmx
