// The hardware path of the local APIC: VMX APIC virtualization (Intel SDM Vol. 3C, chapter 30
// "APIC Virtualization and Virtual Interrupts"), next to the software path of
// hv/devices/vlapic.* + hv/irq_inject.cpp. Both paths share the register store: the vCPU's
// Vlapic page is the virtual-APIC page the VMCS points at, so nothing is translated when a
// path is chosen.
//
// hv.apicv=on|off (default: on where the CPU offers every control below, off otherwise; the
// boot log says which and why). With it on, a vCPU runs with:
//   - "use TPR shadow": CR8 reads and writes go to VTPR (page offset 0x80) without an exit;
//   - "virtual-interrupt delivery": hv no longer injects the LAPIC's vectors; before every
//     entry it writes RVI (highest IRR) and SVI (highest ISR) into the guest interrupt status
//     and PPR into the page, and the CPU delivers the vector when the guest can take it (IF,
//     shadows: no interrupt-window exits), acknowledges it (IRR -> ISR) and virtualizes EOI;
//     the EOI-exit bitmap (the TMR: level-triggered vectors) makes the EOIs the IOAPIC must
//     see exit (reason 45, EOI-induced);
//   - "virtualize x2APIC mode" + "APIC-register virtualization", only while the guest's APIC is
//     in x2APIC mode: RDMSR of the registers that need no computation is served from the page
//     (the MSR bitmap lets them through; the current count, reserved and write-only MSRs still
//     exit), WRMSR of TPR, EOI and SELF_IPI is virtualized; the other writes exit as before.
//     A SELF_IPI with a vector below 16 comes back as an APIC-write exit (reason 56);
//   - deliveries from other CPUs never write the target's IRR (the CPU rewrites it while the
//     guest runs): they go to the target's posted-interrupt descriptor (edge: PIR; level: a
//     latch beside it, so the EOI-exit bitmap names the vector before the guest can take it),
//     and the target folds both into the IRR before its next entry (Vlapic::sync_posted).
//     Where the CPU offers "process posted interrupts" (with "acknowledge interrupt on exit";
//     Bochs 2.7's corei7_skylake_x does not), an edge delivery to a vCPU on another CPU sends
//     the notification vector (kPostedVector): in VMX non-root the CPU folds the PIR into the
//     IRR and delivers without an exit; in root mode (about to enter, in an exit handler, or
//     halted in hv) hv's handler only EOIs and the fold happens before the next entry. Without
//     it, and for level-triggered vectors, the target is kicked (an external-interrupt exit),
//     as on the software path. With "acknowledge interrupt on exit" an external-interrupt exit
//     carries its vector, which hv dispatches to its own IDT handler (hv/exit_events.cpp).
// Exits during event delivery (hv/vcpu.cpp begin_exit_events): when the state shows that the
// CPU was delivering a virtual interrupt, hv undoes that delivery (VISR -> VIRR) instead of
// re-injecting what the IDT-vectoring information names, which Bochs 2.7 gets wrong there
// (apicv_vectoring, hv/apicv_policy.h); and while the guest cannot take an interrupt with a
// vector waiting, interrupt-window exiting holds back its recognition (Bochs 2.7 would
// deliver it with IF = 0 when a physical interrupt arrives; hv/irq_inject.cpp).
//   - "virtualize APIC accesses" (hv.apicv-access=off|tpr|vid; default vid where the CPU also
//     offers posted interrupts, else off: apicv.cpp),
//     only while the guest's APIC is in xAPIC mode and enabled: the EPT maps the xAPIC base to
//     the VM's APIC-access page (a host page of hv, LapicMmio::access_page, through an
//     hv-private memslot, GuestMmu::kApicAccessSlotId: no guest slot id is taken, migration
//     and hv's own guest-memory accesses never see it), whose address the VMCS holds. The CPU
//     then serves reads of the stored registers from the virtual-APIC page, virtualizes TPR
//     and EOI writes and xAPIC self-IPIs (ICR with the self shorthand), stores the other
//     register writes in the page and exits after them (APIC-write, reason 56: hv carries out
//     the write as for x2APIC); what it cannot virtualize (the current count, reserved
//     offsets, other sizes) exits as an APIC access (reason 44), which the instruction
//     emulator completes through the xAPIC page's MMIO device, as without the control. In
//     x2APIC mode or with the APIC disabled the control is off and the guest sees the raw
//     APIC-access page there, kept all ones (the MMIO device's "not the APIC" answer); its
//     writes there land in that page and are lost at the next mode change. Off (or not
//     offered): the xAPIC page stays an MMIO region emulated through EPT violations; its
//     registers are the same page, so only the cost differs.
// Not used: the TPR threshold (its exit exists only without virtual-interrupt delivery).
#pragma once

#include <stdint.h>

#include "arch/x86/vmx/capabilities.h"

namespace hv {

class Vcpu;
class VmRunState;
struct ExitInfo;

// The host vector of posted-interrupt notifications (root mode: the handler only EOIs).
inline constexpr uint8_t kPostedVector = 0xF2;

// Whether VMs use the hardware path: hv.apicv and the capabilities. Same answer every call.
bool apicv_enabled(const x86::vmx::Capabilities& caps);
// And whether it uses posted interrupts (the CPU offers them; else a delivery from another CPU
// kicks the target out of the guest, which folds the PIR at its next entry).
bool apicv_posted(const x86::vmx::Capabilities& caps);
// And whether its VMs' xAPIC pages use "virtualize APIC accesses" (decided by apicv_init).
bool apicv_apic_accesses();
// hv.apicv-ack-exit=1 (a test knob): "acknowledge interrupt on exit" even without posted
// interrupts, so its exit path is exercised on CPUs that lack them.
bool apicv_ack_exit_forced();
// Once, on the BSP, before any guest: the boot line ("hv: apicv: on|off (why)") and the
// notification vector's handler.
void apicv_init(const x86::vmx::Capabilities& caps);

// Fills the APIC-virtualization fields of the current VMCS for `vcpu` (its controls already
// hold the bits). nullptr or why not.
const char* apicv_setup_vmcs(Vcpu& vcpu);
// The guest's APIC changed mode (IA32_APIC_BASE): "virtualize x2APIC mode" and the MSR bitmap's
// x2APIC reads/writes follow it.
void apicv_mode_changed(Vcpu& vcpu);
// Before every entry (interrupts off, after the timer and chipset polls): PIR and latch folded,
// PPR, RVI/SVI, the EOI-exit bitmap.
void apicv_before_entry(Vcpu& vcpu);
// A delivery to `vcpu` of the VM: wake it if it sleeps in HLT and make a running vCPU see it
// (level: a kick, which exits; edge: the posted-interrupt notification).
// True when it was a posted-interrupt notification (no kick: a running target takes the
// vector without an exit), false when the target was kicked or only woken.
bool apicv_notify(VmRunState& run, unsigned vcpu, bool level);

// At an exit during event delivery (`vectoring`: the IDT-vectoring information, valid): the
// event to re-inject. The same information, or 0 when the state shows that the CPU was
// delivering a virtual interrupt (Bochs 2.7 may name a stale event there): the vector is then
// moved back from VISR to VIRR, and the CPU delivers it again (hv/apicv_policy.h,
// abandoned_virtual_interrupt).
uint32_t apicv_vectoring(Vcpu& vcpu, uint32_t vectoring);

// When the vCPU ends: which path it ran and what it cost in exits
// ("hv: vmN: vcpuI: lapic: hardware path, ..." / "software path, N vectors injected").
void apicv_report(Vcpu& vcpu);

// Exits that remain with the hardware path (dispatch table, hv/exit_dispatch.cpp).
void handle_apic_write(Vcpu& vcpu, const ExitInfo& e);
void handle_apic_access(Vcpu& vcpu, const ExitInfo& e);
void handle_virtualized_eoi(Vcpu& vcpu, const ExitInfo& e);
void handle_tpr_below_threshold(Vcpu& vcpu, const ExitInfo& e);

}  // namespace hv
