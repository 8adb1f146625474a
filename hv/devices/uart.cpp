// The emulated 16550 (see uart.h). Register semantics from the 16550 data sheet.
#include "hv/devices/uart.h"

#include "arch/x86/log.h"
#include "arch/x86/string.h"
#include "hv/cmdline.h"

namespace hv {

namespace {
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kLsrDr = 0x01, kLsrOe = 0x02, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr uint8_t kIirNoInterrupt = 0x01, kIirFifos = 0xC0;
constexpr uint8_t kIirLineStatus = 0x06, kIirRxData = 0x04, kIirThre = 0x02;
constexpr uint8_t kIerRda = 0x01, kIerThre = 0x02, kIerRls = 0x04;
constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08, kMcrLoop = 0x10;
constexpr uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;

// The VM whose UART may be raw: the one that owns hv's console input (hv/devices/chipset.cpp).
constexpr unsigned kRawConsoleVm = 1;
bool raw_console_requested() {
  char v[8];
  return cmdline::get("hv.console", v, sizeof v) && v[0] == 'r' && v[1] == 'a' && v[2] == 'w' && !v[3];
}
}  // namespace

void Uart::reset(unsigned vm_id) {
  mmu::SpinLockGuard g(lock_);
  vm_id_ = vm_id;
  raw_ = vm_id == kRawConsoleVm && raw_console_requested();
  raw_len_ = 0;
  ier_ = lcr_ = mcr_ = scr_ = dlm_ = fcr_ = 0;
  dll_ = 1;
  line_.clear();
  kept_next_ = kept_count_ = 0;
  rx_head_ = rx_count_ = 0;
  overrun_ = thre_pending_ = false;
  irq_level_ = false;
  irq_set_ = nullptr;
  irq_ctx_ = nullptr;
}

void Uart::attach_irq(void (*set)(void* ctx, bool level), void* ctx) {
  mmu::SpinLockGuard g(lock_);
  irq_set_ = set;
  irq_ctx_ = ctx;
}

// The highest-priority pending interrupt that IER enables, as IIR shows it.
uint8_t Uart::iir() const {
  lock_.assert_held();
  if ((ier_ & kIerRls) && overrun_) return kIirLineStatus;
  if ((ier_ & kIerRda) && rx_count_) return kIirRxData;
  if ((ier_ & kIerThre) && thre_pending_) return kIirThre;
  return kIirNoInterrupt;
}

void Uart::update_irq() {
  lock_.assert_held();
  const bool level = iir() != kIirNoInterrupt && (mcr_ & kMcrOut2);
  if (level == irq_level_) return;
  irq_level_ = level;
  if (irq_set_) irq_set_(irq_ctx_, level);
}

void Uart::receive(uint8_t c) {
  mmu::SpinLockGuard g(lock_);
  push_rx(c);
}

unsigned Uart::rx_room() {
  mmu::SpinLockGuard g(lock_);
  return kFifo - rx_count_;
}

void Uart::push_rx(uint8_t c) {
  lock_.assert_held();
  if (rx_count_ == kFifo) {
    overrun_ = true;
  } else {
    rx_[(rx_head_ + rx_count_) % kFifo] = c;
    rx_count_++;
  }
  update_irq();
}

uint8_t Uart::read(uint16_t port) {
  mmu::SpinLockGuard g(lock_);
  switch (port - kBase) {
    case 0: {
      if (lcr_ & kLcrDlab) return dll_;
      if (!rx_count_) return 0;
      const uint8_t c = rx_[rx_head_];
      rx_head_ = (rx_head_ + 1) % kFifo;
      rx_count_--;
      update_irq();
      return c;
    }
    case 1: return (lcr_ & kLcrDlab) ? dlm_ : ier_;
    case 2: {
      flush_raw();  // a driver that polls IIR/LSR is between bytes: show what it sent
      const uint8_t v = iir();
      if (v == kIirThre) {  // reading IIR while it shows THRE clears that interrupt
        thre_pending_ = false;
        update_irq();
      }
      return static_cast<uint8_t>(v | ((fcr_ & 1) ? kIirFifos : 0));
    }
    case 3: return lcr_;
    case 4: return mcr_;
    case 5: {
      flush_raw();
      const uint8_t v = static_cast<uint8_t>(kLsrThre | kLsrTemt | (rx_count_ ? kLsrDr : 0) | (overrun_ ? kLsrOe : 0));
      if (overrun_) {  // reading LSR clears the error bits and the line status interrupt
        overrun_ = false;
        update_irq();
      }
      return v;
    }
    // In loopback mode the modem inputs follow the outputs, wired as the data sheet's loopback
    // diagram says: RTS -> CTS, DTR -> DSR, OUT1 -> RI, OUT2 -> DCD (so MCR 0x0A reads back as
    // MSR 0x90, the check drivers make before they trust a port). Otherwise "the other end is
    // there".
    case 6:
      if (mcr_ & kMcrLoop)
        return static_cast<uint8_t>(((mcr_ & kMcrRts) ? kMsrCts : 0) | ((mcr_ & kMcrDtr) ? kMsrDsr : 0) |
                                    ((mcr_ & kMcrOut1) ? kMsrRi : 0) | ((mcr_ & kMcrOut2) ? kMsrDcd : 0));
      return kMsrCts | kMsrDsr | kMsrDcd;
    case 7: return scr_;
  }
  return 0xFF;
}

void Uart::write(uint16_t port, uint8_t v) {
  mmu::SpinLockGuard g(lock_);
  switch (port - kBase) {
    case 0:
      if (lcr_ & kLcrDlab) {
        dll_ = v;
        return;
      }
      // In loopback mode the transmitter's output is wired to the receiver's input.
      if (mcr_ & kMcrLoop) push_rx(v);
      else transmit(v);
      // The byte left at once: the THR is empty again, which is a new THRE interrupt.
      thre_pending_ = true;
      update_irq();
      return;
    case 1:
      if (lcr_ & kLcrDlab) {
        dlm_ = v;
        return;
      }
      // Enabling THRE with the THR empty raises it at once (drivers count on it).
      if ((v & kIerThre) && !(ier_ & kIerThre)) thre_pending_ = true;
      ier_ = v & 0x0F;
      update_irq();
      return;
    case 2:
      fcr_ = v & 0xC9;
      if (v & 0x02) {  // clear the receive FIFO
        rx_head_ = rx_count_ = 0;
        update_irq();
      }
      return;
    case 3: lcr_ = v; return;
    case 4:
      mcr_ = v & 0x1F;
      update_irq();
      return;
    case 7: scr_ = v; return;
    default: return;  // LSR and MSR are read-only
  }
}

void Uart::emit_line(const char* text) {
  lock_.assert_held();
  x86::log::plain("vm%u: %s", vm_id_, text);
  char* k = kept_[kept_next_];
  unsigned n = 0;
  for (; text[n] && n + 1 < ConsoleLine::kCapacity; n++) k[n] = text[n];
  k[n] = 0;
  kept_next_ = (kept_next_ + 1) % kKeptLines;
  if (kept_count_ < kKeptLines) kept_count_++;
}

void Uart::flush_raw() {
  lock_.assert_held();
  if (!raw_len_) return;
  x86::log::raw(raw_buf_, raw_len_);
  raw_len_ = 0;
}

void Uart::transmit(uint8_t c) {
  lock_.assert_held();
  if (raw_) {
    raw_buf_[raw_len_++] = static_cast<char>(c);
    if (raw_len_ == kRawBatch || c == '\n') flush_raw();
    return;
  }
  line_.put(c, [this](const char* text) NO_THREAD_SAFETY_ANALYSIS { emit_line(text); });
}

void Uart::flush_locked() {
  lock_.assert_held();
  flush_raw();
  line_.flush([this](const char* text) NO_THREAD_SAFETY_ANALYSIS { emit_line(text); });
}

void Uart::print_last_lines() {
  mmu::SpinLockGuard g(lock_);
  flush_locked();
  if (!kept_count_) return;
  x86::log::plain("vm%u: the guest's last %u console line(s):", vm_id_, kept_count_);
  const unsigned first = (kept_next_ + kKeptLines - kept_count_) % kKeptLines;
  for (unsigned i = 0; i < kept_count_; i++) x86::log::plain("vm%u: | %s", vm_id_, kept_[(first + i) % kKeptLines]);
}

void Uart::flush() {
  mmu::SpinLockGuard g(lock_);
  flush_locked();
}

// --- migration state (see the header) ---

void Uart::save(State& s) {
  mmu::SpinLockGuard g(lock_);
  flush_raw();  // raw console bytes already sent belong to the source VM's output
  s.ier = ier_;
  s.lcr = lcr_;
  s.mcr = mcr_;
  s.scr = scr_;
  s.dll = dll_;
  s.dlm = dlm_;
  s.fcr = fcr_;
  s.line = line_;
  memcpy(s.kept, kept_, sizeof s.kept);
  s.kept_next = kept_next_;
  s.kept_count = kept_count_;
  memcpy(s.rx, rx_, sizeof s.rx);
  s.rx_head = rx_head_;
  s.rx_count = rx_count_;
  s.overrun = overrun_;
  s.thre_pending = thre_pending_;
  s.irq_level = irq_level_;
  line_.clear();  // the unfinished line moves with the state: not printed twice
}

void Uart::restore(const State& s) {
  mmu::SpinLockGuard g(lock_);
  ier_ = s.ier;
  lcr_ = s.lcr;
  mcr_ = s.mcr;
  scr_ = s.scr;
  dll_ = s.dll;
  dlm_ = s.dlm;
  fcr_ = s.fcr;
  line_ = s.line;
  memcpy(kept_, s.kept, sizeof kept_);
  kept_next_ = s.kept_next;
  kept_count_ = s.kept_count;
  memcpy(rx_, s.rx, sizeof rx_);
  rx_head_ = s.rx_head;
  rx_count_ = s.rx_count;
  overrun_ = s.overrun;
  thre_pending_ = s.thre_pending;
  // The interrupt line level: the IOAPIC/PIC input state moved with the chipset; the UART's own
  // view must agree with it, so take it as saved without calling the callback again.
  irq_level_ = s.irq_level;
}

}  // namespace hv
