// CPU identification and the VMX/EPT capability check (see cpu_info.h).
#include "arch/x86/cpu_info.h"

#include "arch/x86/cpu.h"
#include "arch/x86/string.h"
#include "arch/x86/vmx/capabilities.h"

namespace x86::cpu {

void identify(Info& out) {
  memset(&out, 0, sizeof out);
  const x86::CpuidResult l0 = x86::cpuid(0);
  memcpy(out.vendor + 0, &l0.ebx, 4);
  memcpy(out.vendor + 4, &l0.edx, 4);
  memcpy(out.vendor + 8, &l0.ecx, 4);

  const x86::CpuidResult l1 = x86::cpuid(1);
  const unsigned base_family = (l1.eax >> 8) & 0xF;
  const unsigned base_model = (l1.eax >> 4) & 0xF;
  out.stepping = l1.eax & 0xF;
  out.family = base_family == 0xF ? base_family + ((l1.eax >> 20) & 0xFF) : base_family;
  out.model = (base_family == 0x6 || base_family == 0xF) ? (((l1.eax >> 16) & 0xF) << 4) | base_model : base_model;
  out.vmx = (l1.ecx >> 5) & 1;
  out.x2apic = (l1.ecx >> 21) & 1;
  out.hypervisor = (l1.ecx >> 31) & 1;

  const uint32_t ext_max = x86::cpuid(0x80000000).eax;
  if (ext_max >= 0x80000001) out.gb_pages = (x86::cpuid(0x80000001).edx >> 26) & 1;
  if (ext_max >= 0x80000004) {
    for (uint32_t i = 0; i < 3; i++) {
      const x86::CpuidResult b = x86::cpuid(0x80000002 + i);
      memcpy(out.brand + i * 16 + 0, &b.eax, 4);
      memcpy(out.brand + i * 16 + 4, &b.ebx, 4);
      memcpy(out.brand + i * 16 + 8, &b.ecx, 4);
      memcpy(out.brand + i * 16 + 12, &b.edx, 4);
    }
    // Trim the leading blanks some CPUs pad the brand string with.
    unsigned s = 0;
    while (out.brand[s] == ' ') s++;
    if (s) memmove(out.brand, out.brand + s, sizeof out.brand - s);
  }

  out.ept = Ept::unknown;
  if (!out.vmx) {
    out.no_vmx_reason = out.hypervisor
                            ? "CPUID.1:ECX.VMX is 0 (the emulator or hypervisor offers no nested VT-x; QEMU TCG never does)"
                            : "CPUID.1:ECX.VMX is 0 (this CPU has no VT-x)";
    return;
  }
  const uint64_t fc = x86::rdmsr(vmx::msr::kFeatureControl);
  out.feature_control_locked = fc & 1;
  out.vmx_outside_smx = (fc >> 2) & 1;

  const uint64_t procbased = x86::rdmsr(vmx::msr::kProcbasedCtls);
  if (!((procbased >> 63) & 1)) {
    out.ept = Ept::no;
  } else {
    const uint64_t procbased2 = x86::rdmsr(vmx::msr::kProcbasedCtls2);
    out.ept = ((procbased2 >> 33) & 1) ? Ept::yes : Ept::no;
  }

  if (out.feature_control_locked && !out.vmx_outside_smx)
    out.no_vmx_reason = "IA32_FEATURE_CONTROL is locked with VMX disabled (enable VT-x in the firmware setup)";
  else if (out.ept != Ept::yes)
    out.no_vmx_reason = "VMX without EPT (the secondary control \"enable EPT\" can't be set)";
}

}  // namespace x86::cpu
