// An emulated 16550 UART at COM1 (0x3F8-0x3FF): the transmitter is always ready
// (LSR.THRE|TEMT: a byte goes out the moment it is written); the receiver has a 16-byte FIFO
// fed by receive() (hv's console input, for the VM that owns it: hv/devices/chipset.h);
// interrupts as the 16550 data sheet ranks them in IIR: line status (overrun: 0x06) > received
// data (0x04) > THR empty (0x02) > modem status (never raised); a THRE interrupt is cleared by
// reading IIR while it is the one shown or by writing THR, and raised when IER.THRE is set with
// the THR empty and after each byte written. The IRQ output (COM1: ISA IRQ4) is "an enabled
// interrupt is pending" gated by MCR.OUT2, as PC boards wire it; it goes to set_irq (the
// chipset's irq_set_level) whenever it changes, with the UART's lock held (lock order: the
// UART before the chipset's devices). What the guest transmits goes to hv's console a line at a time, prefixed
// "vmN: ", with control characters replaced, so a guest can't forge hv's own lines. Loopback
// (MCR bit 4) wires the transmitter to the receiver and the modem outputs to the modem inputs
// (the test drivers make before trusting a port).
// Register map (offset from 0x3F8; DLAB = LCR bit 7):
//   0 RBR (in) / THR (out), DLL when DLAB   1 IER, DLM when DLAB   2 IIR (in) / FCR (out)
//   3 LCR   4 MCR   5 LSR   6 MSR   7 SCR
//
// Raw console (hv.console=raw on hv's command line; tools/hv sets it for the interactive Linux
// console): the VM that owns hv's console input (vm1, hv/devices/chipset.cpp) sends its bytes to
// hv's serial console as they come - no "vmN: " prefix, no line buffering, control characters
// and escape sequences passed on - so that a shell's prompt (no newline) and its line editing
// work in the user's terminal. This gives up the protection of the line mode (a guest can then
// print lines that look like hv's own), which is why it is only on request and only for the
// console VM; every other VM keeps the line mode. Bytes are written in small batches (flushed
// when the batch fills, at '\n', and whenever the guest reads LSR/IIR, which a driver waiting
// for THRE does), each batch under the console lock.
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
  // The interrupt line's consumer (before the VM runs); none: the line goes nowhere.
  void attach_irq(void (*set)(void* ctx, bool level), void* ctx) EXCLUDES(lock_);
  // A byte from the outside world into the receive FIFO (dropped, with overrun, when full).
  void receive(uint8_t c) EXCLUDES(lock_);
  // Room left in the receive FIFO: the console input is moved in only while there is some, so
  // what the user types waits in the host's serial port instead of overrunning the guest's.
  unsigned rx_room() EXCLUDES(lock_);
  // Prints the last kKeptLines lines the guest wrote ("vmN: last console lines:"), for the
  // report of a guest that stopped abnormally (hv/guest_stop_report.h).
  static constexpr unsigned kKeptLines = 8;
  void print_last_lines() EXCLUDES(lock_);

 private:
  void transmit(uint8_t c) REQUIRES(lock_);
  void push_rx(uint8_t c) REQUIRES(lock_);
  void flush_raw() REQUIRES(lock_);
  void flush_locked() REQUIRES(lock_);
  uint8_t iir() const REQUIRES(lock_);
  void update_irq() REQUIRES(lock_);
  void emit_line(const char* text) REQUIRES(lock_);

  mmu::SpinLock lock_;
  unsigned vm_id_ GUARDED_BY(lock_) = 0;
  uint8_t ier_ GUARDED_BY(lock_) = 0, lcr_ GUARDED_BY(lock_) = 0, mcr_ GUARDED_BY(lock_) = 0, scr_ GUARDED_BY(lock_) = 0,
      dll_ GUARDED_BY(lock_) = 1, dlm_ GUARDED_BY(lock_) = 0, fcr_ GUARDED_BY(lock_) = 0;
  ConsoleLine line_ GUARDED_BY(lock_);
  // The last lines printed, a ring (kept_next_ is the oldest once the ring is full).
  char kept_[kKeptLines][ConsoleLine::kCapacity] GUARDED_BY(lock_) = {};
  unsigned kept_next_ GUARDED_BY(lock_) = 0, kept_count_ GUARDED_BY(lock_) = 0;
  bool raw_ GUARDED_BY(lock_) = false;  // hv.console=raw and this VM owns the console
  static constexpr unsigned kRawBatch = 64;
  char raw_buf_[kRawBatch] GUARDED_BY(lock_) = {};
  unsigned raw_len_ GUARDED_BY(lock_) = 0;
  static constexpr unsigned kFifo = 16;
  uint8_t rx_[kFifo] GUARDED_BY(lock_) = {};
  unsigned rx_head_ GUARDED_BY(lock_) = 0, rx_count_ GUARDED_BY(lock_) = 0;
  bool overrun_ GUARDED_BY(lock_) = false;
  bool thre_pending_ GUARDED_BY(lock_) = false;  // the THR-empty interrupt condition
  bool irq_level_ GUARDED_BY(lock_) = false;
  void (*irq_set_)(void*, bool) GUARDED_BY(lock_) = nullptr;
  void* irq_ctx_ GUARDED_BY(lock_) = nullptr;
 public:
  // --- migration state (hv/vm_state.h, docs/migration.md): everything the guest can observe ---
  // The registers, the receive FIFO, the unfinished output line and the kept lines; not the VM
  // id, the raw-console choice or the IRQ callback (the target's own, from its reset/attach).
  struct State {
    uint8_t ier = 0, lcr = 0, mcr = 0, scr = 0, dll = 0, dlm = 0, fcr = 0;
    ConsoleLine line;
    char kept[kKeptLines][ConsoleLine::kCapacity] = {};
    unsigned kept_next = 0, kept_count = 0;
    uint8_t rx[kFifo] = {};
    unsigned rx_head = 0, rx_count = 0;
    bool overrun = false, thre_pending = false, irq_level = false;
  };
  void save(State& s) EXCLUDES(lock_);
  void restore(const State& s) EXCLUDES(lock_);
};

}  // namespace hv
