// Per-CPU GDT and TSS construction and loading (see gdt.h).
#include "arch/x86/gdt.h"

#include "arch/x86/percpu.h"
#include "arch/x86/string.h"

namespace x86::gdt {
namespace {

// The 64-bit TSS (Intel SDM Vol. 3A, 8.7): no I/O bitmap, only the stack pointers matter.
struct [[gnu::packed]] Tss {
  uint32_t reserved0;
  uint64_t rsp[3];
  uint64_t reserved1;
  uint64_t ist[7];
  uint64_t reserved2;
  uint16_t reserved3;
  uint16_t iomap_base;
};
static_assert(sizeof(Tss) == 104, "TSS size");

struct alignas(16) CpuTables {
  uint64_t gdt[5];  // null, code, data, TSS low, TSS high
  Tss tss;
};

CpuTables g_tables[x86::kMaxCpus];
alignas(16) uint8_t g_bsp_ist[kIstCount * kIstStackSize];

struct [[gnu::packed]] Pseudo {
  uint16_t limit;
  uint64_t base;
};

}  // namespace

uint64_t bsp_ist_area() { return reinterpret_cast<uint64_t>(g_bsp_ist); }

void init_this_cpu(unsigned cpu, uint64_t ist_area) {
  CpuTables& t = g_tables[cpu];
  memset(&t, 0, sizeof t);
  t.gdt[0] = 0;
  t.gdt[1] = 0x00AF9B000000FFFFull;  // 64-bit code: P, DPL 0, execute/read, accessed, L, G
  t.gdt[2] = 0x00CF93000000FFFFull;  // data: P, DPL 0, read/write, accessed, D/B, G
  for (unsigned i = 0; i < kIstCount; i++) t.tss.ist[i] = ist_area + (i + 1) * kIstStackSize;
  t.tss.iomap_base = sizeof(Tss);  // no I/O permission bitmap

  // 16-byte system descriptor: available 64-bit TSS (type 9), present.
  const uint64_t base = reinterpret_cast<uint64_t>(&t.tss);
  const uint64_t limit = sizeof(Tss) - 1;
  t.gdt[3] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89ull << 40) | (((limit >> 16) & 0xF) << 48) |
             (((base >> 24) & 0xFF) << 56);
  t.gdt[4] = base >> 32;

  Pseudo gdtr{sizeof t.gdt - 1, reinterpret_cast<uint64_t>(t.gdt)};
  asm volatile(
      "lgdt %0\n\t"
      "pushq %1\n\t"
      "leaq 1f(%%rip), %%rax\n\t"
      "pushq %%rax\n\t"
      "lretq\n"
      "1:\n\t"
      "movw %w2, %%ax\n\t"
      "movw %%ax, %%ds\n\t"
      "movw %%ax, %%es\n\t"
      "movw %%ax, %%ss\n\t"
      "ltr %w3\n\t"
      :
      : "m"(gdtr), "i"(static_cast<uint64_t>(kCodeSelector)), "r"(static_cast<uint32_t>(kDataSelector)),
        "r"(static_cast<uint32_t>(kTssSelector))
      : "rax", "memory");
}

}  // namespace x86::gdt
