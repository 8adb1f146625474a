// Several vCPUs in a test guest (see guest.h and docs/hypercalls.md "Several vCPUs").
//
// hv starts vCPUs 1..N-1 at the image's entry with EAX = HV_AP_MAGIC; entry.asm gives each its
// own stack and calls guest_ap_start(). They wait there until vCPU 0 publishes the function to
// run (smp_start), so a test decides when the others join in. Everything here is plain
// shared memory with GCC atomics: the vCPUs run on different physical CPUs at the same time.
#include "tests/guests/lib/guest.h"

namespace {

// Release/acquire pairs: smp_start's release store of g_fn pairs with the acquire load in
// guest_ap_start (an AP sees everything vCPU 0 wrote before it); an AP's release increment of
// g_done pairs with smp_wait_done's acquire load (vCPU 0 sees everything the AP wrote in fn).
void (*g_fn)(unsigned) = nullptr;
uint32_t g_done = 0;
uint32_t g_count = 0;  // 0: not asked yet

// Barrier: the last of N arrivals resets the count and bumps the generation (release); the
// others wait for the generation to change (acquire), so what every vCPU wrote before the
// barrier is visible to all after it.
uint32_t g_arrived = 0;
uint32_t g_generation = 0;

}  // namespace

unsigned vcpu_count() {
  if (!__atomic_load_n(&g_count, __ATOMIC_RELAXED)) {
    unsigned n = 1;
    if (under_hv()) {
      const HvRet r = hv_call(HV_CALL_VCPU_INFO);
      if (r.status == HV_OK && r.rcx >= 1 && r.rcx <= HV_MAX_VCPUS) n = r.rcx;
    }
    __atomic_store_n(&g_count, n, __ATOMIC_RELAXED);
  }
  return __atomic_load_n(&g_count, __ATOMIC_RELAXED);
}

void smp_start(void (*fn)(unsigned)) { __atomic_store_n(&g_fn, fn, __ATOMIC_RELEASE); }

void smp_wait_done() {
  while (__atomic_load_n(&g_done, __ATOMIC_ACQUIRE) + 1 < vcpu_count()) cpu_relax();
}

void barrier() {
  const unsigned n = vcpu_count();
  const uint32_t gen = __atomic_load_n(&g_generation, __ATOMIC_ACQUIRE);
  if (__atomic_add_fetch(&g_arrived, 1, __ATOMIC_ACQ_REL) == n) {
    __atomic_store_n(&g_arrived, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&g_generation, gen + 1, __ATOMIC_RELEASE);
    return;
  }
  while (__atomic_load_n(&g_generation, __ATOMIC_ACQUIRE) == gen) cpu_relax();
}

// vCPU `index` > 0 (entry.asm). The count comes from hv in ECX, so it is known before vCPU 0
// asks for it.
extern "C" [[noreturn]] void guest_ap_start(uint32_t index, uint32_t count) {
  if (count >= 1 && count <= HV_MAX_VCPUS) {
    uint32_t zero = 0;
    __atomic_compare_exchange_n(&g_count, &zero, count, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  }
  void (*fn)(unsigned);
  while (!(fn = __atomic_load_n(&g_fn, __ATOMIC_ACQUIRE))) cpu_relax();
  fn(index);
  __atomic_fetch_add(&g_done, 1, __ATOMIC_RELEASE);
  hv_call(HV_CALL_EXIT, 0);  // this vCPU is done; vCPU 0's status is the VM's
  for (;;) asm volatile("cli; hlt");
}
