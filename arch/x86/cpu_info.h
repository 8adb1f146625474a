// What the boot CPU is and whether it can do VT-x with EPT.
//
// VMX: CPUID.1:ECX.VMX[bit 5]. IA32_FEATURE_CONTROL (MSR 0x3A): bit 0 lock, bit 2 "VMX
// outside SMX"; locked with bit 2 clear means the firmware switched VMX off. EPT: the
// "activate secondary controls" allowed-1 bit (63) of IA32_VMX_PROCBASED_CTLS, then the
// "enable EPT" allowed-1 bit (33) of IA32_VMX_PROCBASED_CTLS2. The VMX capability MSRs #GP
// without VMX, so they are read only when CPUID reports it.
#pragma once

#include <stdint.h>

namespace x86::cpu {

enum class Ept { yes, no, unknown };

struct Info {
  char vendor[13];
  char brand[49];
  unsigned family, model, stepping;
  bool vmx;
  bool feature_control_locked;
  bool vmx_outside_smx;  // IA32_FEATURE_CONTROL bit 2
  Ept ept;
  bool x2apic, gb_pages, hypervisor;
  // Why the VMX part can't run on this CPU, or nullptr.
  const char* no_vmx_reason;
};

void identify(Info& out);
inline const char* ept_name(Ept e) { return e == Ept::yes ? "yes" : e == Ept::no ? "no" : "unknown"; }

}  // namespace x86::cpu
