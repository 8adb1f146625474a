// The xAPIC page (see vlapic_mmio.h).
#include "hv/devices/vlapic_mmio.h"

#include "arch/x86/log.h"
#include "hv/apicv.h"
#include "hv/guest_mmu.h"
#include "hv/irq_inject.h"
#include "hv/vcpu.h"
#include "hv/vm.h"

namespace hv {

uint64_t LapicMmio::mmio_read(Vcpu& vcpu, uint64_t offset, unsigned size) {
  const Vlapic& l = vcpu.vm().lapic[vcpu.index()];
  if (!l.hw_enabled() || l.x2apic()) return ~0ull;
  uint64_t v = 0;
  l.read(static_cast<unsigned>(offset & ~0xFull), guest_tsc_now(vcpu), v);  // reserved: 0
  const unsigned byte = offset & 0xF;
  if (byte >= 4) return 0;
  v = static_cast<uint32_t>(v) >> (8 * byte);
  return size >= 4 ? v : v & ((1ull << (8 * size)) - 1);
}

void LapicMmio::mmio_write(Vcpu& vcpu, uint64_t offset, unsigned size, uint64_t value) {
  Vlapic& l = vcpu.vm().lapic[vcpu.index()];
  if (!l.hw_enabled() || l.x2apic()) return;
  if (size != 4 || (offset & 0xF)) return;
  WriteEffect fx;
  l.write(static_cast<unsigned>(offset), static_cast<uint32_t>(value), guest_tsc_now(vcpu), fx);
  lapic_apply(vcpu, fx);
}

void LapicMmio::refill_access_page() {
  for (unsigned i = 0; i < sizeof access_page_; i++) reinterpret_cast<volatile uint8_t*>(access_page_)[i] = 0xFF;
}

void add_lapic_mmio(Vm& vm) {
  LapicMmio& m = vm.lapic_mmio;
  m.mapped_ = false;
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
