// The 8254 PIT of a VM (ports 0x40-0x43) and the PC's port 0x61 (system control port B:
// channel 2's gate and speaker enable in, channel 2's OUT and the refresh toggle out), as the
// Intel 8254 data sheet describes them.
//
// Time: the PIT counts at 1.193182 MHz. The device knows no clock: every call passes `now`, the
// VM's time in PIT ticks (hv/devices/chipset.cpp derives it from the guest TSC that every vCPU
// of the VM shares: host TSC - Vm::tsc_origin), so the counters are pure functions of the time
// at which a count was loaded, and tests run on fake time (tests/unit/pit_test.cpp).
//
// Contract:
// - Channels 0, 1 and 2; modes 0 (interrupt on terminal count), 2 (rate generator), 3 (square
//   wave), 4 (software strobe), 1 and 5 (hardware-triggered: started by a rising gate);
//   binary and BCD; access modes LSB, MSB, LSB then MSB; counter latch command; read-back
//   command (count and status latches, status byte: OUT, null count, access, mode, BCD).
//   Gates: channels 0 and 1 always high, channel 2's is bit 0 of port 0x61.
// - A new count takes effect when it is written (the real part waits for the end of the current
//   period in modes 2 and 3): guests reprogramming a running periodic timer see it restart.
// - IRQ0 is channel 0's OUT: poll(now) reports whether OUT had a rising edge since the last
//   poll (several missed periods are coalesced into one edge: an edge-triggered line cannot
//   carry more), next_irq_tick(now) the tick of the next rising edge, so the caller can bound
//   how long it may go without polling.
// - One lock for the device; every call may come from any vCPU at once.
#pragma once

#include <stdint.h>

#include "mmu/lock.h"

namespace hv {

class Pit {
 public:
  static constexpr uint64_t kHz = 1193182;
  static constexpr uint64_t kNever = ~0ull;

  void reset() EXCLUDES(lock_);
  // Ports 0x40-0x43 and 0x61.
  uint8_t read(uint16_t port, uint64_t now) EXCLUDES(lock_);
  void write(uint16_t port, uint8_t value, uint64_t now) EXCLUDES(lock_);
  // True when channel 0's OUT rose since the previous poll: pulse IRQ0.
  bool poll(uint64_t now) EXCLUDES(lock_);
  // The tick of channel 0's next rising edge (kNever: none is coming).
  uint64_t next_irq_tick(uint64_t now) EXCLUDES(lock_);

  // For tests: the counter as a read would see it, and OUT.
  uint16_t count(unsigned ch, uint64_t now) EXCLUDES(lock_);
  bool out(unsigned ch, uint64_t now) EXCLUDES(lock_);

 private:
  struct Channel {
    uint8_t mode = 0, rw = 3;
    bool bcd = false;
    uint16_t reload = 0;       // as written (BCD digits in BCD mode)
    bool armed = false;        // a complete count has been written since the control word
    bool running = false;      // counting now (armed, gate and trigger allow it)
    uint64_t acc = 0;          // ticks counted before `start` (a gate pause in modes 0 and 4)
    uint64_t start = 0;        // tick at which the current run began
    uint64_t load_tick = 0;    // when the count was written (null count until the next tick)
    bool gate = true;
    bool write_msb_next = false, read_msb_next = false;
    bool count_latched = false, status_latched = false, latch_msb_next = false;
    uint16_t latched_count = 0;
    uint8_t latched_status = 0;
    uint64_t edges_seen = 0;   // rising OUT edges already reported (channel 0)
    bool operator==(const Channel&) const = default;
  };
  static uint64_t modulus(const Channel& c);
  static uint64_t initial(const Channel& c);
  static uint64_t elapsed(const Channel& c, uint64_t now);
  static uint64_t value(const Channel& c, uint64_t now);
  static uint16_t shown(const Channel& c, uint64_t v);
  static bool out_of(const Channel& c, uint64_t now);
  static uint64_t edges(const Channel& c, uint64_t now);
  static uint64_t next_edge_elapsed(const Channel& c, uint64_t now);
  static uint8_t status_of(const Channel& c, uint64_t now);
  void restart(Channel& c, uint64_t now) REQUIRES(lock_);
  void set_gate(Channel& c, bool gate, uint64_t now) REQUIRES(lock_);
  void control(uint8_t v, uint64_t now) REQUIRES(lock_);
  void write_count(Channel& c, uint8_t v, uint64_t now) REQUIRES(lock_);
  uint8_t read_count(Channel& c, uint64_t now) REQUIRES(lock_);

  mmu::SpinLock lock_;
  Channel ch_[3] GUARDED_BY(lock_);
  uint8_t port61_ GUARDED_BY(lock_) = 0;  // bits 3:0 as written
 public:
  // --- migration state (hv/vm_state.h, docs/migration.md): everything the guest can observe ---
  // Counting is in PIT ticks of the VM's own clock (guest TSC based, hv/devices/chipset.cpp), so
  // the values stay valid in a VM that keeps the guest TSC (the migration target does).
  struct State {
    Channel ch[3];
    uint8_t port61 = 0;
    bool operator==(const State&) const = default;
  };
  void save(State& s) EXCLUDES(lock_);
  void restore(const State& s) EXCLUDES(lock_);
};

}  // namespace hv
