// PCI configuration mechanism #1 with one host bridge (see pci_host.h).
#include "hv/devices/pci_host.h"

namespace hv {

void PciHost::reset() {
  mmu::SpinLockGuard g(lock_);
  address_ = 0;
}

uint32_t PciHost::config_dword(uint16_t bdf, uint8_t reg) {
  if (bdf != 0) return 0xFFFFFFFF;
  switch (reg & 0xFC) {
    case 0x00: return 0x12378086;  // device 1237 (440FX host bridge), vendor 8086
    case 0x08: return 0x06000002;  // class: bridge, host bridge; revision 02
    default: return 0;             // command, status, header type 0, no BARs, ...
  }
}

uint32_t PciHost::read(uint16_t port, unsigned size) {
  mmu::SpinLockGuard g(lock_);
  if (port == 0xCF8) return size == 4 ? address_ : 0xFFFFFFFF;
  if (port < 0xCFC || !(address_ & 0x80000000u)) return 0xFFFFFFFF;
  const unsigned byte = port - 0xCFC;
  const uint32_t dword = config_dword(static_cast<uint16_t>((address_ >> 8) & 0xFFFF), static_cast<uint8_t>(address_));
  const uint32_t v = dword >> (8 * byte);
  return size >= 4 ? v : v & ((1u << (8 * size)) - 1);
}

void PciHost::write(uint16_t port, unsigned size, uint32_t value) {
  mmu::SpinLockGuard g(lock_);
  if (port == 0xCF8 && size == 4) address_ = value & 0x80FFFFFCu;  // reserved bits and 1:0 read as 0
}

// --- migration state (see the header) ---

void PciHost::save(State& s) {
  mmu::SpinLockGuard g(lock_);
  s.address = address_;
}

void PciHost::restore(const State& s) {
  mmu::SpinLockGuard g(lock_);
  address_ = s.address;
}

}  // namespace hv
