// A multiboot guest's ACPI: the tables (hv/devices/acpi_tables.h) copied into its BIOS area
// and the PM1a/PM-timer ports (hv/devices/acpi_pm.h) on its I/O bus. The guest's S5 request
// (PM1_CNT: SLP_EN with SLP_TYP = \_S5) ends the VM cleanly: the vCPU stops with "guest powered
// off (ACPI S5)", the VM's result is 0 unless the guest reported another one before, and the
// VM's other vCPUs stop as passed (VmRunState::request_finish), so hv reports PASS as for an
// exit status of 0. Any other sleep state is refused: a line is logged and the guest goes on.
#pragma once

namespace hv {

class Vm;

// Builds the tables for `vcpus` vCPUs, writes them at acpi::kAcpiAreaGpa, sets
// vm.acpi_rsdp_gpa and claims the PM ports. Before any vCPU runs, after the VM's RAM exists.
// nullptr or why not.
const char* add_acpi(Vm& vm, unsigned vcpus);

}  // namespace hv
