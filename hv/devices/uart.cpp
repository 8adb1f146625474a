// The emulated 16550 (see uart.h). Register semantics from the 16550 data sheet.
#include "hv/devices/uart.h"

#include "arch/x86/log.h"

namespace hv {

namespace {
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr uint8_t kIirNoInterrupt = 0x01, kIirFifos = 0xC0;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrDcd = 0x80;
}  // namespace

void Uart::reset(unsigned vm_id) {
  mmu::SpinLockGuard g(lock_);
  vm_id_ = vm_id;
  ier_ = lcr_ = mcr_ = scr_ = dlm_ = fcr_ = 0;
  dll_ = 1;
  line_.clear();
}

uint8_t Uart::read(uint16_t port) {
  mmu::SpinLockGuard g(lock_);
  switch (port - kBase) {
    case 0: return (lcr_ & kLcrDlab) ? dll_ : 0;  // no received data
    case 1: return (lcr_ & kLcrDlab) ? dlm_ : ier_;
    case 2: return kIirNoInterrupt | ((fcr_ & 1) ? kIirFifos : 0);
    case 3: return lcr_;
    case 4: return mcr_;
    case 5: return kLsrThre | kLsrTemt;
    // In loopback mode the modem inputs follow the outputs; otherwise "the other end is there".
    case 6: return (mcr_ & kMcrLoop) ? static_cast<uint8_t>((mcr_ & 0x0F) << 4) : (kMsrCts | kMsrDsr | kMsrDcd);
    case 7: return scr_;
  }
  return 0xFF;
}

void Uart::write(uint16_t port, uint8_t v) {
  mmu::SpinLockGuard g(lock_);
  switch (port - kBase) {
    case 0:
      if (lcr_ & kLcrDlab) dll_ = v;
      else if (!(mcr_ & kMcrLoop)) transmit(v);
      return;
    case 1:
      if (lcr_ & kLcrDlab) dlm_ = v;
      else ier_ = v & 0x0F;
      return;
    case 2: fcr_ = v & 0xC9; return;
    case 3: lcr_ = v; return;
    case 4: mcr_ = v & 0x1F; return;
    case 7: scr_ = v; return;
    default: return;  // LSR and MSR are read-only
  }
}

void Uart::transmit(uint8_t c) {
  lock_.assert_held();
  const unsigned id = vm_id_;
  line_.put(c, [id](const char* text) { x86::log::plain("vm%u: %s", id, text); });
}

void Uart::flush_locked() {
  lock_.assert_held();
  const unsigned id = vm_id_;
  line_.flush([id](const char* text) { x86::log::plain("vm%u: %s", id, text); });
}

void Uart::flush() {
  mmu::SpinLockGuard g(lock_);
  flush_locked();
}

}  // namespace hv
