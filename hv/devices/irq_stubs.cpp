// TEMPORARY: the chipset half of hv/irq.h, stubbed until the chipset devices (IOAPIC, 8259
// pair, PIT, ...) exist; they are written in parallel on another branch, and the merge deletes
// this file. Without a chipset no device line exists, no IOAPIC waits for an EOI, and the
// 8259 pair never raises INTR.
#include "hv/irq.h"

namespace hv {

void irq_set_level(Vm&, unsigned, bool) {}
void ioapic_eoi(Vm&, uint8_t) {}
bool pic_output(Vm&) { return false; }
int pic_intack(Vm&) { return -1; }

}  // namespace hv
