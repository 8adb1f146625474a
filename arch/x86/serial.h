// The kernel console: a 16550 UART (COM1, 0x3F8, 115200 8N1) mirrored to the 0xE9 debug port
// of Bochs and QEMU when that port is present.
#pragma once

#include <stddef.h>

namespace x86::serial {

// Programs COM1 and probes for it and for the 0xE9 port. Safe to call more than once.
void init();
// Writes bytes as they are ("\n" becomes "\r\n" on the UART). Not locked: callers serialise
// (the logger holds its lock).
void write(const char* s, size_t n);
void putc(char c);
// Waits until the UART has shifted out its last bit (LSR.TEMT), so nothing is lost when the
// machine is powered off right after.
void drain();
// One received byte from COM1 (LSR.DR), if there is one; false without a UART. Reading LSR
// concurrently with a writer is harmless (only its error bits clear on read).
bool try_getc(unsigned char* c);

}  // namespace x86::serial
