// The 8254 PIT and port 0x61 (see pit.h). Counter behaviour from the Intel 8254 data sheet.
#include "hv/devices/pit.h"

namespace hv {

namespace {
uint64_t from_bcd16(uint16_t v) {
  return (v & 0xF) + ((v >> 4) & 0xF) * 10 + ((v >> 8) & 0xF) * 100 + ((v >> 12) & 0xF) * 1000;
}
uint16_t to_bcd16(uint64_t v) {
  return static_cast<uint16_t>((v % 10) | ((v / 10 % 10) << 4) | ((v / 100 % 10) << 8) | ((v / 1000 % 10) << 12));
}
constexpr uint64_t kRefreshTicks = 18;  // port 0x61 bit 4 toggles every ~15 us (DRAM refresh)
}  // namespace

void Pit::reset() {
  mmu::SpinLockGuard g(lock_);
  for (Channel& c : ch_) c = Channel{};
  port61_ = 0;
  ch_[2].gate = false;
}

uint64_t Pit::modulus(const Channel& c) { return c.bcd ? 10000 : 65536; }

// The count the counter starts from: 0 stands for the modulus (65536, or 10000 in BCD).
uint64_t Pit::initial(const Channel& c) {
  const uint64_t n = c.bcd ? from_bcd16(c.reload) : c.reload;
  return n == 0 ? modulus(c) : n;
}

uint64_t Pit::elapsed(const Channel& c, uint64_t now) {
  return c.running && now > c.start ? c.acc + (now - c.start) : c.acc;
}

// The counting element after `now`, as a number in [0, modulus).
uint64_t Pit::value(const Channel& c, uint64_t now) {
  if (!c.armed) return initial(c) % modulus(c);
  const uint64_t n = initial(c), m = modulus(c), e = elapsed(c, now);
  switch (c.mode) {
    case 2: return (n - e % n) % m;  // n .. 1, reloaded when it would reach 1 -> n
    case 3: {
      // Decrements by two; the first half-period with OUT high, the second low.
      const uint64_t p = e % n, hi = (n + 1) / 2;
      const uint64_t h = p < hi ? p : p - hi;
      return (n - 2 * h) % m;
    }
    default: return (n + m - e % m) % m;  // 0, 1, 4, 5: count down through 0 and wrap
  }
}

uint16_t Pit::shown(const Channel& c, uint64_t v) { return c.bcd ? to_bcd16(v) : static_cast<uint16_t>(v); }

bool Pit::out_of(const Channel& c, uint64_t now) {
  const uint64_t n = initial(c);
  switch (c.mode) {
    case 0:
      return c.armed && elapsed(c, now) >= n;  // low from the control word to terminal count
    case 1:
      return !c.running || elapsed(c, now) >= n;
    case 2:
      if (!c.armed || !c.gate) return true;
      return elapsed(c, now) % n != n - 1;  // low for the one tick at count 1
    case 3:
      if (!c.armed || !c.gate) return true;
      return elapsed(c, now) % n < (n + 1) / 2;
    case 4:
    case 5:
      return !(c.armed && (c.mode == 4 || c.running) && elapsed(c, now) == n);
    default: return true;
  }
}

// Rising edges of OUT since the counter was (re)started.
uint64_t Pit::edges(const Channel& c, uint64_t now) {
  if (!c.armed) return 0;
  const uint64_t n = initial(c), e = elapsed(c, now);
  switch (c.mode) {
    case 0: return e >= n ? 1 : 0;
    case 1: return c.running && e >= n ? 1 : 0;
    case 2:
    case 3: return c.gate ? e / n : 0;
    case 4: return e > n ? 1 : 0;
    case 5: return c.running && e > n ? 1 : 0;
    default: return 0;
  }
}

// The elapsed count at which the next rising edge comes, or kNever.
uint64_t Pit::next_edge_elapsed(const Channel& c, uint64_t now) {
  if (!c.armed || !c.running) return kNever;
  const uint64_t n = initial(c), k = edges(c, now);
  switch (c.mode) {
    case 0:
    case 1: return k == 0 ? n : kNever;
    case 2:
    case 3: return (k + 1) * n;
    case 4:
    case 5: return k == 0 ? n + 1 : kNever;
    default: return kNever;
  }
}

uint8_t Pit::status_of(const Channel& c, uint64_t now) {
  const bool null_count = !c.armed || now <= c.load_tick;
  return static_cast<uint8_t>((out_of(c, now) ? 0x80 : 0) | (null_count ? 0x40 : 0) | (c.rw << 4) | (c.mode << 1) |
                              (c.bcd ? 1 : 0));
}

void Pit::restart(Channel& c, uint64_t now) {
  lock_.assert_held();
  c.acc = 0;
  c.start = now;
  c.edges_seen = 0;
  // Modes 1 and 5 wait for a rising gate; the others count while the gate is high.
  c.running = c.armed && c.gate && c.mode != 1 && c.mode != 5;
}

void Pit::set_gate(Channel& c, bool gate, uint64_t now) {
  lock_.assert_held();
  if (gate == c.gate) return;
  c.gate = gate;
  switch (c.mode) {
    case 0:
    case 4:  // the gate pauses and resumes counting
      if (!gate && c.running) {
        c.acc = elapsed(c, now);
        c.running = false;
      } else if (gate && c.armed) {
        c.start = now;
        c.running = true;
      }
      return;
    case 2:
    case 3:  // low stops counting (OUT high), the rising edge reloads
      if (gate) restart(c, now);
      else c.running = false;
      return;
    default:  // 1 and 5: the rising edge triggers a (re)start
      if (gate && c.armed) {
        c.acc = 0;
        c.start = now;
        c.edges_seen = 0;
        c.running = true;
      }
      return;
  }
}

void Pit::control(uint8_t v, uint64_t now) {
  lock_.assert_held();
  const unsigned sc = v >> 6;
  if (sc == 3) {  // read-back: bit 5 clear latches counts, bit 4 clear latches status
    for (unsigned i = 0; i < 3; i++) {
      if (!(v & (2u << i))) continue;
      Channel& c = ch_[i];
      if (!(v & 0x10) && !c.status_latched) {
        c.status_latched = true;
        c.latched_status = status_of(c, now);
      }
      if (!(v & 0x20) && !c.count_latched) {
        c.count_latched = true;
        c.latched_count = shown(c, value(c, now));
        c.latch_msb_next = false;
      }
    }
    return;
  }
  Channel& c = ch_[sc];
  const unsigned rw = (v >> 4) & 3;
  if (rw == 0) {  // counter latch command; a second one before the read is ignored
    if (!c.count_latched) {
      c.count_latched = true;
      c.latched_count = shown(c, value(c, now));
      c.latch_msb_next = false;
    }
    return;
  }
  c.rw = static_cast<uint8_t>(rw);
  unsigned mode = (v >> 1) & 7;
  if (mode >= 6) mode -= 4;  // 6 and 7 are aliases of 2 and 3
  c.mode = static_cast<uint8_t>(mode);
  c.bcd = v & 1;
  c.armed = false;
  c.running = false;
  c.acc = 0;
  c.edges_seen = 0;
  c.write_msb_next = c.read_msb_next = false;
  c.count_latched = c.status_latched = false;
}

void Pit::write_count(Channel& c, uint8_t v, uint64_t now) {
  lock_.assert_held();
  switch (c.rw) {
    case 1: c.reload = v; break;
    case 2: c.reload = static_cast<uint16_t>(v << 8); break;
    default:
      if (!c.write_msb_next) {
        c.reload = static_cast<uint16_t>((c.reload & 0xFF00) | v);
        c.write_msb_next = true;
        // Mode 0: writing the first byte stops the count (OUT stays low until the next load).
        if (c.mode == 0) {
          c.armed = false;
          c.running = false;
        }
        return;
      }
      c.reload = static_cast<uint16_t>((c.reload & 0x00FF) | (v << 8));
      c.write_msb_next = false;
      break;
  }
  c.armed = true;
  c.load_tick = now;
  restart(c, now);
}

uint8_t Pit::read_count(Channel& c, uint64_t now) {
  lock_.assert_held();
  if (c.status_latched) {
    c.status_latched = false;
    return c.latched_status;
  }
  uint16_t v;
  bool* msb_next;
  if (c.count_latched) {
    v = c.latched_count;
    msb_next = &c.latch_msb_next;
  } else {
    v = shown(c, value(c, now));
    msb_next = &c.read_msb_next;
  }
  uint8_t byte;
  bool done = true;
  switch (c.rw) {
    case 1: byte = static_cast<uint8_t>(v); break;
    case 2: byte = static_cast<uint8_t>(v >> 8); break;
    default:
      byte = *msb_next ? static_cast<uint8_t>(v >> 8) : static_cast<uint8_t>(v);
      done = *msb_next;
      *msb_next = !*msb_next;
      break;
  }
  if (c.count_latched && done) c.count_latched = false;
  return byte;
}

uint8_t Pit::read(uint16_t port, uint64_t now) {
  mmu::SpinLockGuard g(lock_);
  if (port >= 0x40 && port <= 0x42) return read_count(ch_[port - 0x40], now);
  if (port == 0x61) {
    return static_cast<uint8_t>(port61_ | (((now / kRefreshTicks) & 1) ? 0x10 : 0) | (out_of(ch_[2], now) ? 0x20 : 0));
  }
  return 0xFF;  // 0x43 is write-only
}

void Pit::write(uint16_t port, uint8_t v, uint64_t now) {
  mmu::SpinLockGuard g(lock_);
  if (port >= 0x40 && port <= 0x42) {
    write_count(ch_[port - 0x40], v, now);
  } else if (port == 0x43) {
    control(v, now);
  } else if (port == 0x61) {
    port61_ = v & 0x0F;
    set_gate(ch_[2], v & 1, now);
  }
}

bool Pit::poll(uint64_t now) {
  mmu::SpinLockGuard g(lock_);
  Channel& c = ch_[0];
  const uint64_t k = edges(c, now);
  if (k <= c.edges_seen) return false;
  c.edges_seen = k;
  return true;
}

uint64_t Pit::next_irq_tick(uint64_t now) {
  mmu::SpinLockGuard g(lock_);
  const Channel& c = ch_[0];
  const uint64_t e = next_edge_elapsed(c, now);
  if (e == kNever) return kNever;
  const uint64_t cur = elapsed(c, now);
  return e > cur ? now + (e - cur) : now;
}

uint16_t Pit::count(unsigned ch, uint64_t now) {
  mmu::SpinLockGuard g(lock_);
  return shown(ch_[ch], value(ch_[ch], now));
}

bool Pit::out(unsigned ch, uint64_t now) {
  mmu::SpinLockGuard g(lock_);
  return out_of(ch_[ch], now);
}

// --- migration state (see the header) ---

void Pit::save(State& s) {
  mmu::SpinLockGuard g(lock_);
  for (unsigned i = 0; i < 3; i++) s.ch[i] = ch_[i];
  s.port61 = port61_;
}

void Pit::restore(const State& s) {
  mmu::SpinLockGuard g(lock_);
  for (unsigned i = 0; i < 3; i++) ch_[i] = s.ch[i];
  port61_ = s.port61;
}

}  // namespace hv
