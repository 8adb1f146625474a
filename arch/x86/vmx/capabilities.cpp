// VMX capability probing (see capabilities.h).
#include "arch/x86/vmx/capabilities.h"

#include "arch/x86/cpu.h"
#include "arch/x86/format.h"
#include "arch/x86/log.h"
#include "arch/x86/vmx/vmcs_fields.h"

namespace x86::vmx {
namespace {

char g_reason[160];

const char* reason(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
const char* reason(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vformat(g_reason, sizeof g_reason, fmt, ap);
  va_end(ap);
  return g_reason;
}

}  // namespace

const char* probe(Capabilities& c) {
  c = Capabilities{};
  if (!(x86::cpuid(1).ecx & (1u << 5)))
    return "CPUID.1:ECX.VMX[bit 5] is 0: this CPU (or emulator) does not offer VT-x";

  // IA32_FEATURE_CONTROL (SDM 24.7 "Enabling and entering VMX operation"): once the lock bit
  // is set, the MSR can't change until reset, so a locked MSR without "VMX outside SMX" means
  // the firmware switched VT-x off. An unlocked MSR is set and locked by enter_root_mode().
  c.feature_control = x86::rdmsr(msr::kFeatureControl);
  if ((c.feature_control & feature_control::kLock) && !(c.feature_control & feature_control::kVmxOutsideSmx))
    return reason("IA32_FEATURE_CONTROL is 0x%lx: locked by the firmware with VMX outside SMX disabled "
                  "(enable VT-x in the firmware setup)",
                  c.feature_control);

  c.basic = x86::rdmsr(msr::kBasic);
  c.revision_id = static_cast<uint32_t>(c.basic & 0x7FFFFFFF);
  c.region_size = static_cast<uint32_t>((c.basic >> 32) & 0x1FFF);
  c.true_controls = (c.basic >> 55) & 1;
  const unsigned memtype = (c.basic >> 50) & 0xF;
  if (c.region_size == 0 || c.region_size > 4096)
    return reason("IA32_VMX_BASIC reports a VMCS region of %u bytes (hv supports 1..4096)", c.region_size);
  if ((c.basic >> 48) & 1)
    return "IA32_VMX_BASIC[48] limits VMX structures to 32-bit physical addresses (not supported)";
  if (memtype != 6) return reason("IA32_VMX_BASIC: VMX structures need memory type %u, hv uses write-back", memtype);

  // With bit 55 set, the TRUE_* MSRs report the real allowed 0-settings: some "default1"
  // controls (CR3-load/store exiting, ...) may then be 0, which EPT guests want.
  c.pin = x86::rdmsr(c.true_controls ? msr::kTruePinbasedCtls : msr::kPinbasedCtls);
  c.proc = x86::rdmsr(c.true_controls ? msr::kTrueProcbasedCtls : msr::kProcbasedCtls);
  c.exit = x86::rdmsr(c.true_controls ? msr::kTrueExitCtls : msr::kExitCtls);
  c.entry = x86::rdmsr(c.true_controls ? msr::kTrueEntryCtls : msr::kEntryCtls);
  c.misc = x86::rdmsr(msr::kMisc);
  c.cr0_fixed0 = x86::rdmsr(msr::kCr0Fixed0);
  c.cr0_fixed1 = x86::rdmsr(msr::kCr0Fixed1);
  c.cr4_fixed0 = x86::rdmsr(msr::kCr4Fixed0);
  c.cr4_fixed1 = x86::rdmsr(msr::kCr4Fixed1);

  if (!(allowed1(c.proc) & proc::kActivateSecondary))
    return "the processor-based controls can't activate the secondary controls: no EPT";
  // IA32_VMX_PROCBASED_CTLS2 exists only when the bit above may be 1 (SDM A.3.3).
  c.proc2 = x86::rdmsr(msr::kProcbasedCtls2);
  if (!(allowed1(c.proc2) & proc2::kEnableEpt)) return "the secondary controls don't offer \"enable EPT\"";
  if (!(allowed1(c.proc2) & proc2::kUnrestrictedGuest))
    return "the secondary controls don't offer \"unrestricted guest\" (hv starts guests with paging off)";

  c.ept_vpid = x86::rdmsr(msr::kEptVpidCap);
  const uint64_t e = c.ept_vpid;
  if (!(e & ept_cap::kWalkLength4)) return reason("EPT has no 4-level page walk (IA32_VMX_EPT_VPID_CAP 0x%lx)", e);
  if (!(e & ept_cap::kMemTypeWb)) return reason("EPT paging structures can't be write-back (cap 0x%lx)", e);
  if (!(e & ept_cap::kPage2M)) return reason("EPT has no 2 MiB pages (cap 0x%lx)", e);
  if (!(e & ept_cap::kInvept) || !(e & (ept_cap::kInveptSingle | ept_cap::kInveptGlobal)))
    return reason("INVEPT is missing or offers neither single-context nor global flushes (cap 0x%lx)", e);
  c.ept_1g = (e & ept_cap::kPage1G) != 0;
  c.ept_ad = (e & ept_cap::kAccessedDirty) != 0;
  c.pml = (allowed1(c.proc2) & proc2::kEnablePml) != 0;  // "enable PML" (SDM Table 25-7), used with A/D
  c.invept_single = (e & ept_cap::kInveptSingle) != 0;
  c.vpid = (allowed1(c.proc2) & proc2::kEnableVpid) && (e & ept_cap::kInvvpid) &&
           (e & (ept_cap::kInvvpidSingle | ept_cap::kInvvpidAll));
  c.invvpid_single = (e & ept_cap::kInvvpidSingle) != 0;

  c.preemption_timer = (allowed1(c.pin) & pin::kPreemptionTimer) != 0;
  c.preemption_timer_shift = static_cast<unsigned>(c.misc & 0x1F);

  c.tpr_shadow = (allowed1(c.proc) & proc::kUseTprShadow) != 0;
  const uint32_t p2 = allowed1(c.proc2);
  c.virtualize_apic_accesses = (p2 & proc2::kVirtualizeApicAccesses) != 0;
  c.virtualize_x2apic = (p2 & proc2::kVirtualizeX2apic) != 0;
  c.apic_register_virtualization = (p2 & proc2::kApicRegisterVirtualization) != 0;
  c.virtual_interrupt_delivery = (p2 & proc2::kVirtualInterruptDelivery) != 0;
  c.posted_interrupts = (allowed1(c.pin) & pin::kPostedInterrupts) != 0;
  c.ack_interrupt_on_exit = (allowed1(c.exit) & exit_ctl::kAckInterruptOnExit) != 0;

  if (!(allowed1(c.exit) & exit_ctl::kHostAddressSpaceSize))
    return "the VM-exit controls can't return to a 64-bit host";
  return nullptr;
}

void log_capabilities(const Capabilities& c) {
  log::info("vmx: revision 0x%x, %u-byte regions, %s controls, feature control 0x%lx", c.revision_id,
            c.region_size, c.true_controls ? "TRUE_*" : "default", c.feature_control);
  log::info("vmx: ept 4-level wb 2M%s%s, invept %s, vpid %s (invvpid %s), preemption timer %s",
            c.ept_1g ? " 1G" : "", c.ept_ad ? " A/D" : "", c.invept_single ? "single-context" : "global",
            c.vpid ? "yes" : "no", c.invvpid_single ? "single-context" : "all-context",
            c.preemption_timer ? "yes" : "no");
  log::info("vmx: apic virtualization: tpr-shadow %s, apic-accesses %s, x2apic %s, apic-registers %s, "
            "virtual-interrupts %s, posted-interrupts %s, ack-on-exit %s",
            c.tpr_shadow ? "yes" : "no", c.virtualize_apic_accesses ? "yes" : "no", c.virtualize_x2apic ? "yes" : "no",
            c.apic_register_virtualization ? "yes" : "no", c.virtual_interrupt_delivery ? "yes" : "no",
            c.posted_interrupts ? "yes" : "no", c.ack_interrupt_on_exit ? "yes" : "no");
}

}  // namespace x86::vmx
