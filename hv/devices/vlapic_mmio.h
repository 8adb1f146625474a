// The xAPIC register pages of the VM's local APICs. Each vCPU's APIC answers at its own APIC
// base (IA32_APIC_BASE bits 12 and up, per vCPU, default 0xFEE00000; SDM 11.4.4): an access
// reaches the local APIC of the vCPU that made it only where that vCPU's base is, as on
// hardware, where every CPU sees its own APIC at its own base and memory (or nothing) elsewhere.
//
// Two ways in, both under the MMIO bus lock (the emulated instruction's critical section):
//  - the default page: one MMIO region on the VM's bus at kBase (0xFEE00000), so no other
//    device can claim it; an access there goes to the vCPU's APIC if its base is kBase, and
//    is an empty bus (reads all ones, writes dropped) if the vCPU moved its APIC away;
//  - a relocated page: exit_ept.cpp asks relocated_access() before the bus, so a vCPU whose
//    base is elsewhere finds its APIC there, in front of any device region (the APIC hides
//    what is behind it, SDM 11.4.4), and other vCPUs find whatever else is there.
// A memslot still wins over both: a base moved onto guest RAM is not honoured (EPT maps the RAM,
// so the accesses never exit); hv logs it once per VM (docs/guest-platform.md section 8).
// IA32_APIC_BASE itself (the MSR policy, hv/msr_policy.cpp) refuses a base with reserved bits or
// bits at or above MAXPHYADDR with #GP.
//
// Accesses: the registers are 32 bits wide at 16-byte-aligned offsets (SDM 11.4.1). A 32-bit
// aligned access reads or writes the register; other sizes or offsets read the bytes of the
// 32-bit register they fall in and write nothing (the SDM leaves them undefined). While the
// vCPU's APIC is in x2APIC mode or globally disabled, no page is the APIC (SDM 11.12.2):
// reads return all ones, writes are dropped, like unbacked memory.
//
// With "virtualize APIC accesses" (hv/apicv.h) the device also owns the VM's APIC-access page:
// the host page the EPT maps at kBase through an hv-private memslot
// (GuestMmu::kApicAccessSlotId). A vCPU uses the control only while its base is kBase (the
// mapping is VM-wide, the bases are per vCPU: hv/apicv.cpp apicv_mode_changed); a vCPU whose
// APIC moved sees the raw page at kBase (all ones, as the emulated page answers) and reaches
// its relocated APIC through EPT violations. The raw page's contents matter only where the
// control is off. The accesses the CPU does not virtualize still come here, through
// APIC-access exits.
#pragma once

#include <stdint.h>

#include "hv/mmio_bus.h"
#include "mmu/atomic.h"

namespace hv {

class Vm;

class LapicMmio final : public MmioDevice {
 public:
  static constexpr uint64_t kBase = 0xFEE00000ull, kBytes = 4096;
  const char* name() const override { return "lapic"; }
  uint64_t mmio_read(Vcpu& vcpu, uint64_t offset, unsigned size) override;
  void mmio_write(Vcpu& vcpu, uint64_t offset, unsigned size, uint64_t value) override;
  // A relocated APIC (see above): true when [gpa, gpa + size) lies in `vcpu`'s own xAPIC page
  // and that page is not kBase (the bus region serves kBase); the access was then done (*value
  // read, or `value` written). Bus lock held.
  bool relocated_access(Vcpu& vcpu, uint64_t gpa, unsigned size, bool write, uint64_t* value);
  // The guest-physical page where `vcpu`'s APIC answers as xAPIC registers, or kNoWindow
  // (x2APIC mode, globally disabled).
  static constexpr uint64_t kNoWindow = ~0ull;
  static uint64_t window(Vcpu& vcpu);
  // After a write of `vcpu`'s IA32_APIC_BASE: a base moved onto guest RAM is not honoured
  // (above); the first time in the VM's life this says so in the log.
  void check_base(Vcpu& vcpu);

  // The APIC-access page: its host-physical address (the kernel maps memory 1:1) once it is
  // mapped at kBase, else 0.
  uint64_t access_page_hpa() const { return mapped_ ? reinterpret_cast<uint64_t>(access_page_) : 0; }
  // All ones again (a guest may have written it while the control was off). Owner of the VM's
  // mode changes; a racing reader of another vCPU in x2APIC mode sees ones or its own bytes.
  void refill_access_page();

 private:
  friend void add_lapic_mmio(Vm& vm);
  uint64_t read_reg(Vcpu& vcpu, uint64_t offset, unsigned size);
  void write_reg(Vcpu& vcpu, uint64_t offset, unsigned size, uint64_t value);
  alignas(4096) uint8_t access_page_[4096];
  bool mapped_ = false;
  mmu::Atomic<uint32_t> warned_over_ram_{0};
};
static_assert(alignof(LapicMmio) == 4096, "the APIC-access page must be 4 KiB aligned");

// Claims the xAPIC page on `vm`'s MMIO bus, and maps the APIC-access page there when the VMs
// use "virtualize APIC accesses" (apicv_apic_accesses()). Before the VM's vCPUs run.
void add_lapic_mmio(Vm& vm);

}  // namespace hv
