// A guest that never ends by itself: every vCPU spins forever with interrupts off and never
// executes an instruction that exits (hv.run=guest-spin). Only hv's time limit for the VM
// (hv.time-limit-ms) ends it: hv must stop every vCPU at the limit with a report, free the VM
// and shut down cleanly (tests/boot/scenarios/guest-time-limit-*). What ends the guest's
// slices so that hv notices the limit: external-interrupt exits (ticks, IPIs) and the VMX
// preemption timer, which hv arms whenever a VM has a time limit.
//
// With the argument `cpuid` (grub.cfg: guest-spin-cpuid), every vCPU spins executing CPUID
// instead, so that every exit is one hv's fast path may answer without a full pass
// (hv/fast_entry.h): the time limit must stop it all the same, and as promptly.
#include "tests/guests/lib/guest.h"

const char guest_name[] = "spin";

namespace {

bool g_cpuid = false;

[[noreturn]] void spin(unsigned vcpu) {
  gprintf("spin: vcpu%u: spinning forever with interrupts off%s\n", vcpu, g_cpuid ? ", executing CPUID" : "");
  asm volatile("cli");
  if (g_cpuid)
    for (;;) (void)cpuid(0);
  for (;;) asm volatile("" ::: "memory");
}

}  // namespace

void guest_test() {
  require_hv();
  g_cpuid = has_arg("cpuid");
  if (vcpu_count() > 1) smp_start(spin);
  spin(0);
}
