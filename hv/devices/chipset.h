// The PC chipset of a VM: the devices of hv/devices/{pic,pit,rtc,ioapic,pci_host,reset}.h put
// on the VM's buses, the chipset half of hv/irq.h (irq_set_level, ioapic_eoi, pic_output,
// pic_intack) and the VM's device time.
//
//   ports   0x20-0x21, 0xA0-0xA1 8259 pair; 0x4D0-0x4D1 ELCR; 0x40-0x43 PIT; 0x61 port B;
//           0x70-0x71 RTC/NVRAM; 0x60, 0x64 i8042; 0x92 port A; 0xCF8-0xCFF PCI mechanism #1
//           with 0xCF9 reset control; 0x80 POST codes (recorded, no effect)
//   MMIO    0xFEC00000-0xFEC00FFF IOAPIC
//   IRQs    PIT channel 0 -> IRQ0 (IOAPIC pin 2, PIC input 0); RTC -> IRQ8; 16550 -> IRQ4
//
// Time: the devices run on the VM's guest TSC (host TSC - Vm::tsc_origin, what every vCPU's
// TSC offset starts from), converted to PIT ticks (1.193182 MHz) and RTC ticks (32.768 kHz).
// A device only "sees" time when it is touched, so interrupts that come from time alone (PIT
// channel 0, RTC periodic/update/alarm) need someone to look at the clock:
//   - chipset_next_deadline(vm): the host TSC at which the next such interrupt is due
//     (~0 when none is). A vCPU that runs the guest or sleeps in HLT must not stay away
//     longer than that (the VMX preemption timer, or the host timer while halted).
//   - chipset_poll(vm, host_tsc): raises the lines whose time has come. Any vCPU may call it
//     at any time, concurrently (each device locks itself; a line is raised once).
// Every port access to a chipset device, every read of the IOAPIC page and every read of the
// 16550 polls first, so a guest that reads the PIC, the RTC or an IOAPIC entry sees what is
// due even before the vCPU side polls.
#pragma once

#include <stdint.h>

#include "hv/deadline_cache.h"
#include "hv/devices/ioapic.h"
#include "hv/devices/pci_host.h"
#include "hv/devices/pic.h"
#include "hv/devices/pit.h"
#include "hv/devices/reset.h"
#include "hv/devices/rtc.h"
#include "hv/mmio_bus.h"
#include "mmu/atomic.h"

namespace hv {

class Vm;

// The IOAPIC's page on the MMIO bus: 32-bit accesses to IOREGSEL/IOWIN (narrower writes to
// IOREGSEL are taken as its low byte; other accesses read 0 and are ignored).
class IoapicMmio final : public MmioDevice {
 public:
  Vm* vm = nullptr;
  const char* name() const override { return "ioapic"; }
  uint64_t mmio_read(Vcpu& vcpu, uint64_t offset, unsigned size) override;
  void mmio_write(Vcpu& vcpu, uint64_t offset, unsigned size, uint64_t value) override;
};

struct Chipset {
  PicPair pic;
  Pit pit;
  Rtc rtc;
  Ioapic ioapic;
  IoapicMmio ioapic_mmio;
  PciHost pci;
  ResetControl reset_ctl;
  uint64_t tsc_hz = 0;
  mmu::Atomic<uint32_t> post_code{0};  // the last byte written to port 0x80
  // What the last poll said (chipset_poll_due); forgotten by every PIT/RTC port access.
  DeadlineCache poll_cache;
};

// Resets the chipset of `vm` (the RTC from hv's own CMOS clock, the NVRAM from the VM's RAM
// and vCPU count) and claims its ports and the IOAPIC page. Before any vCPU runs. nullptr or
// why not.
const char* add_chipset(Vm& vm, unsigned vcpus);

uint64_t chipset_next_deadline(Vm& vm);
// The VM-entry path's poll: chipset_poll() and chipset_next_deadline() when something may be
// due, otherwise the deadline the last poll published (hv/deadline_cache.h): no lock, no TSC
// scaling on an entry where nothing can be due. Also polls hv's console input (the console
// VM's 16550) at least every kConsolePollUs. Returns the deadline (host TSC; ~0: none).
uint64_t chipset_poll_due(Vm& vm, uint64_t host_tsc);
// Hands the IOAPIC's messages to the local APICs (hv/devices/irq_router.cpp).
void ioapic_send(Vm& vm, const Ioapic::Out& out);
void chipset_poll(Vm& vm, uint64_t host_tsc);

}  // namespace hv
