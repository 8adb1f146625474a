// Control-field computation (see controls.h).
#include "arch/x86/vmx/controls.h"

#include "arch/x86/format.h"
#include "arch/x86/vmx/capabilities.h"

namespace x86::vmx {

const char* compute_controls(const ControlRequest& req, uint32_t& out, char* why, size_t why_size) {
  const uint32_t must1 = required1(req.cap_msr);
  const uint32_t may1 = allowed1(req.cap_msr);
  const uint32_t missing = req.required & ~may1;
  if (missing) {
    const unsigned bit = static_cast<unsigned>(__builtin_ctz(missing));
    format(why, why_size, "required %s VM control bit %u is not supported by this CPU (capability MSR 0x%016lx)",
           req.field_name, bit, req.cap_msr);
    return why;
  }
  // A CPU whose must-be-1 bits aren't a subset of its may-be-1 bits is broken (or a buggy
  // emulator); VM entry would fail on any value, so say so now.
  if (must1 & ~may1) {
    format(why, why_size, "%s VM controls: capability MSR 0x%016lx is inconsistent", req.field_name, req.cap_msr);
    return why;
  }
  out = ((req.required | req.optional) | must1) & may1;
  return nullptr;
}

}  // namespace x86::vmx
