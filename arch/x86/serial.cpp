// COM1 16550 driver (polled, transmit only) plus the 0xE9 debug-console mirror.
//
// Without a UART (LSR reads 0xFF on an empty port, the scratch register doesn't keep a value)
// output goes only to 0xE9, and nothing ever waits on a missing transmitter.
#include "arch/x86/serial.h"

#include <stdint.h>

#include "arch/x86/cpu.h"

namespace x86::serial {
namespace {

constexpr uint16_t kCom1 = 0x3F8;
// Register offsets.
constexpr uint16_t kData = 0, kIer = 1, kFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kScratch = 7;
constexpr uint8_t kLsrThre = 1 << 5;  // transmit holding register empty
constexpr uint8_t kLsrTemt = 1 << 6;  // transmitter completely empty
constexpr uint16_t kE9 = 0xE9;

bool g_uart = false;
bool g_e9 = false;

void uart_put(char c) {
  // Bounded wait: a wedged or absent UART must not hang the kernel.
  for (unsigned i = 0; i < 1000000 && !(inb(kCom1 + kLsr) & kLsrThre); i++) cpu_relax();
  outb(kCom1 + kData, static_cast<uint8_t>(c));
}

void put_raw(char c) {
  if (g_uart) uart_put(c);
  if (g_e9) outb(kE9, static_cast<uint8_t>(c));
}

}  // namespace

void init() {
  // Bochs (port_e9_hack) and QEMU (-debugcon) return 0xE9 when reading the port.
  g_e9 = inb(kE9) == 0xE9;

  outb(kCom1 + kScratch, 0x5A);
  g_uart = inb(kCom1 + kScratch) == 0x5A;
  if (!g_uart) return;
  outb(kCom1 + kIer, 0x00);   // no interrupts
  outb(kCom1 + kLcr, 0x80);   // DLAB on
  outb(kCom1 + kData, 1);     // divisor 1 = 115200 baud
  outb(kCom1 + kIer, 0);
  outb(kCom1 + kLcr, 0x03);   // 8N1, DLAB off
  outb(kCom1 + kFcr, 0xC7);   // FIFOs on and cleared, 14-byte threshold
  outb(kCom1 + kMcr, 0x03);   // DTR, RTS
}

void putc(char c) {
  if (c == '\n') put_raw('\r');
  put_raw(c);
}

void write(const char* s, size_t n) {
  for (size_t i = 0; i < n; i++) putc(s[i]);
}

void drain() {
  if (!g_uart) return;
  for (unsigned i = 0; i < 10000000 && !(inb(kCom1 + kLsr) & kLsrTemt); i++) cpu_relax();
}

bool try_getc(unsigned char* c) {
  constexpr uint8_t kLsrDr = 0x01;
  if (!g_uart || !(inb(kCom1 + kLsr) & kLsrDr)) return false;
  *c = inb(kCom1);
  return true;
}

}  // namespace x86::serial
