// The hardware checklist hv prints at boot: one line per CPU feature it needs or uses, and a
// plain verdict, so that a person booting hv on an unknown machine (or reading a photo of its
// screen) sees at once whether hv can run there and what is missing.
//
// Lines: "hv: hardware: <feature>: ok" | "missing" | "optional, missing", then exactly one of
//   "hv: hardware: ready for hv"
//   "hv: hardware: NOT ready: <the first required feature that is missing>"
// The required set is what x86::vmx::probe() refuses to run without (VT-x, IA32_FEATURE_CONTROL
// not locked off, EPT with a 4-level walk, write-back structures, 2 MiB pages, INVEPT,
// unrestricted guest); the rest is used when present. Reads CPUID and, only when CPUID says
// VMX exists, the VMX capability MSRs (they #GP otherwise).
#pragma once

namespace x86::vmx {

struct ChecklistResult {
  unsigned required_missing = 0;
  unsigned optional_missing = 0;
  const char* first_blocker = nullptr;  // nullptr: ready
};

// Prints the checklist of the calling CPU at info level and returns the tally.
ChecklistResult print_hardware_checklist();

}  // namespace x86::vmx
