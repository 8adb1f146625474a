// An emulated 16550 UART at COM1 (0x3F8-0x3FF), as much of it as a polling driver needs:
// the transmitter is always ready (LSR.THRE|TEMT), the receiver never has data, no interrupt is
// ever pending. What the guest transmits goes to hv's console a line at a time, prefixed
// "vmN: ", with control characters replaced, so a guest can't forge hv's own lines.
// Register map (offset from 0x3F8; DLAB = LCR bit 7):
//   0 RBR (in) / THR (out), DLL when DLAB   1 IER, DLM when DLAB   2 IIR (in) / FCR (out)
//   3 LCR   4 MCR   5 LSR   6 MSR   7 SCR
#pragma once

#include <stdint.h>

namespace hv {

class Uart {
 public:
  static constexpr uint16_t kBase = 0x3F8;
  static bool claims(uint16_t port) { return port >= kBase && port < kBase + 8; }

  void reset(unsigned vm_id);
  // One byte access (wider accesses use their low byte, as the ISA bus would deliver it).
  uint8_t read(uint16_t port);
  void write(uint16_t port, uint8_t value);
  // Prints what is left of an unfinished line (at VM shutdown).
  void flush();

 private:
  void transmit(uint8_t c);

  unsigned vm_id_ = 0;
  uint8_t ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0, dll_ = 1, dlm_ = 0, fcr_ = 0;
  char line_[240] = {};  // longer lines are split (the log line holds 640)
  unsigned len_ = 0;
};

}  // namespace hv
