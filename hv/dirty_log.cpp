// Dirty logging for guests: mechanism choice and the hypercalls (see dirty_log.h).
#include "hv/dirty_log.h"

#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/timer.h"
#include "arch/x86/spinlock.h"
#include "arch/x86/string.h"
#include "hv/cmdline.h"
#include "hv/hypercall.h"
#include "hv/mmu_platform.h"
#include "hv/vcpu.h"
#include "hv/vm.h"

namespace hv {

namespace {

mmu::DirtyMode g_mode = mmu::DirtyMode::write_protect;
bool g_ept_ad = false;
uint32_t g_ring_entries = 0;
uint32_t g_ring_reserve = 0;

bool word_is(const char* a, const char* b) {
  while (*a && *a == *b) a++, b++;
  return *a == 0 && *b == 0;
}

// While waiting for the VM's slot lock, answer TLB-flush requests (as hypercall.cpp does): the
// holder's harvest may be waiting for this very CPU's flush.
void answer_cpu_requests() { platform().cpu_relax(); }

}  // namespace

void dirty_log_init(const x86::vmx::Capabilities& caps) {
  // The EPTP enables A/D whenever the CPU has them (Vcpu: make_eptp(root, caps.ept_ad)).
  g_ept_ad = caps.ept_ad;
  char want[8] = {};
  const bool asked = cmdline::get("hv.dirty", want, sizeof want);
  const mmu::DirtyMode best = g_ept_ad ? mmu::DirtyMode::dirty_bit : mmu::DirtyMode::write_protect;
  const char* why;
  if (asked && word_is(want, "wp")) {
    g_mode = mmu::DirtyMode::write_protect;
    why = "hv.dirty=wp";
  } else if (asked && word_is(want, "ad")) {
    g_mode = best;
    why = g_ept_ad ? "hv.dirty=ad" : "hv.dirty=ad, but the CPU has no EPT A/D bits: write protection";
  } else if (asked && word_is(want, "pml")) {
    // PML logs when the CPU sets an EPT D bit: it needs EPT A/D as well as "enable PML".
    if (g_ept_ad && caps.pml) {
      g_mode = mmu::DirtyMode::pml;
      why = "hv.dirty=pml";
    } else {
      g_mode = best;
      why = g_ept_ad ? "hv.dirty=pml, but the CPU has no PML: EPT A/D bits instead"
                     : "hv.dirty=pml, but the CPU has no PML and no EPT A/D: write protection";
    }
  } else {
    g_mode = best;
    why = asked ? "unknown hv.dirty value: the default" : "default: the best this CPU offers";
  }
  x86::log::info("dirty log: %s (%s; CPU: EPT A/D %s, PML %s)", mmu::to_string(g_mode), why,
                 caps.ept_ad ? "yes" : "no", caps.pml ? "yes" : "no");
  // hv.dirty-ring=N: a power of two in [16, 16384]. The reserve below the soft limit takes what
  // a vCPU still pushes between reaching it and its next safe point: one fault (wp), or one
  // exit's PML drain, up to 512 entries (pml; a smaller ring keeps half as reserve and may drop,
  // which the bitmap covers).
  const uint64_t n = cmdline::get_number("hv.dirty-ring", 0);
  if (n != 0) {
    const bool pow2 = n >= mmu::DirtyRing::kMinEntries && n <= mmu::DirtyRing::kMaxEntries && (n & (n - 1)) == 0;
    if (!pow2) {
      x86::log::info("dirty ring: off (hv.dirty-ring=%lu is not a power of two in [%u, %u])", n,
                     mmu::DirtyRing::kMinEntries, mmu::DirtyRing::kMaxEntries);
    } else if (g_mode == mmu::DirtyMode::dirty_bit) {
      x86::log::info("dirty ring: off (the %s mechanism has no per-write event; use hv.dirty=wp or pml)",
                     mmu::to_string(g_mode));
    } else {
      g_ring_entries = static_cast<uint32_t>(n);
      g_ring_reserve = g_mode == mmu::DirtyMode::pml ? (g_ring_entries > 1024 ? 512 : g_ring_entries / 2) : 8;
      x86::log::info("dirty ring: %u entries per vCPU, soft limit at %u", g_ring_entries, g_ring_entries - g_ring_reserve);
    }
  }
}

mmu::DirtyMode dirty_log_mode() { return g_mode; }
bool dirty_log_ept_ad() { return g_ept_ad; }

uint32_t dirty_log_abi_mode(mmu::DirtyMode m) {
  switch (m) {
    case mmu::DirtyMode::write_protect: return HV_DIRTY_WP;
    case mmu::DirtyMode::dirty_bit: return HV_DIRTY_AD;
    case mmu::DirtyMode::pml: return HV_DIRTY_PML;
  }
  return HV_DIRTY_WP;
}

// Slot ids as the memslot hypercalls check them: 1..63 and created by the guest; slot 0 (the
// boot RAM) is hv's.
int64_t dirty_log_hypercall(Vcpu& vcpu, uint64_t nr, uint64_t id, uint64_t gpa, uint64_t bytes,
                            uint64_t* out) {
  Vm& vm = vcpu.vm();
  if (id == 0) return HV_EPERM;
  if (id > HV_SLOT_ID_LAST) return HV_EINVAL;
  const uint32_t sid = static_cast<uint32_t>(id);
  // The slot lock keeps the slot from being deleted (and its id reused) under the call, as for
  // the other memslot hypercalls; the MMU serializes with updates of its own.
  x86::SpinLockGuard g(vm.slot_lock, answer_cpu_requests);
  if (!(vm.guest_slots & (uint64_t{1} << id))) return HV_ENOSLOT;
  switch (nr) {
    case HV_CALL_DIRTY_LOG_START: {
      const int64_t st = hypercall_status(vm.mmu().dirty_log_start(vcpu.index(), sid));
      if (st == HV_OK) *out = dirty_log_abi_mode(g_mode);
      return st;
    }
    case HV_CALL_DIRTY_LOG_STOP: return hypercall_status(vm.mmu().dirty_log_stop(vcpu.index(), sid));
    case HV_CALL_DIRTY_LOG_HARVEST: {
      mmu::Memslot cur;
      if (!vm.mmu().find_slot(sid, &cur)) return HV_ENOSLOT;
      if (!cur.dirty_logging()) return HV_EINVAL;
      // The buffer: 8-byte aligned, large enough for the slot's bitmap (bit i = page i of the
      // slot), and inside one writable slot of the guest's RAM. It may lie in a logged slot,
      // even the harvested one: hv's write of the bitmap then counts as a guest write, so
      // those pages are reported by the next harvest.
      if (gpa & 7) return HV_EALIGN;
      const size_t words = mmu::Mmu::dirty_log_words(cur.npages);
      const uint64_t need = uint64_t{words} * 8;
      if (bytes < need) return HV_ESMALL;
      const uint64_t hpa = vm.mmu().translate(gpa, need, true);
      if (!hpa) return HV_EFAULT;
      // The harvest ORs into the buffer: start from zero. (Another vCPU of the guest may write
      // the buffer meanwhile: that only garbles the guest's own result.)
      memset(reinterpret_cast<void*>(hpa), 0, need);
      uint64_t pages = 0;
      const int64_t st = hypercall_status(
          vm.mmu().dirty_log_harvest(vcpu.index(), sid, reinterpret_cast<uint64_t*>(hpa), words, &pages));
      vm.mmu().note_write(gpa, need);
      if (st == HV_OK) *out = pages;
      return st;
    }
    default: return HV_EUNKNOWN;
  }
}

// --- Dirty ring ---

uint32_t dirty_ring_entries() { return g_ring_entries; }

const char* dirty_ring_setup(Vcpu& vcpu) {
  if (g_ring_entries == 0 || vcpu.dring.ring != nullptr) return nullptr;
  mmu::DirtyRing* ring = mmu::DirtyRing::create(platform(), g_ring_entries, g_ring_reserve);
  if (ring == nullptr) return "out of memory for the vCPU's dirty ring";
  vcpu.dring = VcpuDirtyRing{};
  vcpu.dring.ring = ring;
  Vm& vm = vcpu.vm();
  // Under the slot lock: a consumer (HV_CALL_DIRTY_RING_REAP) looks the ring up under it.
  x86::SpinLockGuard g(vm.slot_lock, answer_cpu_requests);
  vm.mmu().set_dirty_ring(vcpu.index(), ring);
  return nullptr;
}

void dirty_ring_release(Vcpu& vcpu) {
  mmu::DirtyRing* ring = vcpu.dring.ring;
  if (ring == nullptr) return;
  Vm& vm = vcpu.vm();
  {
    // No consumer is inside reap() once we hold the lock, and none finds the ring afterwards.
    x86::SpinLockGuard g(vm.slot_lock, answer_cpu_requests);
    vm.mmu().set_dirty_ring(vcpu.index(), nullptr);
  }
  vcpu.dring.ring = nullptr;
  ring->destroy();
}

bool dirty_ring_wait(Vcpu& vcpu, bool (*stop_requested)(Vcpu&)) {
  mmu::DirtyRing* ring = vcpu.dring.ring;
  if (ring == nullptr || !ring->soft_full()) return true;
  vcpu.dring.stalls++;
  const uint64_t t0 = x86::rdtsc();
  bool go_on = true;
  while (ring->soft_full()) {
    if (stop_requested(vcpu)) {
      go_on = false;
      break;
    }
    platform().cpu_relax();  // answers other CPUs' requests (flushes, PML drains, work items)
  }
  vcpu.dring.stall_tsc += x86::rdtsc() - t0;
  return go_on;
}

int64_t dirty_ring_hypercall(Vcpu& vcpu, uint64_t index, uint64_t gpa, uint64_t bytes, uint64_t* out) {
  Vm& vm = vcpu.vm();
  if (g_ring_entries == 0) return HV_ENOTSUP;
  if (index >= vm.vcpu_count) return HV_EINVAL;
  if (gpa & 7) return HV_EALIGN;
  const uint64_t esize = sizeof(mmu::DirtyRingEntry);
  static_assert(sizeof(mmu::DirtyRingEntry) == sizeof(hv_dirty_ring_entry), "the ABI entry is the MMU's");
  if (bytes < esize) return HV_ESMALL;
  uint64_t max = bytes / esize;
  if (max > g_ring_entries) max = g_ring_entries;
  const uint64_t hpa = vm.mmu().translate(gpa, max * esize, true);
  if (!hpa) return HV_EFAULT;
  uint32_t n = 0;
  {
    // One consumer at a time per VM (the ring is single-consumer), and the ring stays alive.
    x86::SpinLockGuard g(vm.slot_lock, answer_cpu_requests);
    mmu::DirtyRing* ring = vm.mmu().dirty_ring(static_cast<unsigned>(index));
    if (ring == nullptr) return HV_EINVAL;  // that vCPU has not started, or has stopped
    n = ring->reap(reinterpret_cast<mmu::DirtyRingEntry*>(hpa), static_cast<uint32_t>(max));
  }
  if (n) vm.mmu().note_write(gpa, uint64_t{n} * esize);
  *out = n;
  return HV_OK;
}

void dirty_ring_report(Vcpu& vcpu) {
  const mmu::DirtyRing* ring = vcpu.dring.ring;
  if (ring == nullptr) return;
  const uint64_t khz = x86::timer::tsc_khz() ? x86::timer::tsc_khz() : 1;
  x86::log::info("vm%u vcpu%u: dirty ring: %lu pushed, %lu dropped (full), %u unreaped, %lu soft-full stalls (%lu ms)",
                 vcpu.vm().id(), vcpu.index(), ring->pushed(), ring->drops(), ring->used(), vcpu.dring.stalls,
                 vcpu.dring.stall_tsc / khz);
}

}  // namespace hv
