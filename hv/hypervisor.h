// The VMX part of a run: capability checks, every CPU into VMX root mode, the test guest under
// demand-faulted EPT, the summary, and every CPU out of VMX again.
#pragma once

#include <stdint.h>

#include "arch/x86/multiboot2.h"

namespace hv {

struct VmxRunResult {
  uint8_t status;       // x86::kExitPass, x86::kExitFail or x86::kExitNoVmx (hv/exit_status.h)
  const char* failure;  // why, when not x86::kExitPass
};

// Called by kernel_main on the BSP once the APs are up (interrupts off). `guest_required`:
// fail when no guest module was loaded (else the VMX bring-up alone is checked).
VmxRunResult run_vmx(const x86::mb2::BootInfo& boot, bool guest_required);

class Vm;
// The VM whose deferred MMU work idle CPUs help with (nullptr: none; hv/guest_run.cpp sets its
// VM as hypervisor.cpp sets memtouch's), and one idle pass for a CPU that waits for its vCPUs:
// a quiescent state, that VM's bounded deferred work, bounded epoch callbacks.
void set_live_vm(Vm* vm);
void idle_work();
// The summary line of a VM's deferred-work passes (hv/guest_run.cpp): count, units, the
// longest in TSC ticks.
void print_deferred_summary(Vm& vm);

}  // namespace hv
