// What hv virtualizes (see vcpu_features.h).
#include "hv/vcpu_features.h"

#include "arch/x86/cpu.h"
#include "arch/x86/vmx/vmcs_fields.h"

namespace hv {

VcpuFeatures vcpu_features(const x86::vmx::Capabilities& caps) {
  VcpuFeatures f;
  // RDTSCP (and RDPID) where the host has it and "enable RDTSCP" may be 1; hv/vmcs_setup.cpp
  // sets the control from this, hv/exit_msr.cpp switches IA32_TSC_AUX per vCPU.
  f.rdtscp = (x86::vmx::allowed1(caps.proc2) & x86::vmx::proc2::kEnableRdtscp) &&
             x86::cpuid(0x80000000u).eax >= 0x80000001u && ((x86::cpuid(0x80000001u).edx >> 27) & 1);
  return f;
}

}  // namespace hv
