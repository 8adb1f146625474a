// The PC's reset and A20 controls of a VM: the reset control register at 0xCF9 (PIIX/ICH:
// bit 1 system reset type, bit 2 reset CPU, bit 3 full reset), port 0x92 (system control port
// A: bit 0 fast reset, bit 1 fast A20) and the i8042 keyboard controller at 0x60/0x64 as far as
// reset and A20 need it.
//
// Contract:
// - A write that asks for a reset (0xCF9 with bit 2 set; 0x92 with bit 0 rising; the i8042
//   command 0xFE, or its output port written with bit 0 clear through command 0xD1) returns
//   true: the caller (hv/devices/chipset.cpp) stops the VM with "guest requested reset", a
//   clean stop - hv does not restart guests.
// - A20 is always on (guests run with A20 enabled; hv does not wrap memory at 1 MiB): bit 1 of
//   0x92 and of the i8042 output port read back as written / as 1 and change nothing.
// - i8042: no keyboard and no mouse; the status register says "system flag, not inhibited",
//   the controller commands read/write command byte (0x20/0x60), self-test (0xAA -> 0x55),
//   interface test (0xAB -> 0x00), read/write output port (0xD0/0xD1) and pulse reset (0xFE)
//   work; other commands and data bytes are accepted and ignored.
// - One lock for the three.
#pragma once

#include <stdint.h>

#include "mmu/lock.h"

namespace hv {

class ResetControl {
 public:
  void reset() EXCLUDES(lock_);
  // Ports 0xCF9 (byte), 0x92, 0x60, 0x64.
  uint8_t read(uint16_t port) EXCLUDES(lock_);
  // True when the write requests a reset; `why` then names the source.
  bool write(uint16_t port, uint8_t value, const char** why) EXCLUDES(lock_);

 private:
  mmu::SpinLock lock_;
  uint8_t cf9_ GUARDED_BY(lock_) = 0;
  uint8_t port92_ GUARDED_BY(lock_) = 0x02;
  uint8_t kbc_cmd_byte_ GUARDED_BY(lock_) = 0x45;
  uint8_t kbc_pending_ GUARDED_BY(lock_) = 0;  // a controller command waiting for its data byte
  uint8_t kbc_out_ GUARDED_BY(lock_) = 0;      // the output buffer
  bool kbc_obf_ GUARDED_BY(lock_) = false;
  bool kbc_last_command_ GUARDED_BY(lock_) = false;
 public:
  // --- migration state (hv/vm_state.h, docs/migration.md): everything the guest can observe ---
  struct State {
    uint8_t cf9 = 0, port92 = 0, kbc_cmd_byte = 0, kbc_pending = 0, kbc_out = 0;
    bool kbc_obf = false, kbc_last_command = false;
    bool operator==(const State&) const = default;
  };
  void save(State& s) EXCLUDES(lock_);
  void restore(const State& s) EXCLUDES(lock_);
};

}  // namespace hv
