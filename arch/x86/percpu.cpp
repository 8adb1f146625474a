// The per-CPU data array and the GS base setup (see percpu.h).
#include "arch/x86/percpu.h"

#include "arch/x86/cpu.h"

namespace x86 {

static_assert(__builtin_offsetof(PerCpu, self) == 0, "gs:0 must be the self pointer");
static_assert(__builtin_offsetof(PerCpu, index) == 8, "gs:8 must be the CPU index");

bool g_percpu_ready = false;

namespace {
PerCpu g_percpu[kMaxCpus];
}

PerCpu& percpu(unsigned index) { return g_percpu[index]; }

void percpu_init_this_cpu(unsigned index, uint32_t apic_id, uint64_t stack_top) {
  PerCpu& p = g_percpu[index];
  p.self = &p;
  p.index = index;
  p.apic_id = apic_id;
  p.stack_top = stack_top;
  wrmsr(msr::kGsBase, reinterpret_cast<uint64_t>(&p));
  if (index == 0) g_percpu_ready = true;
}

}  // namespace x86
