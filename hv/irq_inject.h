// The vCPU side of interrupts (hv/irq.h): what a vCPU does with its local APIC at VM entry,
// on HLT, and after a register write. Implemented in hv/irq_inject.cpp as Vcpu members
// (evaluate_interrupts, halt) and these helpers.
#pragma once

#include <stdint.h>

#include "hv/devices/vlapic.h"

namespace hv {

class Vcpu;

// The guest's TSC now (host TSC + the vCPU's TSC offset): the time base of its LAPIC timer.
uint64_t guest_tsc_now(const Vcpu& vcpu);
// Carry out what a register write of `vcpu`'s LAPIC asked for: the IPI it sends, the EOI
// broadcast of a level-triggered vector.
void lapic_apply(Vcpu& vcpu, const WriteEffect& fx);

}  // namespace hv
