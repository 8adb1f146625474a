// hv's own port devices and who gets them (implemented in hv/exit_io.cpp, on the VM's I/O
// bus, hv/io_bus.h):
//   every VM:           0xE9 console (OUT byte: the vCPU's line buffer), 0x500 result (OUT:
//                       the guest's result; the vCPU stops) - hv/guest_abi.h
//   multiboot guests:   the chipset (hv/devices/chipset.h: PIC, PIT, RTC, PCI, i8042, 0x92, 0xCF9, 0x80),
//                       the 16550 at 0x3F8-0x3FF (hv/devices/uart.h), the exit port 0xF4 (OUT: the
//                       guest's exit status, as QEMU's isa-debug-exit), fw_cfg at 0x510-0x511
//                       and its DMA register at 0x514-0x51B (hv/devices/fw_cfg.h), the ACPI
//                       PM1a event/control blocks and PM timer at 0x600-0x60B (hv/devices/acpi.h)
// Every other port is an empty bus: IN reads all ones, OUT is dropped.
#pragma once

#include "hv/devices/fw_cfg.h"

namespace hv {

class Vm;

// fw_cfg's window on `vm`'s guest-physical memory for DMA (the RAM slots only).
FwCfg::GuestMemory fw_cfg_guest_memory(Vm& vm);

// Claims 0xE9 and 0x500 on `vm`'s bus (Vm::init and Vm::init_pool do it). nullptr or why not.
const char* claim_guest_abi_ports(Vm& vm);
// Claims the 16550, the exit port and fw_cfg (hv/guest_run.cpp, after the VM's fw_cfg items
// are built). nullptr or why not.
const char* claim_multiboot_ports(Vm& vm);

}  // namespace hv
