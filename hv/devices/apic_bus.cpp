// The VM's APIC bus: apic_deliver (hv/irq.h) - which local APICs a message selects and what
// each of them does with it.
//
// Destinations (SDM 11.6.2): a shorthand (self, all including self, all excluding self) wins
// over the destination field; otherwise physical (APIC ID, 0xFF / 0xFFFFFFFF broadcast) or
// logical (xAPIC flat or cluster per the target's DFR, x2APIC cluster/bitmask from its LDR).
// Lowest priority: one of the selected APICs, picked round-robin per VM (the SDM lets the
// chipset choose; comparing the targets' TPRs would read state that belongs to other CPUs).
// Fixed and lowest priority set the vector in the target's IRR (atomic, vlapic.h); NMI
// latches the target's NMI. INIT and STARTUP go to the target's SipiLatch (hv/sipi_latch.h,
// which also says why hv does this in software): INIT always (the target acts on it at its next
// safe point: wait-for-SIPI, or for vCPU 0 a VM stop), STARTUP only while the target waits for
// SIPI or has an INIT pending; an ignored STARTUP, an INIT/STARTUP that selects no APIC, and
// INIT/STARTUP with the "self" shorthand (not a valid combination, SDM 11.6.1 table "Valid
// Combinations for the Local xAPIC ICR") are counted in Vm::apic_dropped. INIT level de-assert
// never gets here (Vlapic::send_icr drops it: nothing happens on P6 and later). SMI is dropped.
// A disabled LAPIC still takes INIT and STARTUP (SDM 11.4.7.2: a software-disabled APIC still
// responds to them; hardware-disabled ones are left out, as for every message).
//
// After a target's state changed, the target is made to look: wake_vcpu (hv/vm_runner.h)
// posts a wake-up (seq_cst fence before the IPI) and sends its CPU an IPI, which ends its
// guest slice (external-interrupt exit) or its HLT sleep; either way the next VM entry
// evaluates the IRR (hv/irq_inject.cpp). No IPI to ourselves: the sender's own entry comes
// next anyway.
#include "arch/x86/cpu.h"
#include "hv/apicv.h"
#include "hv/devices/vlapic.h"
#include "hv/irq.h"
#include "hv/vm.h"
#include "hv/vm_run_state.h"
#include "hv/trace.h"
#include "hv/vm_runner.h"

namespace hv {

namespace {
bool selected(const Vlapic& l, unsigned i, const ApicMessage& m, int source) {
  switch (m.shorthand) {
    case Shorthand::kSelf: return static_cast<int>(i) == source;
    case Shorthand::kAllIncludingSelf: return true;
    case Shorthand::kAllExcludingSelf: return static_cast<int>(i) != source;
    case Shorthand::kNone: break;
  }
  return m.logical ? l.matches_logical(m.dest, m.x2apic_format) : l.matches_physical(m.dest, m.x2apic_format);
}
}  // namespace

void apic_deliver(Vm& vm, const ApicMessage& m, int source_vcpu) {
  const unsigned n = vm.vcpu_count < kMaxVcpus ? vm.vcpu_count : kMaxVcpus;
  uint32_t targets = 0;
  for (unsigned i = 0; i < n; i++)
    if (vm.lapic[i].hw_enabled() && selected(vm.lapic[i], i, m, source_vcpu)) targets |= 1u << i;
  const bool init_sipi = m.mode == DeliveryMode::kInit || m.mode == DeliveryMode::kStartup;
  if (!targets || (init_sipi && m.shorthand == Shorthand::kSelf)) {
    if (init_sipi) vm.apic_dropped.fetch_add(1, mmu::Order::relaxed);
    return;
  }
  if (m.mode == DeliveryMode::kLowestPriority) {
    // Round-robin among the selected APICs, from the one after the last pick.
    const unsigned start = vm.lowest_priority_next.fetch_add(1, mmu::Order::relaxed);
    for (unsigned k = 0; k < n; k++) {
      const unsigned i = (start + k) % n;
      if (targets & (1u << i)) {
        targets = 1u << i;
        break;
      }
    }
  }
  for (unsigned i = 0; i < n; i++) {
    if (!(targets & (1u << i))) continue;
    Vlapic& l = vm.lapic[i];
    switch (m.mode) {
      case DeliveryMode::kFixed:
      case DeliveryMode::kLowestPriority:
        if (!l.accept(m.vector, m.level)) continue;
        break;
      case DeliveryMode::kNmi: l.accept_nmi(); break;
      case DeliveryMode::kInit: vm.sipi[i].deliver_init(); break;
      case DeliveryMode::kStartup:
        if (!vm.sipi[i].deliver_sipi(m.vector)) {
          vm.apic_dropped.fetch_add(1, mmu::Order::relaxed);
          continue;
        }
        break;
      default: continue;  // SMI, ExtINT (only through LINT0, not on the bus)
    }
    VmRunState* run = vm.run_state;
    if (run && static_cast<int>(i) != source_vcpu) {
      if (trace::on(trace::kCatIrq))
        trace::record(trace::kWakeIpi, vm.id(), source_vcpu < 0 ? 0xFF : static_cast<uint8_t>(source_vcpu), x86::rdtsc(), i,
                      run->cpu_of(i));
      // The hardware path (hv/apicv.h): a posted interrupt's notification instead of a kick.
      if (l.posted() && (m.mode == DeliveryMode::kFixed || m.mode == DeliveryMode::kLowestPriority)) {
        l.note_remote_delivery(apicv_notify(*run, i, m.level));
      } else {
        wake_vcpu(*run, i);
        l.note_remote_delivery(false);
      }
    }
  }
}

// LINT1 (the PC's NMI input, wired to every LAPIC; hv/devices/nmi_button.h drives it): each
// LAPIC does what its LVT LINT1 says (Vlapic::lint_event): NMI mode latches an NMI, fixed mode
// raises the vector (edge), INIT mode an INIT, masked nothing; a hardware-disabled LAPIC passes
// the pin straight to its CPU's NMI input. Targets are woken as by an IPI (the sender, if it is
// a vCPU of the VM, only gets a posted wake-up: its own entry or HLT check comes next).
LintPulseResult apic_lint1_pulse(Vm& vm, int source_vcpu) {
  LintPulseResult r;
  const unsigned n = vm.vcpu_count < kMaxVcpus ? vm.vcpu_count : kMaxVcpus;
  for (unsigned i = 0; i < n; i++) {
    Vlapic& l = vm.lapic[i];
    const LintEvent e = l.lint_event(1);
    bool posted = false;
    switch (e.action) {
      case LintAction::kNmi:
        l.accept_nmi();
        r.nmis++;
        break;
      case LintAction::kFixed:
        if (!l.accept(e.vector, false)) {  // vector 0-15: refused (ESR), as from any source
          r.ignored++;
          continue;
        }
        posted = l.posted();
        r.vectors++;
        break;
      case LintAction::kInit:
        vm.sipi[i].deliver_init();
        r.inits++;
        break;
      default:
        r.ignored++;
        continue;
    }
    VmRunState* run = vm.run_state;
    if (!run) continue;
    if (static_cast<int>(i) == source_vcpu) {
      // No IPI to ourselves, but a posted wake-up: a presser inside its HLT sleep loop then
      // looks again before it halts (wake_pending) instead of at the next tick.
      run->post_wake(i);
      continue;
    }
    if (posted) l.note_remote_delivery(apicv_notify(*run, i, false));
    else wake_vcpu(*run, i);
  }
  return r;
}

// The 8259's INTR is wired to LINT0 of the BSP (vCPU 0), as on a PC: wake it if its LAPIC takes
// ExtINT; it fetches the vector with pic_intack() at its next entry (hv/irq_inject.cpp).
void apic_pic_intr_raised(Vm& vm) {
  if (!vm.lapic[0].takes_extint()) return;
  if (VmRunState* run = vm.run_state) wake_vcpu(*run, 0);
}

}  // namespace hv
