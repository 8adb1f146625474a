// The VMX part of a run: capability checks, every CPU into VMX root mode, the test guest under
// demand-faulted EPT (through the VM runner, hv/vm_runner.h), and every CPU out of VMX again.
#pragma once

#include <stdint.h>

#include "arch/x86/multiboot2.h"

namespace hv {

struct VmxRunResult {
  uint8_t status;       // x86::kExitPass, x86::kExitFail or x86::kExitNoVmx (arch/x86/exit_status.h)
  const char* failure;  // why, when not x86::kExitPass
};

// Called by kernel_main on the BSP once the APs are up (interrupts off). `guest_required`:
// fail when no guest module was loaded (else the VMX bring-up alone is checked).
VmxRunResult run_vmx(const x86::mb2::BootInfo& boot, bool guest_required);

}  // namespace hv
