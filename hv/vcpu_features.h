// What hv virtualizes for a guest's vCPUs, decided once per VM from the host CPU and its VMX
// capabilities. The CPUID policy (hv/cpuid_policy.h) advertises a feature only where this says
// hv handles it, and the VMCS setup enables the matching controls from the same facts, so what
// a guest is told and what it gets cannot drift apart.
#pragma once

#include <stdint.h>

#include "arch/x86/vmx/capabilities.h"

namespace hv {

struct VcpuFeatures {
  // XSAVE/XRSTOR/XSETBV with the guest's XCR0 switched on entry and exit (hv/exit_xsetbv.cpp):
  // CPUID.1:ECX.XSAVE, leaf 0xD; `xcr0_mask` is what XSETBV accepts (x87 | SSE | AVX ...,
  // never more than the host supports).
  bool xsave = false;
  uint64_t xcr0_mask = 0;
  // "Enable INVPCID" (secondary control): CPUID.7.0:EBX.INVPCID.
  bool invpcid = false;
  // "Enable RDTSCP" (secondary control) and IA32_TSC_AUX kept per vCPU: CPUID.80000001H:EDX.RDTSCP.
  bool rdtscp = false;
  // The virtual local APIC (hv/devices/vlapic.h): CPUID.1:EDX.APIC; x2APIC mode
  // (CPUID.1:ECX.x2APIC, MSRs 0x800-0x8FF) and the TSC-deadline timer (CPUID.1:ECX[24],
  // IA32_TSC_DEADLINE) where the host CPU has them.
  bool x2apic = false;
  bool tsc_deadline = false;
  bool lapic = false;
};

// The features of a VM on this host.
VcpuFeatures vcpu_features(const x86::vmx::Capabilities& caps);

}  // namespace hv
