// Machine power-off with an exit status that the test harness can read.
//
// off(status): prints "hv: power off (status 0x..)", drains the UART, then tries in turn:
//   1. QEMU's isa-debug-exit device (port 0xF4): QEMU exits with (status << 1) | 1;
//   2. ACPI soft-off: SLP_TYPa/b of \_S5 with SLP_EN into PM1a/PM1b_CNT from the FADT, or, when
//      ACPI gave nothing, the fixed ports of QEMU i440fx (0x604) and Bochs's BIOS (0xB004);
//   3. Bochs's "Shutdown" string on port 0x8900;
//   4. CLI; HLT forever.
// The first CPU to call off() owns the shutdown: it stops the other CPUs with an NMI (their
// NMI handler sees shutdown_elsewhere() and halts), a later caller just halts.
#pragma once

#include <stdint.h>

#include "arch/x86/acpi.h"

namespace x86::power {

// Hands the PM1 control ports and the S5 sleep type found in the ACPI tables to off().
void configure(const acpi::Info& acpi);

[[noreturn]] void off(uint8_t status);

// True when another CPU than the caller has begun the power-off.
bool shutdown_elsewhere();

}  // namespace x86::power
