// The chipset half of hv/irq.h: ISA lines to the 8259 pair and the IOAPIC, the IOAPIC's EOI,
// the 8259's INTR/INTA for the local APIC side.
//
// Routing (what hv's MADT says, hv/acpi_tables.*): ISA IRQ n (0-15) drives 8259 input n and
// IOAPIC pin n, except IRQ0, which reaches IOAPIC pin 2 (the interrupt source override every
// PC has: the PIT is wired to pin 2); IRQ2 is the cascade and reaches no IOAPIC pin. GSIs
// 16-23 are IOAPIC pins only.
//
// Locking: the devices lock themselves; messages to the local APICs are sent after the
// IOAPIC's lock is released (Ioapic::Out), so apic_deliver may take the vLAPIC's locks and a
// vLAPIC EOI may call ioapic_eoi without a lock-order cycle.
#include "hv/devices/chipset.h"
#include "hv/irq.h"
#include "hv/vm.h"

namespace hv {

void ioapic_send(Vm& vm, const Ioapic::Out& out) {
  for (unsigned i = 0; i < out.count; i++) apic_deliver(vm, out.msg[i], -1);
}

void irq_set_level(Vm& vm, unsigned gsi, bool level) {
  Chipset& c = vm.chipset;
  if (gsi < 16) {
    const bool before = c.pic.output();
    c.pic.set_irq(gsi, level);
    if (!before && c.pic.output()) apic_pic_intr_raised(vm);
  }
  if (gsi == 2 || gsi >= Ioapic::kPins) return;
  Ioapic::Out out;
  c.ioapic.set_pin(gsi == 0 ? 2 : gsi, level, out);
  ioapic_send(vm, out);
}

void ioapic_eoi(Vm& vm, uint8_t vector) {
  Ioapic::Out out;
  vm.chipset.ioapic.eoi(vector, out);
  ioapic_send(vm, out);
}

bool pic_output(Vm& vm) { return vm.chipset.pic.output(); }

int pic_intack(Vm& vm) { return vm.chipset.pic.intack(); }

}  // namespace hv
