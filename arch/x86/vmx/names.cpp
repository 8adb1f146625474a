// Human-readable names for exit reasons and VM-instruction errors (for logs and dumps).
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"

namespace x86::vmx {

const char* exit_reason_name(unsigned r) {
  switch (r) {
    case kExitExceptionOrNmi: return "exception or NMI";
    case kExitExternalInterrupt: return "external interrupt";
    case kExitTripleFault: return "triple fault";
    case kExitInit: return "INIT signal";
    case kExitSipi: return "SIPI";
    case kExitIoSmi: return "I/O SMI";
    case kExitOtherSmi: return "other SMI";
    case kExitInterruptWindow: return "interrupt window";
    case kExitNmiWindow: return "NMI window";
    case kExitTaskSwitch: return "task switch";
    case kExitCpuid: return "cpuid";
    case kExitGetsec: return "getsec";
    case kExitHlt: return "hlt";
    case kExitInvd: return "invd";
    case kExitInvlpg: return "invlpg";
    case kExitRdpmc: return "rdpmc";
    case kExitRdtsc: return "rdtsc";
    case kExitRsm: return "rsm";
    case kExitVmcall: return "vmcall";
    case kExitVmclear: return "vmclear";
    case kExitVmlaunch: return "vmlaunch";
    case kExitVmptrld: return "vmptrld";
    case kExitVmptrst: return "vmptrst";
    case kExitVmread: return "vmread";
    case kExitVmresume: return "vmresume";
    case kExitVmwrite: return "vmwrite";
    case kExitVmxoff: return "vmxoff";
    case kExitVmxon: return "vmxon";
    case kExitCrAccess: return "control-register access";
    case kExitMovDr: return "mov dr";
    case kExitIoInstruction: return "i/o instruction";
    case kExitRdmsr: return "rdmsr";
    case kExitWrmsr: return "wrmsr";
    case kExitEntryFailGuestState: return "entry failure: invalid guest state";
    case kExitEntryFailMsrLoading: return "entry failure: msr loading";
    case kExitMwait: return "mwait";
    case kExitMonitorTrapFlag: return "monitor trap flag";
    case kExitMonitor: return "monitor";
    case kExitPause: return "pause";
    case kExitEntryFailMachineCheck: return "entry failure: machine check";
    case kExitTprBelowThreshold: return "tpr below threshold";
    case kExitApicAccess: return "apic access";
    case kExitVirtualizedEoi: return "virtualized eoi";
    case kExitGdtrIdtrAccess: return "gdtr/idtr access";
    case kExitLdtrTrAccess: return "ldtr/tr access";
    case kExitEptViolation: return "ept violation";
    case kExitEptMisconfig: return "ept misconfiguration";
    case kExitInvept: return "invept";
    case kExitRdtscp: return "rdtscp";
    case kExitPreemptionTimer: return "preemption timer";
    case kExitInvvpid: return "invvpid";
    case kExitWbinvd: return "wbinvd";
    case kExitXsetbv: return "xsetbv";
    case kExitApicWrite: return "apic write";
    case kExitRdrand: return "rdrand";
    case kExitInvpcid: return "invpcid";
    case kExitVmfunc: return "vmfunc";
    case kExitEncls: return "encls";
    case kExitRdseed: return "rdseed";
    case kExitPmlFull: return "pml full";
    case kExitXsaves: return "xsaves";
    case kExitXrstors: return "xrstors";
    default: return "unknown";
  }
}

const char* instruction_error_name(uint32_t e) {
  switch (e) {
    case 0: return "no error recorded";
    case 1: return "VMCALL executed in VMX root operation";
    case 2: return "VMCLEAR with invalid physical address";
    case 3: return "VMCLEAR with VMXON pointer";
    case 4: return "VMLAUNCH with non-clear VMCS";
    case 5: return "VMRESUME with non-launched VMCS";
    case 6: return "VMRESUME after VMXOFF";
    case 7: return "VM entry with invalid control field(s)";
    case 8: return "VM entry with invalid host-state field(s)";
    case 9: return "VMPTRLD with invalid physical address";
    case 10: return "VMPTRLD with VMXON pointer";
    case 11: return "VMPTRLD with incorrect VMCS revision identifier";
    case 12: return "VMREAD/VMWRITE from/to unsupported VMCS component";
    case 13: return "VMWRITE to read-only VMCS component";
    case 15: return "VMXON executed in VMX root operation";
    case 16: return "VM entry with invalid executive-VMCS pointer";
    case 17: return "VM entry with non-launched executive VMCS";
    case 18: return "VM entry with executive-VMCS pointer not VMXON pointer";
    case 19: return "VMCALL with non-clear VMCS";
    case 20: return "VMCALL with invalid VM-exit control fields";
    case 22: return "VMCALL with incorrect MSEG revision identifier";
    case 23: return "VMXOFF under dual-monitor treatment of SMIs and SMM";
    case 24: return "VMCALL with invalid SMM-monitor features";
    case 25: return "VM entry with invalid VM-execution control fields in executive VMCS";
    case 26: return "VM entry with events blocked by MOV SS";
    case 28: return "invalid operand to INVEPT/INVVPID";
    default: return "unknown VM-instruction error";
  }
}

}  // namespace x86::vmx
