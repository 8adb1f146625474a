// The xAPIC page (see vlapic_mmio.h).
#include "hv/devices/vlapic_mmio.h"

#include "arch/x86/log.h"
#include "hv/apicv.h"
#include "hv/guest_mmu.h"
#include "hv/irq_inject.h"
#include "hv/vcpu.h"
#include "hv/vm.h"

namespace hv {

uint64_t LapicMmio::window(Vcpu& vcpu) {
  const Vlapic& l = vcpu.vm().lapic[vcpu.index()];
  if (!l.hw_enabled() || l.x2apic()) return kNoWindow;
  // The MSR policy keeps only valid bits: 12 and up are the base (below MAXPHYADDR).
  return vcpu.msrs.state.apic_base & ~0xFFFull;
}

uint64_t LapicMmio::read_reg(Vcpu& vcpu, uint64_t offset, unsigned size) {
  const Vlapic& l = vcpu.vm().lapic[vcpu.index()];
  uint64_t v = 0;
  l.read(static_cast<unsigned>(offset & ~0xFull), guest_tsc_now(vcpu), v);  // reserved: 0
  const unsigned byte = offset & 0xF;
  if (byte >= 4) return 0;
  v = static_cast<uint32_t>(v) >> (8 * byte);
  return size >= 4 ? v : v & ((1ull << (8 * size)) - 1);
}

void LapicMmio::write_reg(Vcpu& vcpu, uint64_t offset, unsigned size, uint64_t value) {
  if (size != 4 || (offset & 0xF)) return;
  WriteEffect fx;
  vcpu.vm().lapic[vcpu.index()].write(static_cast<unsigned>(offset), static_cast<uint32_t>(value), guest_tsc_now(vcpu), fx);
  lapic_apply(vcpu, fx);
}

uint64_t LapicMmio::mmio_read(Vcpu& vcpu, uint64_t offset, unsigned size) {
  // The default page is this vCPU's APIC only while its base is there.
  if (window(vcpu) != kBase) return ~0ull;
  return read_reg(vcpu, offset, size);
}

void LapicMmio::mmio_write(Vcpu& vcpu, uint64_t offset, unsigned size, uint64_t value) {
  if (window(vcpu) != kBase) return;
  write_reg(vcpu, offset, size, value);
}

bool LapicMmio::relocated_access(Vcpu& vcpu, uint64_t gpa, unsigned size, bool write, uint64_t* value) {
  const uint64_t w = window(vcpu);
  if (w == kNoWindow || w == kBase || gpa < w || gpa - w >= kBytes) return false;
  // The emulator splits accesses at page boundaries: [gpa, gpa + size) is inside the page.
  if (write) write_reg(vcpu, gpa - w, size, *value);
  else *value = read_reg(vcpu, gpa - w, size);
  return true;
}

void LapicMmio::check_base(Vcpu& vcpu) {
  const uint64_t w = window(vcpu);
  if (w == kNoWindow || w == kBase || !vcpu.vm().mmu().translate(w, kBytes, false)) return;
  if (warned_over_ram_.exchange(1, mmu::Order::relaxed)) return;
  x86::log::warn("vm%u: vcpu%u moved its APIC base onto guest RAM at 0x%lx: the RAM stays visible there (not honoured)",
                 vcpu.vm().id(), vcpu.index(), w);
}

void LapicMmio::refill_access_page() {
  for (unsigned i = 0; i < sizeof access_page_; i++) reinterpret_cast<volatile uint8_t*>(access_page_)[i] = 0xFF;
}

void add_lapic_mmio(Vm& vm) {
  LapicMmio& m = vm.lapic_mmio;
  m.mapped_ = false;
  m.warned_over_ram_.store(0, mmu::Order::relaxed);
  if (!vm.mmio.add(LapicMmio::kBase, LapicMmio::kBytes, &m)) {
    x86::log::warn("vm%u: the local APIC page could not be added", vm.id());
    return;
  }
  if (!apicv_apic_accesses()) return;
  m.refill_access_page();
  const mmu::MemslotError err = vm.mmu().map_private_page(GuestMmu::kApicAccessSlotId, LapicMmio::kBase >> 12,
                                                          reinterpret_cast<uint64_t>(m.access_page_));
  if (err != mmu::MemslotError::ok) {
    // A slot of the VM's RAM covers the APIC base: the page stays emulated at every access.
    x86::log::warn("vm%u: the APIC-access page could not be mapped at 0x%lx (%s): xAPIC accesses are emulated",
                   vm.id(), LapicMmio::kBase, mmu::to_string(err));
    return;
  }
  m.mapped_ = true;
}

}  // namespace hv
