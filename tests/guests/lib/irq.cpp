// The test guests' interrupt vectors and APIC helpers (irq.h).
#include "tests/guests/lib/irq.h"

#include "tests/guests/lib/guest.h"

namespace {

IrqHandler volatile g_handler = nullptr;

struct __attribute__((packed)) IdtDesc {
  uint16_t limit;
  uint32_t base;
};
uint64_t g_idt[256] __attribute__((aligned(8)));

}  // namespace

extern "C" void irq_entry(uint32_t vector) {
  if (IrqHandler h = g_handler) h(static_cast<uint8_t>(vector));
}

// One 16-byte stub per vector 32-255: push the vector, save the registers, call irq_entry, IRET.
asm(R"(
    .text
    .balign 16
    .globl irq_vector_stubs
irq_vector_stubs:
    .set vec, 32
    .rept 224
    .balign 16
    pushl $vec
    jmp irq_vector_common
    .set vec, vec + 1
    .endr
irq_vector_common:
    pushal
    cld
    pushl 32(%esp)
    call irq_entry
    addl $4, %esp
    popal
    addl $4, %esp
    iret
)");
extern "C" char irq_vector_stubs[];

void irq_install(IrqHandler handler) {
  g_handler = handler;
  // The library's exception entries first: a probe loads them, and sidt finds them.
  probe([] {});
  IdtDesc lib;
  asm volatile("sidt %0" : "=m"(lib));
  const uint64_t* src = reinterpret_cast<const uint64_t*>(lib.base);
  for (unsigned v = 0; v < 32; v++) g_idt[v] = src[v];
  for (unsigned v = 32; v < 256; v++) {
    const uint32_t off = reinterpret_cast<uint32_t>(irq_vector_stubs) + (v - 32) * 16;
    // 32-bit interrupt gate, present, DPL 0, the library's code selector 0x08.
    g_idt[v] = (off & 0xFFFF) | (0x08ull << 16) | (0x8E00ull << 32) | (static_cast<uint64_t>(off >> 16) << 48);
  }
  irq_load();
}

void irq_load() {
  IdtDesc d{sizeof g_idt - 1, reinterpret_cast<uint32_t>(g_idt)};
  asm volatile("lidt %0" ::"m"(d));
}

namespace lapic {
uint32_t read(uint32_t off) { return peek32(kBase + off); }
void write(uint32_t off, uint32_t v) { poke32(kBase + off, v); }
void enable() {
  write(kSvr, 0x100 | 0xFF);
  write(kLvtLint0, kMasked);
  write(kLvtLint1, kMasked);
  write(kLvtError, kMasked | 0xFE);
  write(kLvtTimer, kMasked | 0x30);
  write(kTpr, 0);
}
}  // namespace lapic

namespace ioapic {
uint32_t read(uint8_t reg) {
  poke32(kBase, reg);
  return peek32(kBase + 0x10);
}
void write(uint8_t reg, uint32_t v) {
  poke32(kBase, reg);
  poke32(kBase + 0x10, v);
}
void route(unsigned pin, uint32_t low, uint8_t dest) {
  // Masked while the entry changes, destination first, then the low word.
  write(static_cast<uint8_t>(0x10 + 2 * pin), kMasked);
  write(static_cast<uint8_t>(0x11 + 2 * pin), static_cast<uint32_t>(dest) << 24);
  write(static_cast<uint8_t>(0x10 + 2 * pin), low);
}
void mask_all() {
  const unsigned n = ((read(0x01) >> 16) & 0xFF) + 1;
  for (unsigned pin = 0; pin < n; pin++) write(static_cast<uint8_t>(0x10 + 2 * pin), kMasked);
}
}  // namespace ioapic
