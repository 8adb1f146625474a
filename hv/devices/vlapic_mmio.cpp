// The xAPIC page (see vlapic_mmio.h).
#include "hv/devices/vlapic_mmio.h"

#include "arch/x86/log.h"
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

void add_lapic_mmio(Vm& vm) {
  if (!vm.mmio.add(LapicMmio::kBase, LapicMmio::kBytes, &vm.lapic_mmio))
    x86::log::warn("vm%u: the local APIC page could not be added", vm.id());
}

}  // namespace hv
