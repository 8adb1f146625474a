// An emulated 16550 UART at COM1 (0x3F8-0x3FF), as much of it as a polling driver needs:
// the transmitter is always ready (LSR.THRE|TEMT), the receiver never has data, no interrupt is
// ever pending. What the guest transmits goes to hv's console a line at a time, prefixed
// "vmN: ", with control characters replaced, so a guest can't forge hv's own lines.
// Register map (offset from 0x3F8; DLAB = LCR bit 7):
//   0 RBR (in) / THR (out), DLL when DLAB   1 IER, DLM when DLAB   2 IIR (in) / FCR (out)
//   3 LCR   4 MCR   5 LSR   6 MSR   7 SCR
//
// One UART per VM, reached by every vCPU of the VM at once (each from its own CPU): its
// registers and the line buffer are guarded by `lock_` (checked by clang's -Wthread-safety).
// The line is printed inside the lock, so two vCPUs' bytes never interleave within a line.
#pragma once

#include <stdint.h>

#include "hv/console_line.h"
#include "mmu/lock.h"

namespace hv {

class Uart {
 public:
  static constexpr uint16_t kBase = 0x3F8;
  static bool claims(uint16_t port) { return port >= kBase && port < kBase + 8; }

  void reset(unsigned vm_id) EXCLUDES(lock_);
  // One byte access (wider accesses use their low byte, as the ISA bus would deliver it).
  uint8_t read(uint16_t port) EXCLUDES(lock_);
  void write(uint16_t port, uint8_t value) EXCLUDES(lock_);
  // Prints what is left of an unfinished line (the exit port, VM shutdown).
  void flush() EXCLUDES(lock_);

 private:
  void transmit(uint8_t c) REQUIRES(lock_);
  void flush_locked() REQUIRES(lock_);

  mmu::SpinLock lock_;
  unsigned vm_id_ GUARDED_BY(lock_) = 0;
  uint8_t ier_ GUARDED_BY(lock_) = 0, lcr_ GUARDED_BY(lock_) = 0, mcr_ GUARDED_BY(lock_) = 0, scr_ GUARDED_BY(lock_) = 0,
      dll_ GUARDED_BY(lock_) = 1, dlm_ GUARDED_BY(lock_) = 0, fcr_ GUARDED_BY(lock_) = 0;
  ConsoleLine line_ GUARDED_BY(lock_);
};

}  // namespace hv
