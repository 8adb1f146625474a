// The IOAPIC at 0xFEC00000 (docs/guest-platform.md section 9; hv/devices/ioapic.h), with
// interrupts off: what is observable without taking an interrupt. The same checks bare (QEMU
// TCG: its IOAPIC is the reference) and under hv:
//   regs     version register: 24 entries (maximum redirection entry 23), version 0x11 (hv) or
//            0x20 (QEMU's default) printed; the ID register keeps bits 27:24;
//   entries  redirection entries read back what was written (vector, delivery mode, destination
//            mode, polarity, trigger, mask, destination) and their read-only bits (delivery
//            status, remote IRR) stay clear;
//   remote   pin 8 (the RTC) as an unmasked level entry: the RTC's periodic interrupt sets
//            remote IRR (the interrupt is sent and waits for an EOI that never comes: IF=0);
//            switching the entry to edge clears it.
#include "tests/guests/chipset_time.h"

const char guest_name[] = "ioapic";

namespace {

constexpr uint32_t kBase = 0xFEC00000;

uint32_t io_read(uint8_t reg) {
  poke32(kBase, reg);
  return peek32(kBase + 0x10);
}
void io_write(uint8_t reg, uint32_t v) {
  poke32(kBase, reg);
  poke32(kBase + 0x10, v);
}
uint8_t cmos(uint8_t r) {
  outb(0x70, r);
  return inb(0x71);
}
void cmos_set(uint8_t r, uint8_t v) {
  outb(0x70, r);
  outb(0x71, v);
}

}  // namespace

void guest_test() {
  asm volatile("cli");
  const uint64_t hz = tsc_hz_from_pit();
  CHECK(hz != 0);
  if (!hz) return;

  const uint32_t ver = io_read(0x01);
  CHECK_EQ((ver >> 16) & 0xFF, 23);
  CHECK((ver & 0xFF) == 0x11 || (ver & 0xFF) == 0x20);
  const uint32_t id0 = io_read(0x00);
  io_write(0x00, 0x0A000000);
  CHECK_EQ(io_read(0x00) & 0x0F000000, 0x0A000000);
  io_write(0x00, id0);
  gprintf("ioapic: regs: version 0x%x (24 entries), ID writable, arbitration 0x%x: ok\n", ver, io_read(0x02));

  // Pin 10: vector 0xF5, lowest priority, logical, active low, level, masked; destination 5.
  io_write(0x10 + 2 * 10, 0x0001A9F5 | (1u << 12) | (1u << 14));
  io_write(0x11 + 2 * 10, 0x05000000);
  const uint32_t lo = io_read(0x10 + 2 * 10), hi = io_read(0x11 + 2 * 10);
  CHECK_EQ(lo, 0x0001A9F5);
  CHECK_EQ(hi >> 24, 5);
  io_write(0x10 + 2 * 10, 0x00010000);
  io_write(0x11 + 2 * 10, 0);
  CHECK_EQ(io_read(0x10 + 2 * 10), 0x00010000);
  gprintf("ioapic: entries: 0x%x 0x%x read back, read-only bits clear: ok\n", hi, lo);

  // Remote IRR from the RTC's periodic interrupt on a level entry.
  const uint8_t a0 = cmos(0x0A), b0 = cmos(0x0B);
  io_write(0x11 + 2 * 8, 0x00000000);         // to APIC ID 0
  io_write(0x10 + 2 * 8, 0x00008040);         // vector 0x40, fixed, physical, active high, level, unmasked
  cmos(0x0C);
  cmos_set(0x0A, static_cast<uint8_t>((a0 & 0xF0) | 0x06));  // 1024 Hz
  cmos_set(0x0B, static_cast<uint8_t>(b0 | 0x40));           // PIE
  bool remote = false;
  const uint64_t t0 = rdtsc();
  while (rdtsc() - t0 < div64(hz, 10)) {
    if (io_read(0x10 + 2 * 8) & (1u << 14)) {
      remote = true;
      break;
    }
  }
  cmos_set(0x0B, b0);
  cmos(0x0C);
  const uint32_t level_entry = io_read(0x10 + 2 * 8);
  CHECK(remote);
  io_write(0x10 + 2 * 8, 0x00010040);  // edge, masked
  const uint32_t edge_entry = io_read(0x10 + 2 * 8);
  CHECK_EQ(edge_entry & (1u << 14), 0);
  cmos_set(0x0A, a0);
  gprintf("ioapic: remote: RTC on pin 8 level: entry 0x%x (remote IRR %s), switched to edge 0x%x: ok\n", level_entry,
          remote ? "set" : "NOT SET", edge_entry);
}
