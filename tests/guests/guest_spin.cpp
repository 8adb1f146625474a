// A guest that never ends by itself: every vCPU spins forever with interrupts off and never
// executes an instruction that exits (hv.run=guest-spin). Only hv's time limit for the VM
// (hv.time-limit-ms) ends it: hv must stop every vCPU at the limit with a report, free the VM
// and shut down cleanly (tests/boot/scenarios/guest-time-limit-*). What ends the guest's
// slices so that hv notices the limit: external-interrupt exits (ticks, IPIs) and the VMX
// preemption timer, which hv arms whenever a VM has a time limit.
#include "tests/guests/lib/guest.h"

const char guest_name[] = "spin";

namespace {

[[noreturn]] void spin(unsigned vcpu) {
  gprintf("spin: vcpu%u: spinning forever with interrupts off\n", vcpu);
  asm volatile("cli");
  for (;;) asm volatile("" ::: "memory");
}

}  // namespace

void guest_test() {
  require_hv();
  if (vcpu_count() > 1) smp_start(spin);
  spin(0);
}
