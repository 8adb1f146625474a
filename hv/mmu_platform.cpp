// mmu::Platform for the kernel (see mmu_platform.h).
#include "hv/mmu_platform.h"

#include "arch/x86/cpu.h"
#include "arch/x86/percpu.h"
#include "arch/x86/pmm.h"
#include "arch/x86/smp.h"
#include "hv/cpu_work.h"

namespace hv {

KernelPlatform& platform() {
  static KernelPlatform p;
  return p;
}

mmu::hpa_t KernelPlatform::alloc_page() {
  const uint64_t pa = pmm::alloc_4k(true);
  if (pa) __atomic_add_fetch(&pages_in_use_, 1, __ATOMIC_RELAXED);
  return pa;
}

void KernelPlatform::free_page(mmu::hpa_t page) {
  __atomic_sub_fetch(&pages_in_use_, 1, __ATOMIC_RELAXED);
  pmm::free_4k(page);
}

unsigned KernelPlatform::cpu_id() { return x86::cpu_index(); }

unsigned KernelPlatform::cpu_count() { return smp::cpus_online(); }

// The tag (VM id) is not needed to pick the INVEPT type: cpu_work flushes with the global type,
// which covers every EPTP the VM may have used on that CPU (one per root it ever loaded).
void KernelPlatform::flush_remote_tlbs(uint64_t) { cpu_work::flush_ept_all_cpus(); }

// No preemption yet: a CPU is never asked to give up its locks early. TODO(lead): answer
// true when this CPU's LAPIC timer tick or a cross-CPU request is pending.
bool KernelPlatform::should_yield() { return false; }

void KernelPlatform::cpu_relax() { x86::cpu_relax(); }

uint64_t KernelPlatform::timestamp() { return x86::rdtsc(); }

}  // namespace hv

#include "mmu/epoch.h"

namespace hv {

mmu::Epoch& epoch() {
  // Placement new into static storage: no destructor is registered (the kernel never exits)
  // and no heap is needed.
  alignas(mmu::Epoch) static unsigned char storage[sizeof(mmu::Epoch)];
  static mmu::Epoch* e = nullptr;
  if (!e) e = new (storage) mmu::Epoch(platform());
  return *e;
}

}  // namespace hv
