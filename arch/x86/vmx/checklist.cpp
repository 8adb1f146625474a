// The boot-time hardware checklist (see checklist.h). Bit positions: Intel SDM Vol. 3D,
// appendix A (A.3.1 pin-based, A.3.2/A.3.3 processor-based, A.10 IA32_VMX_EPT_VPID_CAP) and
// CPUID leaf 0x80000007 (EDX[8] invariant TSC). The secondary-control bits below that hv does
// not set (APIC virtualization, PML) are named here only, so this file does not depend on the
// VMCS field tables that the vCPU code owns.
#include "arch/x86/vmx/checklist.h"

#include <stdint.h>

#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/vmx/capabilities.h"

namespace x86::vmx {
namespace {

namespace bits {
// IA32_VMX_PINBASED_CTLS allowed-1 (high half).
constexpr uint32_t kPinPreemptionTimer = 1u << 6;
constexpr uint32_t kPinPostedInterrupts = 1u << 7;
// IA32_VMX_PROCBASED_CTLS allowed-1.
constexpr uint32_t kProcTprShadow = 1u << 21;
constexpr uint32_t kProcActivateSecondary = 1u << 31;
// IA32_VMX_PROCBASED_CTLS2 allowed-1.
constexpr uint32_t kProc2ApicAccesses = 1u << 0;
constexpr uint32_t kProc2Ept = 1u << 1;
constexpr uint32_t kProc2X2Apic = 1u << 4;
constexpr uint32_t kProc2Vpid = 1u << 5;
constexpr uint32_t kProc2Unrestricted = 1u << 7;
constexpr uint32_t kProc2ApicRegisters = 1u << 8;
constexpr uint32_t kProc2VirtualInterrupts = 1u << 9;
constexpr uint32_t kProc2Pml = 1u << 17;
// IA32_VMX_EXIT_CTLS allowed-1.
constexpr uint32_t kExitAckInterrupt = 1u << 15;
}  // namespace bits

class Checklist {
 public:
  // A feature hv cannot run without.
  void required(const char* what, bool ok) {
    line(what, ok ? "ok" : "missing");
    if (ok) return;
    result_.required_missing++;
    if (!result_.first_blocker) result_.first_blocker = what;
  }
  // A feature hv uses when present.
  void optional(const char* what, bool ok) {
    line(what, ok ? "ok" : "optional, missing");
    if (!ok) result_.optional_missing++;
  }
  const ChecklistResult& result() const { return result_; }

 private:
  static void line(const char* what, const char* verdict) { log::info("hardware: %s: %s", what, verdict); }
  ChecklistResult result_;
};

}  // namespace

ChecklistResult print_hardware_checklist() {
  Checklist c;
  const bool vmx = (x86::cpuid(1).ecx >> 5) & 1;
  c.required("VT-x (CPUID.1:ECX.VMX)", vmx);

  uint64_t fc = 0, pin = 0, proc = 0, proc2 = 0, ept = 0, exit = 0;
  if (vmx) {
    fc = x86::rdmsr(msr::kFeatureControl);
    const bool true_ctls = (x86::rdmsr(msr::kBasic) >> 55) & 1;
    pin = x86::rdmsr(true_ctls ? msr::kTruePinbasedCtls : msr::kPinbasedCtls);
    proc = x86::rdmsr(true_ctls ? msr::kTrueProcbasedCtls : msr::kProcbasedCtls);
    exit = x86::rdmsr(true_ctls ? msr::kTrueExitCtls : msr::kExitCtls);
    // The secondary controls and the EPT/VPID MSR exist only when "activate secondary
    // controls" may be 1 (SDM A.3.3, A.10).
    if (allowed1(proc) & bits::kProcActivateSecondary) {
      proc2 = x86::rdmsr(msr::kProcbasedCtls2);
      if (allowed1(proc2) & (bits::kProc2Ept | bits::kProc2Vpid)) ept = x86::rdmsr(msr::kEptVpidCap);
    }
  }
  // Locked with VMX outside SMX on: the firmware enabled VT-x. Unlocked: hv sets and locks it
  // itself (enter_root_mode), so that is fine too. Locked with the bit clear: switched off.
  const bool fc_locked = fc & feature_control::kLock;
  const bool fc_ok = vmx && (!fc_locked || (fc & feature_control::kVmxOutsideSmx));
  c.required(fc_locked || !vmx ? "IA32_FEATURE_CONTROL locked, VMX outside SMX enabled"
                               : "IA32_FEATURE_CONTROL unlocked (hv enables and locks it)",
             fc_ok);
  const uint32_t p2 = allowed1(proc2);
  c.required("EPT", p2 & bits::kProc2Ept);
  c.required("EPT 4-level page walk", ept & ept_cap::kWalkLength4);
  c.required("EPT write-back memory type", ept & ept_cap::kMemTypeWb);
  c.required("EPT 2 MiB pages", ept & ept_cap::kPage2M);
  c.required("INVEPT single-context or all-context",
             (ept & ept_cap::kInvept) && (ept & (ept_cap::kInveptSingle | ept_cap::kInveptGlobal)));
  c.required("unrestricted guest", p2 & bits::kProc2Unrestricted);
  c.optional("EPT 1 GiB pages", ept & ept_cap::kPage1G);
  c.optional("EPT accessed/dirty bits", ept & ept_cap::kAccessedDirty);
  c.optional("INVEPT single-context", ept & ept_cap::kInveptSingle);
  c.optional("VPID", (p2 & bits::kProc2Vpid) && (ept & ept_cap::kInvvpid));
  c.optional("INVVPID single-context", ept & ept_cap::kInvvpidSingle);
  c.optional("INVVPID all-context", ept & ept_cap::kInvvpidAll);
  c.optional("VMX preemption timer", allowed1(pin) & bits::kPinPreemptionTimer);
  c.optional("page-modification logging (PML)", p2 & bits::kProc2Pml);
  c.optional("TPR shadow", allowed1(proc) & bits::kProcTprShadow);
  c.optional("virtualize APIC accesses", p2 & bits::kProc2ApicAccesses);
  c.optional("virtualize x2APIC mode", p2 & bits::kProc2X2Apic);
  c.optional("APIC-register virtualization", p2 & bits::kProc2ApicRegisters);
  c.optional("virtual-interrupt delivery", p2 & bits::kProc2VirtualInterrupts);
  c.optional("posted interrupts", allowed1(pin) & bits::kPinPostedInterrupts);
  c.optional("acknowledge interrupt on exit", allowed1(exit) & bits::kExitAckInterrupt);
  const bool has_80000007 = x86::cpuid(0x80000000).eax >= 0x80000007;
  c.optional("invariant TSC (CPUID.80000007H:EDX[8])", has_80000007 && ((x86::cpuid(0x80000007).edx >> 8) & 1));

  const ChecklistResult& r = c.result();
  if (r.first_blocker) log::info("hardware: NOT ready: %s missing", r.first_blocker);
  else log::info("hardware: ready for hv (%u optional feature(s) missing)", r.optional_missing);
  return r;
}

}  // namespace x86::vmx
