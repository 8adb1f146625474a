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
};

// Claims the xAPIC page on `vm`'s MMIO bus. Before the VM's vCPUs run.
void add_lapic_mmio(Vm& vm);

}  // namespace hv
