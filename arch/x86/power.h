// Machine power-off and reset with an exit status that the test harness can read.
//
// off(status): prints "hv: power off (status 0x..)", drains the UART, then tries in turn:
//   1. QEMU's isa-debug-exit device (port 0xF4): QEMU exits with (status << 1) | 1
//      (skipped with Method::acpi, so that a test can watch the ACPI path itself);
//   2. ACPI soft-off: SLP_TYPa/b of \_S5 with SLP_EN into PM1a/PM1b_CNT from the FADT (after
//      switching the chipset to ACPI mode through SMI_CMD when the firmware left it in legacy
//      mode), or, when ACPI gave nothing, the fixed ports of QEMU i440fx (0x604) and Bochs's
//      BIOS (0xB004);
//   3. Bochs's "Shutdown" string on port 0x8900;
//   4. CLI; HLT forever.
// reset(status): prints "hv: reset (status 0x..) ...", then the FADT reset register when the
// FADT says it is supported, the PCI reset control register 0xCF9, the keyboard controller's
// pulse-reset command, and last a triple fault.
// With Method::reset, off() resets instead of powering off (machines whose S5 misbehaves).
// The first CPU to call off()/reset() owns the shutdown: it stops the other CPUs with an NMI
// (their NMI handler sees shutdown_elsewhere() and halts), a later caller just halts.
#pragma once

#include <stdint.h>

#include "arch/x86/acpi.h"

namespace x86::power {

enum class Method {
  automatic,  // isa-debug-exit, ACPI S5, Bochs port (the default)
  acpi,       // ACPI S5 first (real machines do not have isa-debug-exit)
  reset,      // reset the machine instead
};

// Hands the PM1 control ports, the S5 sleep type and the reset register found in the ACPI
// tables to off() and reset().
void configure(const acpi::Info& acpi);
void set_method(Method m);

[[noreturn]] void off(uint8_t status);
[[noreturn]] void reset(uint8_t status);

// True when another CPU than the caller has begun the power-off.
bool shutdown_elsewhere();

}  // namespace x86::power
