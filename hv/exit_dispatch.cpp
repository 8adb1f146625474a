// The exit-reason table and the handler for reasons hv does not handle.
//
// Around every handler: the event whose delivery the exit interrupted (IDT-vectoring
// information) becomes the vCPU's pending event before the handler runs, and whatever is
// pending afterwards - that event, or what a handler's inject_exception() made of it
// (hv/event_inject.h) - is written into the VM-entry fields. So an exception whose frame lands
// on a stack page not yet in EPT, or whose IDT is not yet in EPT, is delivered after the EPT
// violation maps the page, without any handler knowing about it.
#include "arch/x86/log.h"
#include "arch/x86/vmx/dump.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"
#include "hv/apicv.h"
#include "hv/exit.h"
#include "hv/hypercall.h"
#include "hv/pml.h"
#include "hv/vcpu.h"
#include "hv/exit_profile.h"
#include "hv/vm.h"

namespace hv {
namespace {

using namespace x86::vmx;

struct Table {
  ExitHandler h[kExitReasonCount];
  constexpr Table() : h{} {
    for (auto& e : h) e = handle_unknown;
    h[kExitExceptionOrNmi] = handle_exception_or_nmi;
    h[kExitExternalInterrupt] = handle_external_interrupt;
    h[kExitTripleFault] = handle_fatal;
    h[kExitInit] = handle_fatal;
    h[kExitEntryFailGuestState] = handle_fatal;
    h[kExitEntryFailMsrLoading] = handle_fatal;
    h[kExitEntryFailMachineCheck] = handle_fatal;
    h[kExitCpuid] = handle_cpuid;
    h[kExitHlt] = handle_hlt;
    h[kExitInterruptWindow] = handle_interrupt_window;  // hv/exit_events.cpp
    h[kExitNmiWindow] = handle_nmi_window;              // hv/exit_events.cpp
    h[kExitSipi] = handle_sipi;                         // hv/exit_events.cpp (never expected)
    h[kExitInvd] = handle_skip;
    h[kExitWbinvd] = handle_skip;
    h[kExitPause] = handle_skip;
    h[kExitVmcall] = handle_hypercall;  // hv/hypercall.cpp
    h[kExitCrAccess] = handle_cr_access;
    h[kExitIoInstruction] = handle_io;
    h[kExitRdmsr] = handle_rdmsr;
    h[kExitRdpmc] = handle_rdpmc;
    h[kExitWrmsr] = handle_wrmsr;
    h[kExitEptViolation] = handle_ept_violation;
    h[kExitEptMisconfig] = handle_ept_misconfig;
    h[kExitPreemptionTimer] = handle_preemption_timer;
    h[kExitXsetbv] = handle_xsetbv;  // hv/exit_xsetbv.cpp
    h[kExitApicWrite] = handle_apic_write;                   // hv/apicv.cpp
    h[kExitApicAccess] = handle_apic_access;                 // hv/apicv.cpp
    h[kExitVirtualizedEoi] = handle_virtualized_eoi;         // hv/apicv.cpp
    h[kExitTprBelowThreshold] = handle_tpr_below_threshold;  // hv/apicv.cpp
    h[kExitPmlFull] = handle_pml_full;                       // hv/pml.cpp
    // VMX instructions in the guest: no nested VMX, so they are undefined opcodes to it.
    const uint16_t vmx_insns[] = {kExitVmclear, kExitVmlaunch, kExitVmptrld, kExitVmptrst,
                                  kExitVmread,  kExitVmresume, kExitVmwrite, kExitVmxoff,
                                  kExitVmxon,   kExitInvept,   kExitInvvpid, kExitVmfunc};
    for (uint16_t r : vmx_insns) h[r] = handle_undefined;
    h[kExitMwait] = handle_undefined;
    h[kExitMonitor] = handle_undefined;
  }
};
constexpr Table kTable;

}  // namespace

// The uncommon half of Vcpu::begin_exit_events (vcpu.h): an event was being delivered, or NMI
// blocking may need to be recovered.
void Vcpu::begin_exit_events_slow(const ExitInfo& e, uint32_t vec) {
  // With virtual-interrupt delivery the information may name a stale event where the CPU was
  // delivering a virtual interrupt (Bochs 2.7): that delivery is undone instead (hv/apicv.h).
  if ((vec & event::kInfoValid) && apicv.on) vec = apicv_vectoring(*this, vec);
  // An IRET that faulted or hit an EPT violation has already unblocked NMIs before the exit
  // (SDM 28.2.3 / 28.2.2: "NMI unblocking due to IRET", bit 12 of the EPT-violation
  // qualification). The IRET runs again after the exit and will unblock them then; until
  // then the NMI handler is still running, so blocking must be set again, or a second NMI
  // would nest inside it (SDM Vol. 3C, 28.2.3; KVM: "recover NMI blocking"). With "virtual
  // NMIs" the bit is virtual-NMI blocking, which hv's NMI injection relies on.
  if (virtual_nmis_ && !(vec & event::kInfoValid)) {
    constexpr uint64_t kNmiUnblockingIret = 1u << 12, kBlockingNmi = 1u << 3;
    if (e.basic == kExitEptViolation && (e.qualification & kNmiUnblockingIret)) {
      const uint64_t intr = vmread(field::kGuestInterruptibility);
      if (!(intr & kBlockingNmi)) vmwrite(field::kGuestInterruptibility, intr | kBlockingNmi);
    }
  }
  if (vec & event::kInfoValid) {
    const uint32_t ec = (vec & event::kInfoErrorCode) ? static_cast<uint32_t>(vmread(field::kIdtVectoringErrorCode)) : 0;
    event_ = event::from_idt_vectoring(vec, ec, static_cast<uint32_t>(vmread(field::kExitInstructionLength)));
    reinjecting_ = true;
  } else {
    event_ = event::Pending{};
    reinjecting_ = false;
  }
}

void dispatch_exit(Vcpu& vcpu, const ExitInfo& e) {
  VmCounters& st = vcpu.counters();
  if (e.basic < kExitReasonCount) st.exits[e.basic]++;
  else st.exits_other++;
  if (e.reason & kExitReasonEntryFailure) {
    handle_fatal(vcpu, e);
    return;
  }
  exit_profile::mark(exit_profile::kDispatch);
  // The event whose delivery caused this exit (SDM 28.2.4): the CPU abandoned it, so it must
  // be delivered again at the next entry unless a handler raises something on top of it (KVM
  // calls this step "complete interrupts"). An NMI being re-injected needs nothing more: VM
  // entry that injects it sets (virtual-)NMI blocking again.
  vcpu.begin_exit_events(e, static_cast<uint32_t>(vmread(field::kIdtVectoringInfo)));
  exit_profile::mark(exit_profile::kEvents);
  (e.basic < kExitReasonCount ? kTable.h[e.basic] : handle_unknown)(vcpu, e);
  exit_profile::mark(exit_profile::kHandler);
  vcpu.commit_events();
  exit_profile::mark(exit_profile::kCommit);
}

void handle_unknown(Vcpu& vcpu, const ExitInfo& e) {
  dump_vmcs("unhandled VM exit");
  vcpu.stop(true, "unhandled exit reason %u (%s), qualification 0x%lx, rip 0x%lx", e.basic,
            exit_reason_name(e.basic), e.qualification, vmread(field::kGuestRip));
}

}  // namespace hv
