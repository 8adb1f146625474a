// IDT construction and interrupt dispatch (see idt.h).
#include "arch/x86/idt.h"

#include "arch/x86/gdt.h"
#include "arch/x86/log.h"
#include "arch/x86/percpu.h"

extern "C" const uint64_t isr_stub_table[256];

namespace x86::idt {
namespace {

struct [[gnu::packed]] Gate {
  uint16_t offset_low;
  uint16_t selector;
  uint8_t ist;
  uint8_t type_attr;  // P | DPL | type (0xE = 64-bit interrupt gate)
  uint16_t offset_mid;
  uint32_t offset_high;
  uint32_t reserved;
};
static_assert(sizeof(Gate) == 16, "IDT gate size");

// The template, and one table per CPU (4 KiB each).
alignas(16) Gate g_idt[256];
alignas(4096) Gate g_cpu_idt[x86::kMaxCpus][256];
Handler g_handlers[256];

struct [[gnu::packed]] Pseudo {
  uint16_t limit;
  uint64_t base;
};

}  // namespace

void init() {
  for (unsigned v = 0; v < 256; v++) {
    const uint64_t off = isr_stub_table[v];
    Gate& g = g_idt[v];
    g.offset_low = static_cast<uint16_t>(off);
    g.selector = gdt::kCodeSelector;
    g.ist = 0;
    g.type_attr = 0x8E;  // present, DPL 0, interrupt gate (IF cleared on entry)
    g.offset_mid = static_cast<uint16_t>(off >> 16);
    g.offset_high = static_cast<uint32_t>(off >> 32);
    g.reserved = 0;
  }
  g_idt[2].ist = gdt::kIstNmi;
  g_idt[8].ist = gdt::kIstDoubleFault;
  g_idt[18].ist = gdt::kIstMachineCheck;
}

void load_this_cpu() {
  Gate* mine = g_cpu_idt[x86::cpu_index()];
  for (unsigned v = 0; v < 256; v++) mine[v] = g_idt[v];
  Pseudo idtr{sizeof g_idt - 1, reinterpret_cast<uint64_t>(mine)};
  asm volatile("lidt %0" ::"m"(idtr) : "memory");
}

void set_handler(uint8_t vector, Handler handler) { __atomic_store_n(&g_handlers[vector], handler, __ATOMIC_RELEASE); }

}  // namespace x86::idt

extern "C" void interrupt_dispatch(x86::idt::InterruptFrame* frame) {
  using namespace x86::idt;
  const uint64_t v = frame->vector;
  if (v < 32) fatal_exception(frame);
  if (v == kSpuriousVector) return;  // spurious LAPIC interrupt: no EOI
  Handler h = __atomic_load_n(&g_handlers[v], __ATOMIC_ACQUIRE);
  if (h) {
    h(frame);
    return;
  }
  x86::log::warn("unexpected interrupt vector %lu at rip 0x%lx", v, frame->rip);
}
