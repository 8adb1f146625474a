// CPUID exits: what the guest sees of the processor is the CPUID policy (hv/cpuid_policy.h),
// given this host, the VM's vCPU count, this vCPU's index and the guest state CPUID reflects.
#include "arch/x86/cpu.h"
#include "arch/x86/timer.h"
#include "arch/x86/vmx/instructions.h"
#include "arch/x86/vmx/vmcs_fields.h"
#include "hv/cpuid_policy.h"
#include "hv/exit.h"
#include "hv/guest_phys_bits.h"
#include "hv/vcpu.h"
#include "hv/vcpu_features.h"
#include "hv/vm.h"

namespace hv {

using namespace x86::vmx;

namespace {
cpuid::Regs host_cpuid(void*, uint32_t leaf, uint32_t sub) {
  const x86::CpuidResult r = x86::cpuid(leaf, sub);
  return {r.eax, r.ebx, r.ecx, r.edx};
}

constexpr uint64_t kCr4Osxsave = 1u << 18;
}  // namespace

void handle_cpuid(Vcpu& vcpu, const ExitInfo&) {
  x86::vmx::GuestRegs& r = vcpu.regs;
  const uint32_t leaf = static_cast<uint32_t>(r.rax), sub = static_cast<uint32_t>(r.rcx);
  // CPUID.1:ECX.OSXSAVE is the guest's CR4.OSXSAVE as it reads it (the read shadow where hv
  // owns the bit: hv itself runs with OSXSAVE on), leaf 0xD.0 EBX sizes the guest's XCR0.
  // Only leaf 1 reads the CR4 bit (hv/cpuid_policy.cpp): its three VMREADs for that leaf only.
  const bool osxsave = leaf == 1 && (vcpu.visible_cr4() & kCr4Osxsave) != 0;
  // The vCPU's cache (hv/cpuid_cache.h) first: the policy's inputs are built only on a miss.
  cpuid::Regs c;
  if (const cpuid::Regs* hit = vcpu.cpuid_cache.find(leaf, sub, osxsave, vcpu.xcr0)) {
    c = *hit;
  } else {
    cpuid::Inputs in;
    in.host = host_cpuid;
    in.features = vcpu.features();
    in.vcpu_index = vcpu.index();
    in.vcpu_count = vcpu.vm().vcpu_count;
    in.tsc_khz = x86::timer::tsc_khz();
    in.phys_bits = guest_phys_bits();
    in.guest_cr4_osxsave = osxsave;
    in.guest_xcr0 = vcpu.xcr0;
    c = vcpu.cpuid_cache.fill(in, leaf, sub);
  }
  r.rax = c.eax;
  r.rbx = c.ebx;
  r.rcx = c.ecx;
  r.rdx = c.edx;
  vcpu.skip_instruction();
  vcpu.quiet_exit();  // registers and RIP only (hv/fast_entry.h)
}

}  // namespace hv
