// CPUID exits: what the guest sees of the processor (the CPUID policy).
#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"
#include "arch/x86/vmx/capabilities.h"
#include "hv/exit.h"
#include "hv/guest_abi.h"
#include "hv/vcpu.h"
#include "hv/vm.h"

namespace hv {

using namespace x86::vmx;

namespace {
uint32_t sig(unsigned i) {
  const char* s = guest_abi::kSignature;
  return static_cast<uint32_t>(s[4 * i]) | static_cast<uint32_t>(s[4 * i + 1]) << 8 |
         static_cast<uint32_t>(s[4 * i + 2]) << 16 | static_cast<uint32_t>(s[4 * i + 3]) << 24;
}
}  // namespace

void handle_cpuid(Vcpu& vcpu, const ExitInfo&) {
  x86::vmx::GuestRegs& r = vcpu.regs;
  const uint32_t leaf = static_cast<uint32_t>(r.rax), sub = static_cast<uint32_t>(r.rcx);
  x86::CpuidResult c{};
  if (leaf == guest_abi::kHypervisorLeaf) {
    c = {guest_abi::kHypervisorLeaf, sig(0), sig(1), sig(2)};
  } else if ((leaf & 0xF0000000) == 0x40000000) {
    c = {};
  } else {
    c = x86::cpuid(leaf, sub);
    if (leaf == 1) {
      c.ecx &= ~(1u << 5);   // no nested VMX
      c.ecx &= ~(1u << 15);  // no PDCM: IA32_PERF_CAPABILITIES is not offered (RDMSR gives #GP)
      c.ecx |= 1u << 31;     // "running under a hypervisor"
    } else if (leaf == 0xA) {
      // No virtual PMU (architectural performance monitoring version 0, no counters): what
      // handle_rdpmc enforces, stated where a guest looks first.
      c = {};
    }
  }
  r.rax = c.eax;
  r.rbx = c.ebx;
  r.rcx = c.ecx;
  r.rdx = c.edx;
  vcpu.skip_instruction();
}

}  // namespace hv
