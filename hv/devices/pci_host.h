// PCI configuration mechanism #1 of a VM: the address register CONFIG_ADDRESS at 0xCF8 (a
// 32-bit access; bit 31 enable, bus 23:16, device 15:11, function 10:8, register 7:2) and the
// data window CONFIG_DATA at 0xCFC-0xCFF (1, 2 or 4 bytes at the byte offset of the port).
//
// Contract:
// - One function exists: a host bridge at 00:00.0 that says it is an Intel 440FX (8086:1237,
//   revision 02, class 06 00 00, header type 0), so that firmware and kernels that insist on a
//   host bridge before they trust mechanism #1 find one; every other register of it reads 0.
//   Every other bus/device/function reads all ones ("no device"). Configuration writes are
//   ignored (no BARs, no command bits to honour).
// - A data access with the enable bit clear reads all ones. Accesses to 0xCF8 other than 32-bit
//   ones are not the address register (0xCF9 is the reset control register, hv/devices/reset.h).
// - One lock for the address register: vCPUs race on it as they would on the real one.
#pragma once

#include <stdint.h>

#include "mmu/lock.h"

namespace hv {

class PciHost {
 public:
  void reset() EXCLUDES(lock_);
  uint32_t read(uint16_t port, unsigned size) EXCLUDES(lock_);
  void write(uint16_t port, unsigned size, uint32_t value) EXCLUDES(lock_);
  // The dword at `reg` of bus/device/function `bdf` (bus << 8 | dev << 3 | fn).
  static uint32_t config_dword(uint16_t bdf, uint8_t reg);

 private:
  mmu::SpinLock lock_;
  uint32_t address_ GUARDED_BY(lock_) = 0;
 public:
  // --- migration state (hv/vm_state.h, docs/migration.md): everything the guest can observe ---
  struct State {
    uint32_t address = 0;
    bool operator==(const State&) const = default;
  };
  void save(State& s) EXCLUDES(lock_);
  void restore(const State& s) EXCLUDES(lock_);
};

}  // namespace hv
