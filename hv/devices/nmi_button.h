// The VM's NMI button: the chipset's NMI line, wired to LINT1 of every vCPU's local APIC (as
// on a PC, and as QEMU's monitor command `nmi` presses it). A press pulses LINT1 everywhere
// (apic_lint1_pulse, hv/devices/apic_bus.cpp): each LAPIC does what its LVT LINT1 says - NMI,
// a fixed vector, INIT, or nothing while masked.
//
//   hv.nmi-ms=N   press the button every N ms of the VM's run (the first press at N ms);
//                 0 or absent: never. The run's summary says what the presses did:
//                 "vmN: nmi button: P presses (hv.nmi-ms=N): X NMIs, Y vectors, Z INITs, W masked or ignored"
//                 (counts over all LAPICs: one press reaches every vCPU).
//
// Whichever vCPU of the VM first reaches a safe point once a period is due presses (VmStatClock,
// one press per period however many vCPUs ask; periods missed while every vCPU was away are
// coalesced into one press, as edges on a line that no one samples would be). A halted vCPU
// passes its safe point at every host tick, so presses come while the whole VM sleeps in HLT.
//
// Hostile guests: a press is a bounded loop over the VM's vCPUs with no lock; a guest that
// rewrites LVT LINT1 as fast as it can only changes what the next press does (the LVT word is
// read once per press and LAPIC). NMIs coalesce in the LAPIC's one-deep NMI latch, vectors in
// the IRR, so presses faster than the guest takes them cannot pile anything up.
#pragma once

#include <stdint.h>

#include "hv/counter.h"
#include "hv/vm_stat_clock.h"

namespace hv {

class Vcpu;
class Vm;

struct NmiButton {
  VmStatClock clock;
  uint64_t period_ms = 0;
  Counter presses, nmis, vectors, inits, ignored;
  bool armed() const { return clock.enabled(); }
};

// By the runner, before the vCPUs start: reads hv.nmi-ms.
void nmi_button_start(Vm& vm, uint64_t now_tsc, uint64_t tsc_khz);
// At a vCPU's safe point (Vcpu::vm_requests_stop): presses when a period is due.
void nmi_button_poll(Vcpu& vcpu, uint64_t now_tsc);
// Any CPU: one press now (the source vCPU is not kicked; -1 for none).
void nmi_button_press(Vm& vm, int source_vcpu);
// After the run: the summary line, when the button was armed.
void nmi_button_finish(Vm& vm);

}  // namespace hv
