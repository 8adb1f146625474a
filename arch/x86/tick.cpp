// The per-CPU tick (see tick.h).
#include "arch/x86/tick.h"

#include "arch/x86/apic.h"
#include "arch/x86/cpu.h"
#include "arch/x86/idt.h"
#include "arch/x86/percpu.h"
#include "arch/x86/timer.h"

namespace x86::tick {
namespace {

struct alignas(64) State {
  // Written by this CPU's interrupt handler and read by the same CPU's code (ticks also by
  // the summary): relaxed atomics keep the compiler from caching the flag across the
  // interrupt; no ordering with other data is needed.
  uint32_t pending = 0;
  uint64_t ticks = 0;
  uint64_t slice_end_tsc = 0;
};
State g_state[x86::kMaxCpus];
uint64_t g_period_us = 10'000;
uint64_t g_period_tsc = 0;

void handler(idt::InterruptFrame*) {
  State& s = g_state[x86::cpu_index()];
  __atomic_store_n(&s.pending, 1u, __ATOMIC_RELAXED);
  __atomic_store_n(&s.ticks, s.ticks + 1, __ATOMIC_RELAXED);
  apic::eoi();
}

}  // namespace

void init(uint64_t period_us) {
  g_period_us = period_us ? period_us : 10'000;
  g_period_tsc = g_period_us * timer::tsc_khz() / 1000;
  idt::set_handler(kVector, handler);
}

void start_this_cpu() {
  consume();
  apic::timer_periodic(g_period_us, kVector);
}

void stop_this_cpu() { apic::timer_stop(); }

bool pending() {
  const State& s = g_state[x86::cpu_index()];
  return __atomic_load_n(&s.pending, __ATOMIC_RELAXED) || x86::rdtsc() >= s.slice_end_tsc;
}

void consume() {
  State& s = g_state[x86::cpu_index()];
  __atomic_store_n(&s.pending, 0u, __ATOMIC_RELAXED);
  s.slice_end_tsc = x86::rdtsc() + g_period_tsc;
}

uint64_t period_us() { return g_period_us; }
uint64_t ticks(unsigned cpu) { return __atomic_load_n(&g_state[cpu].ticks, __ATOMIC_RELAXED); }

}  // namespace x86::tick
