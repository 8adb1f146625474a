// The 8259 pair (docs/guest-platform.md section 9; hv/devices/pic.h), with interrupts off: the
// PIT's IRQ0 is seen in the IRR and taken with the poll command, never delivered. The same
// checks bare (QEMU TCG: its i8259 is the reference) and under hv:
//   init   ICW1-ICW4 for both (vector bases 0x20/0x28, cascade on IR2, 8086 mode); the masks
//          (OCW1) read back;
//   irr    with only IRQ0 unmasked and the PIT in mode 2, the IRR shows IRQ0 (OCW3 read IRR),
//          the ISR is empty (OCW3 read ISR);
//   poll   the poll command answers 0x80 | 0 and puts IRQ0 in service; a specific EOI clears
//          it; the next poll and a non-specific EOI do the same; with IRQ0 masked the poll
//          answers "nothing" (bit 7 clear) although the IRR still shows the request;
//   elcr   0x4D0/0x4D1 keep only the bits of the lines that may be level-triggered.
#include "tests/guests/chipset_time.h"

const char guest_name[] = "pic";

namespace {

uint8_t read_irr(uint16_t cmd) {
  outb(cmd, 0x0A);
  return inb(cmd);
}
uint8_t read_isr(uint16_t cmd) {
  outb(cmd, 0x0B);
  return inb(cmd);
}
uint8_t poll(uint16_t cmd) {
  outb(cmd, 0x0C);
  return inb(cmd);
}

// Waits (up to 50 ms) for IRQ0 in the master's IRR.
bool wait_irr0(uint64_t hz) {
  const uint64_t t0 = rdtsc();
  while (rdtsc() - t0 < div64(hz, 20)) {
    if (read_irr(0x20) & 1) return true;
  }
  return false;
}

}  // namespace

void guest_test() {
  asm volatile("cli");
  const uint64_t hz = tsc_hz_from_pit();
  CHECK(hz != 0);
  if (!hz) return;

  outb(0x20, 0x11);
  outb(0xA0, 0x11);
  outb(0x21, 0x20);
  outb(0xA1, 0x28);
  outb(0x21, 0x04);
  outb(0xA1, 0x02);
  outb(0x21, 0x01);
  outb(0xA1, 0x01);
  outb(0x21, 0xA5);
  outb(0xA1, 0x5A);
  CHECK_EQ(inb(0x21), 0xA5);
  CHECK_EQ(inb(0xA1), 0x5A);
  outb(0x21, 0xFE);  // only IRQ0
  outb(0xA1, 0xFF);
  CHECK_EQ(read_isr(0x20), 0);
  gprintf("pic: init: ICW1-4 on both, masks read back: ok\n");

  // The PIT's channel 0 at ~1 kHz: IRQ0 requests with interrupts off.
  outb(0x43, 0x34);
  outb(0x40, static_cast<uint8_t>(1193 & 0xFF));
  outb(0x40, static_cast<uint8_t>(1193 >> 8));
  const bool pending = wait_irr0(hz);
  CHECK(pending);
  CHECK_EQ(read_isr(0x20), 0);
  gprintf("pic: irr: IRQ0 from the PIT in the IRR, ISR empty: %s\n", pending ? "ok" : "NOT SEEN");

  const uint8_t p1 = poll(0x20);
  CHECK_EQ(p1, 0x80);
  CHECK_EQ(read_isr(0x20), 0x01);
  outb(0x20, 0x60);  // specific EOI, IRQ0
  CHECK_EQ(read_isr(0x20), 0x00);
  CHECK(wait_irr0(hz));
  const uint8_t p2 = poll(0x20);
  CHECK_EQ(p2, 0x80);
  CHECK_EQ(read_isr(0x20), 0x01);
  outb(0x20, 0x20);  // non-specific EOI
  CHECK_EQ(read_isr(0x20), 0x00);
  outb(0x21, 0xFF);
  CHECK(wait_irr0(hz));
  const uint8_t p3 = poll(0x20);
  CHECK_EQ(p3 & 0x80, 0);
  CHECK_EQ(read_isr(0x20), 0x00);
  CHECK_EQ(read_irr(0x20) & 1, 1);
  gprintf("pic: poll: 0x%x, ISR set, specific EOI; 0x%x, non-specific EOI; masked: 0x%x with IRQ0 still in the IRR: ok\n", p1,
          p2, p3);

  const uint8_t e0 = inb(0x4D0), e1 = inb(0x4D1);
  outb(0x4D0, 0xFF);
  outb(0x4D1, 0xFF);
  const uint8_t m0 = inb(0x4D0), m1 = inb(0x4D1);
  CHECK_EQ(m0, 0xF8);
  CHECK_EQ(m1, 0xDE);
  outb(0x4D0, e0);
  outb(0x4D1, e1);
  gprintf("pic: elcr: 0x%x 0x%x writable (was 0x%x 0x%x): ok\n", m0, m1, e0, e1);
  outb(0x43, 0x30);  // channel 0 back to a one-shot
  outb(0x40, 0);
  outb(0x40, 0);
}
