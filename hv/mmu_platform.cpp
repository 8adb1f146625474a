// mmu::Platform for the kernel (see mmu_platform.h).
#include "hv/mmu_platform.h"

#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/percpu.h"
#include "arch/x86/pmm.h"
#include "arch/x86/smp.h"
#include "arch/x86/spinlock.h"
#include "arch/x86/string.h"
#include "hv/cmdline.h"
#include "hv/cpu_work.h"
#include "hv/pml.h"
#include "hv/trace.h"
#include "mmu/lock.h"

namespace hv {

KernelPlatform& platform() {
  static KernelPlatform p;
  return p;
}

mmu::hpa_t KernelPlatform::alloc_page() {
  const uint64_t pa = x86::pmm::alloc_4k(true);
  if (pa) pages_in_use_.fetch_add(1, mmu::Order::relaxed);
  return pa;
}

void KernelPlatform::free_page(mmu::hpa_t page) {
  pages_in_use_.fetch_sub(1, mmu::Order::relaxed);
  x86::pmm::free_4k(page);
}

unsigned KernelPlatform::cpu_id() { return x86::cpu_index(); }

unsigned KernelPlatform::cpu_count() { return x86::smp::cpus_online(); }

// The tag is the VM's id: each CPU that runs one of its vCPUs flushes that vCPU's EPTP
// (single-context INVEPT where supported); CPUs outside guest mode flush before their next
// entry instead of being waited for (hv/cpu_work.h).
void KernelPlatform::flush_remote_tlbs(uint64_t tlb_tag) { cpu_work::flush_ept(tlb_tag); }

void KernelPlatform::drain_dirty_logs(uint64_t tlb_tag) { pml_drain_all(tlb_tag); }

// Yield when this CPU's tick slice is over or another CPU asked it something (arch/x86/tick.h).
bool KernelPlatform::should_yield() { return cpu_work::yield_wanted(); }

// The MMU spins here (epoch grace periods, teardown waits, lock yields): answer flush requests
// meanwhile, so a CPU that spins here for long is never the one a flush waits for. Only
// flushes: a work item (a whole vCPU loop) must not run in the middle of MMU code.
void KernelPlatform::cpu_relax() {
  cpu_work::service_flushes();
  x86::cpu_relax();
}

uint64_t KernelPlatform::timestamp() { return x86::rdtsc(); }

void KernelPlatform::serialize_all_cpus() { cpu_work::fence_all_cpus(); }

const char* fences_init() {
  char v[16] = "asymmetric";
  cmdline::get("hv.fences", v, sizeof v);
  if (strcmp(v, "symmetric") == 0) {
    x86::log::info("fences: symmetric (hv.fences=symmetric): every fault's lock and epoch entry fences");
    return nullptr;
  }
  if (strcmp(v, "asymmetric") != 0) x86::log::warn("fences: hv.fences=%s not understood, using asymmetric", v);
  // The hooks first: from now on every spin-wait answers fence requests.
  __atomic_store_n(&x86::g_spin_wait_hook, &cpu_work::answer_fences, __ATOMIC_RELAXED);
  __atomic_store_n(&mmu::spin_wait_hook, &cpu_work::answer_fences, __ATOMIC_RELAXED);
  const unsigned n = x86::smp::cpus_online();
  const uint64_t t0 = x86::rdtsc();
  const unsigned answered = n > 1 ? cpu_work::fence_all_cpus_sync(2'000'000) : 0;
  if (answered != n - 1) {
    x86::log::error("fences: %u of %u other cpus answered a fence request; keeping symmetric fences", answered, n - 1);
    return "fences: a CPU did not answer a fence request";
  }
  platform().enable_asymmetric_fences();
  x86::log::info("fences: asymmetric (readers fence nothing; a heavy fence asks the %u other cpus, %lu TSC ticks "
                 "at boot)", n - 1, x86::rdtsc() - t0);
  return nullptr;
}

// The MMU's tag is the VM's id (flush_remote_tlbs above), so the records carry it as their VM.
void KernelPlatform::trace_zap_range(uint64_t tlb_tag, unsigned as_id, mmu::gfn_t start, mmu::gfn_t end,
                                     uint64_t t0) {
  if (!trace::on(trace::kCatMmu)) return;
  const uint64_t pages = end - start > 0xFFFFFFFFu ? 0xFFFFFFFFu : end - start;
  trace::record(trace::kZapRange, static_cast<uint32_t>(tlb_tag), 0xFF, t0,
                (start & trace::kZapGfnMask) | uint64_t{as_id} << 56, ((x86::rdtsc() - t0) & 0xFFFFFFFFu) | pages << 32);
}

void KernelPlatform::trace_teardown_step(uint64_t tlb_tag, mmu::hpa_t root, uint64_t t0, unsigned units,
                                         unsigned pass, bool done, bool helped) {
  if (!trace::on(trace::kCatMmu)) return;
  trace::record(trace::kTeardownStep, static_cast<uint32_t>(tlb_tag), 0xFF, t0,
                (root & ~uint64_t{0xFFF}) | (pass & 0xF) | uint64_t{done} << 4 | uint64_t{helped} << 5,
                ((x86::rdtsc() - t0) & 0xFFFFFFFFu) | uint64_t{units} << 32);
}

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
