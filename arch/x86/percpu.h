// Per-CPU data, reached through the GS base: gs:0 holds a pointer to the CPU's own PerCpu.
//
// CPU indices are dense: 0 is the bootstrap processor, 1..N-1 the APs in the order they were
// started. The index (not the APIC id) is what the logger prints and what mmu::Platform's
// cpu_id() returns.
#pragma once

#include <stdint.h>

namespace x86 {

inline constexpr unsigned kMaxCpus = 64;

struct PerCpu {
  PerCpu* self;        // gs:0
  uint32_t index;      // gs:8
  uint32_t apic_id;
  uint64_t stack_top;  // the CPU's kernel stack (the boot stack on the BSP)
  volatile bool online;
};

// Points GS at percpu(index) on the calling CPU. Call first thing on every CPU.
void percpu_init_this_cpu(unsigned index, uint32_t apic_id, uint64_t stack_top);
PerCpu& percpu(unsigned index);

extern bool g_percpu_ready;  // set once the BSP has a GS base

inline unsigned cpu_index() {
  if (!g_percpu_ready) return 0;
  uint32_t v;
  asm volatile("movl %%gs:8, %0" : "=r"(v));
  return v;
}

}  // namespace x86
