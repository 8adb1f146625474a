// Interrupts for the test guests (issue 11's conformance guests): an IDT whose vectors 0-31 are
// the library's exception handlers (trap.asm: unexpected exceptions are still reported) and
// whose vectors 32-255 call one C++ handler with the vector, and the APIC and IOAPIC registers
// the guests program. Interrupt gates: a handler runs with IF = 0; it does its own EOI (the
// LAPIC's for APIC-delivered vectors, the 8259's for ExtINT ones).
//
// probe() (guest.h) loads the library's exception-only IDT: call irq_load() after a probe.
// One IDT for all vCPUs: each vCPU calls irq_load() once. Not in the library objects every guest
// links (its IDT and stubs would move the others' multiboot information): a guest that uses it
// lists lib/irq.cpp among its sources (tests/guests/CMakeLists.txt).
#pragma once

#include <stdint.h>

using IrqHandler = void (*)(uint8_t vector);

// Builds the IDT with `handler` for vectors 32-255 and loads it on this vCPU.
void irq_install(IrqHandler handler);
void irq_load();

// The local APIC in xAPIC mode at its default base (SDM Vol. 3A, 11.4.1).
namespace lapic {
inline constexpr uint32_t kBase = 0xFEE00000;
inline constexpr uint32_t kId = 0x20, kTpr = 0x80, kEoi = 0xB0, kSvr = 0xF0, kIsr = 0x100, kTmr = 0x180, kIrr = 0x200,
                          kIcrLow = 0x300, kIcrHigh = 0x310, kLvtTimer = 0x320, kLvtLint0 = 0x350, kLvtLint1 = 0x360,
                          kLvtError = 0x370;
inline constexpr uint32_t kMasked = 1u << 16;
uint32_t read(uint32_t off);
void write(uint32_t off, uint32_t v);
inline void eoi() { write(kEoi, 0); }
inline uint32_t id() { return read(kId) >> 24; }
// Bit `v` of the 256-bit ISR, TMR or IRR whose first register is at `first`.
inline bool bit(uint32_t first, uint8_t v) { return (read(first + (v / 32) * 0x10) >> (v % 32)) & 1; }
// Software-enables the APIC (spurious vector 0xFF), TPR 0, LINT0/LINT1/error/timer masked.
void enable();
}  // namespace lapic

// The I/O APIC at its default base (82093AA: IOREGSEL at +0, IOWIN at +0x10).
namespace ioapic {
inline constexpr uint32_t kBase = 0xFEC00000;
uint32_t read(uint8_t reg);
void write(uint8_t reg, uint32_t v);
inline constexpr uint32_t kMasked = 1u << 16, kLevel = 1u << 15, kRemoteIrr = 1u << 14;
// Redirection entry of `pin`: low word `low`, destination APIC ID `dest` (physical).
void route(unsigned pin, uint32_t low, uint8_t dest);
inline uint32_t entry(unsigned pin) { return read(static_cast<uint8_t>(0x10 + 2 * pin)); }
void mask_all();
}  // namespace ioapic
