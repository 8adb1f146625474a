// The VM's APIC bus: apic_deliver (hv/irq.h) - which local APICs a message selects and what
// each of them does with it.
//
// Destinations (SDM 11.6.2): a shorthand (self, all including self, all excluding self) wins
// over the destination field; otherwise physical (APIC ID, 0xFF / 0xFFFFFFFF broadcast) or
// logical (xAPIC flat or cluster per the target's DFR, x2APIC cluster/bitmask from its LDR).
// Lowest priority: one of the selected APICs, picked round-robin per VM (the SDM lets the
// chipset choose; comparing the targets' TPRs would read state that belongs to other CPUs).
// Fixed and lowest priority set the vector in the target's IRR (atomic, vlapic.h); NMI
// latches the target's NMI. INIT and STARTUP are not modelled yet (guest SMP starts through
// hv's own protocol, docs/hypercalls.md): they are counted and dropped. SMI is dropped.
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
  if (!targets) return;
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
      case DeliveryMode::kInit:
      case DeliveryMode::kStartup:
        vm.apic_dropped.fetch_add(1, mmu::Order::relaxed);
        continue;
      default: continue;  // SMI, ExtINT (only through LINT0, not on the bus)
    }
    VmRunState* run = vm.run_state;
    if (run && static_cast<int>(i) != source_vcpu) {
      // The hardware path (hv/apicv.h): a posted interrupt's notification instead of a kick.
      if (l.posted() && (m.mode == DeliveryMode::kFixed || m.mode == DeliveryMode::kLowestPriority))
        apicv_notify(*run, i, m.level);
      else
        wake_vcpu(*run, i);
    }
  }
}

// The 8259's INTR is wired to LINT0 of the BSP (vCPU 0), as on a PC: wake it if its LAPIC takes
// ExtINT; it fetches the vector with pic_intack() at its next entry (hv/irq_inject.cpp).
void apic_pic_intr_raised(Vm& vm) {
  if (!vm.lapic[0].takes_extint()) return;
  if (VmRunState* run = vm.run_state) wake_vcpu(*run, 0);
}

}  // namespace hv
