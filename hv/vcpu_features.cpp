// What hv virtualizes (see vcpu_features.h).
#include "hv/vcpu_features.h"

#include "arch/x86/cpu.h"
#include "arch/x86/vmx/vmcs_fields.h"
#include "arch/x86/xsave.h"

namespace hv {

VcpuFeatures vcpu_features(const x86::vmx::Capabilities& caps) {
  VcpuFeatures f;
  // XSAVE: only when hv runs with CR4.OSXSAVE (it must execute XSETBV to switch XCR0, and the
  // guest's XSETBV exits unconditionally, hv/exit_xsetbv.cpp). The guest may enable what hv's
  // own XCR0 holds (arch/x86/xsave.h: x87, SSE, AVX, AVX-512 where the host has them), so that
  // switching back to hv's XCR0 after an exit never disables a component with guest state.
  const uint64_t host_xcr0 = x86::xsave::host_xcr0();
  f.xsave = host_xcr0 != 0 && (x86::read_cr4() & x86::xsave::kCr4Osxsave) != 0;
  f.xcr0_mask = f.xsave ? host_xcr0 : 0;
  // INVPCID: the secondary control "enable INVPCID" (else INVPCID is #UD in the guest) and the
  // instruction itself on the host (CPUID.(EAX=7,ECX=0):EBX[10]).
  const bool invpcid_ctl = (x86::vmx::allowed1(caps.proc2) & x86::vmx::proc2::kEnableInvpcid) != 0;
  f.invpcid = invpcid_ctl && x86::cpuid(0, 0).eax >= 7 && (x86::cpuid(7, 0).ebx & (1u << 10)) != 0;
  // RDTSCP (and RDPID) where the host has it and "enable RDTSCP" may be 1; hv/vmcs_setup.cpp
  // sets the control from this, hv/exit_msr.cpp switches IA32_TSC_AUX per vCPU.
  f.rdtscp = (x86::vmx::allowed1(caps.proc2) & x86::vmx::proc2::kEnableRdtscp) &&
             x86::cpuid(0x80000000u).eax >= 0x80000001u && ((x86::cpuid(0x80000001u).edx >> 27) & 1);
  // The virtual local APIC (hv/devices/vlapic.h): always; x2APIC mode and the TSC-deadline
  // timer are emulated too, advertised where the host has them (the CPUID policy passes host
  // bits only, hv/cpuid_policy.cpp).
  const uint32_t ecx1 = x86::cpuid(1).ecx;
  f.lapic = true;
  f.x2apic = (ecx1 >> 21) & 1;
  f.tsc_deadline = (ecx1 >> 24) & 1;
  return f;
}

}  // namespace hv
