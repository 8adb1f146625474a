// TEMPORARY: the local-APIC half of hv/irq.h until the vLAPIC lands (hv/devices/apic_bus.cpp,
// the lapic branch); the merge deletes this file. Without local APICs no message reaches a
// vCPU: the IOAPIC's deliveries are dropped here, and nobody is woken by the 8259's INTR (the
// guest still sees its requests in IRR through OCW3 and the poll command).
#include "hv/irq.h"

namespace hv {

void apic_deliver(Vm&, const ApicMessage&, int) {}

void apic_pic_intr_raised(Vm&) {}

}  // namespace hv
