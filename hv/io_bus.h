// The port-I/O bus of one VM: every emulated device that answers on x86 I/O ports claims a
// range of ports here, and the I/O exit handler (hv/exit_io.cpp) routes each IN/OUT - and
// each element of an INS/OUTS - to the device that claimed the port. It is the one port
// dispatch of hv: the 16550 (hv/devices/uart.h), the exit port 0xF4, fw_cfg (hv/devices/fw_cfg.h), the guest
// console 0xE9 and the result port 0x500 live on it, and later devices (PIC, PIT, RTC, ...)
// register the same way.
//
// Contract:
// - Claims are made while the VM is being built (before any of its vCPUs runs) by one CPU;
//   the table does not change afterwards until the VM is destroyed (clear()). So lookups take
//   no lock: the VM runner starts the vCPUs through cross-CPU work items, whose hand-off
//   (release on post, acquire on take: hv/cpu_work.h) orders the claims before every lookup.
// - Ranges never overlap: claim() refuses an overlapping range (and a full table) with a
//   reason, so the VM is not started. At most kMaxRanges ranges per VM.
// - An access of `size` bytes (1, 2 or 4) at `port` goes whole to the device whose range
//   contains `port` (the first port), as a bus whose devices decode the address of the cycle.
//   The device sees the absolute port and the size and decides what a wider or narrower
//   access means (most take the low byte, as an 8-bit ISA device would).
// - A port that no device claimed is an empty bus: reads return all ones, writes are dropped.
// - Callbacks run on the CPU of the vCPU that made the access, possibly on several vCPUs of
//   the VM at once: each device does its own locking. A callback may stop the vCPU
//   (Vcpu::stop, e.g. the exit port); the handler has already advanced RIP for a single
//   IN/OUT, and a string instruction stops iterating when the vCPU is stopped.
// - `read` returns the value in the low `size` bytes (higher bytes are ignored); `write`
//   gets the value in the low `size` bytes, the rest zero.
#pragma once

#include <stdint.h>

namespace hv {

class Vcpu;

struct IoDevice {
  const char* name;  // for reports ("uart", "fw_cfg", ...)
  uint16_t base;     // first port
  uint16_t count;    // ports claimed: [base, base + count)
  void* ctx;         // handed back to the callbacks (the device object)
  uint32_t (*read)(void* ctx, Vcpu& vcpu, uint16_t port, unsigned size);
  void (*write)(void* ctx, Vcpu& vcpu, uint16_t port, unsigned size, uint32_t value);
  // Its reads and writes change nothing the vCPU's safe point looks at (no interrupt line, no
  // stop, no time): the next entry may be a fast one (hv/fast_entry.h).
  bool quiet = false;
};

class IoBus {
 public:
  static constexpr unsigned kMaxRanges = 32;

  // Adds `dev` (before the VM runs). nullptr, or why not (overlap, empty range, table full).
  const char* claim(const IoDevice& dev);
  // The device claiming `port`, or nullptr (empty bus). One load: every I/O exit asks, the
  // guest-mode loop twice (hv/fast_entry.h).
  const IoDevice* find(uint16_t port) const {
    const unsigned i = owner_[port];
    return i ? &devs_[i - 1] : nullptr;
  }
  // Forgets every claim (VM teardown or rebuild; no vCPU runs).
  void clear();
  unsigned count() const { return count_; }

 private:
  static_assert(kMaxRanges < 256, "owner_ holds a range's index plus one in a byte");
  IoDevice devs_[kMaxRanges] = {};
  unsigned count_ = 0;
  // Per port: 1 + the index in devs_ of the range that claims it, 0 for none. 64 KiB per VM,
  // where a scan of the ranges cost about six instructions per range on every I/O exit.
  uint8_t owner_[0x10000] = {};
};

}  // namespace hv
