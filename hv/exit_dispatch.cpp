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

void dispatch_exit(Vcpu& vcpu, const ExitInfo& e) {
  VmStats& st = vcpu.vm().stats();
  if (e.basic < kExitReasonCount) st.exits[e.basic]++;
  else st.exits_other++;
  if (e.reason & kExitReasonEntryFailure) {
    handle_fatal(vcpu, e);
    return;
  }
  exit_profile::mark(exit_profile::kDispatch);
  vcpu.begin_exit_events(e);
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
