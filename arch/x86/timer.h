// Time for the boot path: the TSC, calibrated once against the legacy PIT.
//
// udelay() busy-waits on the TSC; the INIT-SIPI-SIPI sequence needs 10 ms and 200 us waits.
// Where the PIT does not respond, CPUID leaf 0x15/0x16 or a 2 GHz guess stands in.
#pragma once

#include <stdint.h>

namespace x86::timer {

// Measures the TSC frequency. Returns a short description of the source ("PIT", ...).
const char* calibrate();
uint64_t tsc_khz();
void udelay(uint64_t us);
uint64_t now_us();

}  // namespace x86::timer
