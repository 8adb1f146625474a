// Cross-CPU requests (see cpu_work.h).
#include "hv/cpu_work.h"

#include "arch/x86/apic.h"
#include "arch/x86/cpu.h"
#include "arch/x86/idt.h"
#include "arch/x86/percpu.h"
#include "arch/x86/smp.h"
#include "arch/x86/timer.h"
#include "arch/x86/vmx/invalidate.h"
#include "arch/x86/vmx/root_mode.h"

namespace hv::cpu_work {
namespace {

struct alignas(64) Slot {
  // Work item: set by the requester (release), cleared by the target when fn has returned
  // (release); the requester's acquire load of `fn == nullptr` then sees fn's effects.
  void (*fn)(void*) = nullptr;
  void* arg = nullptr;
  // Flush generation asked for / done. The requester bumps `flush_want` and waits until
  // `flush_done` reaches it; the target copies want -> done after its INVEPT.
  uint64_t flush_want = 0;
  uint64_t flush_done = 0;
};
Slot g_slots[x86::kMaxCpus];
uint64_t g_flush_requests = 0;
uint64_t g_remote_flushes = 0;

void kick_handler(idt::InterruptFrame*) { apic::eoi(); }

void (*g_idle_work)() = nullptr;

void idle_hook(unsigned) {
  service();
  if (g_idle_work) g_idle_work();
}

void local_flush() {
  // INVEPT is only valid in VMX operation (#UD otherwise); a CPU outside it caches no
  // EPT-derived translation anyway. Global: this CPU may cache translations of any EPTP
  // the VM used (several roots); over-flushing is always correct.
  if (vmx::in_root_mode()) vmx::invept_global();
}

bool online(unsigned cpu) { return cpu == 0 || x86::percpu(cpu).online; }

}  // namespace

void init(void (*idle_work)()) {
  g_idle_work = idle_work;
  idt::set_handler(kKickVector, kick_handler);
  smp::set_ap_idle_hook(idle_hook);
}

void service() {
  Slot& s = g_slots[x86::cpu_index()];
  const uint64_t want = __atomic_load_n(&s.flush_want, __ATOMIC_ACQUIRE);
  if (want != __atomic_load_n(&s.flush_done, __ATOMIC_RELAXED)) {
    local_flush();
    __atomic_fetch_add(&g_remote_flushes, 1, __ATOMIC_RELAXED);
    // Release: the requester's acquire load sees the flush as done only after INVEPT retired.
    __atomic_store_n(&s.flush_done, want, __ATOMIC_RELEASE);
  }
  // Acquire pairs with the requester's release store of fn (arg was written before it).
  void (*fn)(void*) = __atomic_load_n(&s.fn, __ATOMIC_ACQUIRE);
  if (fn) {
    fn(s.arg);
    __atomic_store_n(&s.fn, static_cast<void (*)(void*)>(nullptr), __ATOMIC_RELEASE);
  }
}

bool run_on(unsigned cpu, void (*fn)(void*), void* arg, uint64_t timeout_us) {
  if (cpu == x86::cpu_index()) {
    fn(arg);
    return true;
  }
  Slot& s = g_slots[cpu];
  s.arg = arg;
  __atomic_store_n(&s.fn, fn, __ATOMIC_RELEASE);
  apic::send_fixed(x86::percpu(cpu).apic_id, kKickVector);
  const uint64_t deadline = timer::now_us() + timeout_us;
  while (__atomic_load_n(&s.fn, __ATOMIC_ACQUIRE) != nullptr) {
    if (timer::now_us() > deadline) return false;
    service();
    x86::cpu_relax();
  }
  return true;
}

void flush_ept_all_cpus() {
  __atomic_fetch_add(&g_flush_requests, 1, __ATOMIC_RELAXED);
  const unsigned me = x86::cpu_index();
  const unsigned n = smp::cpus_online();
  uint64_t want[x86::kMaxCpus];
  for (unsigned cpu = 0; cpu < n; cpu++) {
    if (cpu == me || !online(cpu)) continue;
    want[cpu] = __atomic_add_fetch(&g_slots[cpu].flush_want, 1, __ATOMIC_ACQ_REL);
    apic::send_fixed(x86::percpu(cpu).apic_id, kKickVector);
  }
  local_flush();
  for (unsigned cpu = 0; cpu < n; cpu++) {
    if (cpu == me || !online(cpu)) continue;
    // No timeout: returning before a CPU flushed would let the MMU free a table that CPU's
    // TLB may still use. A CPU that never answers is a hang we want to see, not hide.
    while (__atomic_load_n(&g_slots[cpu].flush_done, __ATOMIC_ACQUIRE) < want[cpu]) {
      service();
      x86::cpu_relax();
    }
  }
}

uint64_t flush_requests() { return __atomic_load_n(&g_flush_requests, __ATOMIC_RELAXED); }
uint64_t remote_flushes() { return __atomic_load_n(&g_remote_flushes, __ATOMIC_RELAXED); }

}  // namespace hv::cpu_work
