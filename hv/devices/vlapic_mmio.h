// The xAPIC register page of the VM's local APICs: one MMIO region at the default APIC base
// (0xFEE00000, 4 KiB) for the whole VM; each access goes to the local APIC of the vCPU that
// made it (as on hardware, where every CPU sees its own APIC at the same address).
//
// Accesses: the registers are 32 bits wide at 16-byte-aligned offsets (SDM 11.4.1). A 32-bit
// aligned access reads or writes the register; other sizes or offsets read the bytes of the
// 32-bit register they fall in and write nothing (the SDM leaves them undefined). While the
// vCPU's APIC is in x2APIC mode or globally disabled, the page is not the APIC (SDM 11.12.2):
// reads return all ones, writes are dropped, like unbacked memory.
//
// Relocation through IA32_APIC_BASE is accepted by the MSR (hv/msr_policy.h), but the page
// stays at 0xFEE00000: a guest that moves it finds its APIC only at the default address
// (docs/guest-platform.md section 8).
//
// With "virtualize APIC accesses" (hv/apicv.h) the device also owns the VM's APIC-access page:
// the host page the EPT maps at kBase through an hv-private memslot
// (GuestMmu::kApicAccessSlotId). Its contents matter only where the control is off (x2APIC
// mode, the APIC disabled): all ones, as this device answers there. The accesses the CPU
// does not virtualize still come here, through APIC-access exits.
#pragma once

#include <stdint.h>

#include "hv/mmio_bus.h"

namespace hv {

class Vm;

class LapicMmio final : public MmioDevice {
 public:
  static constexpr uint64_t kBase = 0xFEE00000ull, kBytes = 4096;
  const char* name() const override { return "lapic"; }
  uint64_t mmio_read(Vcpu& vcpu, uint64_t offset, unsigned size) override;
  void mmio_write(Vcpu& vcpu, uint64_t offset, unsigned size, uint64_t value) override;

  // The APIC-access page: its host-physical address (the kernel maps memory 1:1) once it is
  // mapped at kBase, else 0.
  uint64_t access_page_hpa() const { return mapped_ ? reinterpret_cast<uint64_t>(access_page_) : 0; }
  // All ones again (a guest may have written it while the control was off). Owner of the VM's
  // mode changes; a racing reader of another vCPU in x2APIC mode sees ones or its own bytes.
  void refill_access_page();

 private:
  friend void add_lapic_mmio(Vm& vm);
  alignas(4096) uint8_t access_page_[4096];
  bool mapped_ = false;
};
static_assert(alignof(LapicMmio) == 4096, "the APIC-access page must be 4 KiB aligned");

// Claims the xAPIC page on `vm`'s MMIO bus, and maps the APIC-access page there when the VMs
// use "virtualize APIC accesses" (apicv_apic_accesses()). Before the VM's vCPUs run.
void add_lapic_mmio(Vm& vm);

}  // namespace hv
