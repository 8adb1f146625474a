// The statuses hv powers off with: QEMU's isa-debug-exit turns status s into the process exit
// code (s << 1) | 1, so PASS = 33, FAIL = 35, NO_VMX = 37. Bochs can't report one (its exit
// status is always 1): there the "hv: result: ..." line on the serial console is the verdict.
#pragma once

#include <stdint.h>

namespace x86 {

enum ExitStatus : uint8_t {
  kExitPass = 0x10,   // every check of the run passed
  kExitFail = 0x11,   // a check failed, a panic, or a CPU exception
  kExitNoVmx = 0x12,  // the run needed VMX/EPT and the CPU has none (or the firmware locked it off)
};

}  // namespace x86
