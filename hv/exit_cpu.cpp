// Instruction exits that need no policy table: HLT, RDPMC, and the instructions that are
// skipped or refused. (CPUID: exit_cpuid.cpp; RDMSR/WRMSR: exit_msr.cpp; MOV CR: exit_cr.cpp;
// VMCALL: hypercall.cpp.)
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
constexpr uint8_t kUd = 6, kGp = 13;
}  // namespace

// HLT: the vCPU sleeps in hv until an interrupt it can take is pending (Vcpu::halt,
// hv/irq_inject.cpp); the next entry injects it. Skipped first, so the interrupt's frame
// returns after the HLT, as on hardware.
//
// With several vCPUs, vCPU 0's first HLT is also where hv invalidates every EPT root of the
// VM (a fast zap, as a memslot-wide change would): the other vCPUs are in the guest at that
// moment, so the teardown of the old root (queued on this CPU's deferred work, run in bounded
// steps before our next entries) needs remote flushes answered by CPUs in guest mode, and
// every vCPU must switch to a fresh root and fault its memory in again.
void handle_hlt(Vcpu& vcpu, const ExitInfo&) {
  if (vcpu.take_fast_zap()) {
    vcpu.vm().mmu().invalidate_all_roots(false);
    x86::log::info("vm%u: vcpu%u's HLT: every EPT root invalidated (fast zap), teardown deferred", vcpu.vm().id(),
              vcpu.index());
  }
  vcpu.skip_instruction();
  vcpu.halt();
}

// RDPMC would read the host's performance counters (whatever hv or an earlier guest on this
// CPU counted: a side channel), so it always exits. hv has no virtual PMU, so every counter
// number is invalid, and for an invalid ECX the SDM's RDPMC raises #GP(0); that is what the
// guest gets. (At CPL > 0 with CR4.PCE clear the CPU raises that #GP itself, before the exit:
// faults based on privilege level have priority over VM exits.) CPUID says the same: leaf 0xA
// reports no performance monitoring (handle_cpuid), so a guest that looks first does not try.
void handle_rdpmc(Vcpu& vcpu, const ExitInfo&) { vcpu.inject_exception(kGp, true, 0); }

void handle_skip(Vcpu& vcpu, const ExitInfo&) { vcpu.skip_instruction(); }

void handle_undefined(Vcpu& vcpu, const ExitInfo&) { vcpu.inject_exception(kUd, false, 0); }

}  // namespace hv
