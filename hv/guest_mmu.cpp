// GuestMmu over mmu::Mmu and mmu::Memslots (see guest_mmu.h).
//
// The kernel has no heap: the MMU objects live inside the GuestMmu (placement new) and are
// destroyed explicitly in destroy(). The Mmu's destructor waits for the teardown of every root
// and for the epoch to free every table page, so after destroy() the VM's EPT holds no page.
#include "hv/guest_mmu.h"

#include "arch/x86/cpu.h"
#include "arch/x86/format.h"
#include "hv/mmu_platform.h"
#include "mmu/epoch.h"
#include "mmu/spte.h"

namespace hv {

namespace {
char g_why[120];
}

const char* to_string(MapResult r) {
  switch (r) {
    case MapResult::kFixed: return "fixed";
    case MapResult::kSpurious: return "spurious";
    case MapResult::kRetry: return "retry";
    case MapResult::kUnbacked: return "unbacked";
    case MapResult::kWriteProtected: return "write-protected";
    case MapResult::kBadGfn: return "bad gfn";
    case MapResult::kOutOfMemory: return "out of memory";
  }
  return "?";
}

const char* GuestMmu::init(uint64_t vm_id, const RamSlot* slots, unsigned count, int max_level,
                           unsigned guest_phys_bits) {
  if (count > kMaxSlots) return "too many memory slots";
  deferred_ = DeferredStats{};
  mmu::MemslotConfig mc;
  mc.maxphyaddr = guest_phys_bits;
  memslots_ = new (memslots_storage_) mmu::Memslots(platform(), epoch(), mc);
  mmu::MmuConfig cfg;
  cfg.tlb_tag = vm_id;
  cfg.root_level = 4;
  cfg.max_level = max_level;
  cfg.guest_phys_bits = guest_phys_bits;
  cfg.address_spaces = mmu::Memslots::kAddressSpaces;
  // Counted by the MMU itself, with or without a limit: pages freed later by the machine-wide
  // epoch are credited back to this VM's count (mmu/page_account.h).
  cfg.max_table_pages = page_limit_;
  mmu_ = new (mmu_storage_) mmu::Mmu(platform(), epoch(), *memslots_, cfg);
  for (unsigned i = 0; i < kMaxVcpus; i++) {
    vcpus_[i] = new (vcpu_storage_[i]) mmu::VcpuMmu();
    mmu_->vcpu_init(*vcpus_[i], 0);
  }
  for (unsigned i = 0; i < count; i++) {
    mmu::Memslot s;
    s.id = i;
    s.as_id = 0;
    s.base_gfn = slots[i].base_gfn;
    s.npages = slots[i].npages;
    s.backing_hpa = slots[i].backing_hpa;
    s.max_level = static_cast<uint8_t>(max_level);  // alignment limits it further per gfn
    const mmu::MemslotError err = mmu_->update_memslot(mmu::MemslotOp::create(s));
    if (err != mmu::MemslotError::ok) {
      x86::format(g_why, sizeof g_why, "memslot \"%s\": %s", slots[i].name, mmu::to_string(err));
      destroy();
      return g_why;
    }
  }
  return nullptr;
}

mmu::hpa_t GuestMmu::load_root(unsigned vcpu) { return mmu_->vcpu_load_root(*vcpus_[vcpu % kMaxVcpus]); }

MapResult GuestMmu::map(unsigned vcpu, mmu::gfn_t gfn, unsigned access) {
  switch (mmu_->map(*vcpus_[vcpu % kMaxVcpus], gfn, access)) {
    case mmu::FaultOutcome::fixed: return MapResult::kFixed;
    case mmu::FaultOutcome::spurious: return MapResult::kSpurious;
    case mmu::FaultOutcome::retry: return MapResult::kRetry;
    case mmu::FaultOutcome::unbacked: return MapResult::kUnbacked;
    case mmu::FaultOutcome::write_protected: return MapResult::kWriteProtected;
    case mmu::FaultOutcome::bad_gfn: return MapResult::kBadGfn;
    case mmu::FaultOutcome::out_of_memory: return MapResult::kOutOfMemory;
    case mmu::FaultOutcome::kCount: break;
  }
  return MapResult::kBadGfn;
}

namespace {
void add(uint64_t& c, uint64_t v) { __atomic_fetch_add(&c, v, __ATOMIC_RELAXED); }
void raise_to(uint64_t& m, uint64_t v) {
  uint64_t cur = __atomic_load_n(&m, __ATOMIC_RELAXED);
  while (v > cur && !__atomic_compare_exchange_n(&m, &cur, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}
uint64_t get(const uint64_t& c) { return __atomic_load_n(&c, __ATOMIC_RELAXED); }
}  // namespace

// Timed here, where every caller passes through, so that the summary's "longest pass" covers
// the vCPU loop and idle alike (the point of bounding the teardown: no pass may hold a CPU
// for long, as KVM learned when it removed its zap workers: docs/mmu.md §5).
void GuestMmu::run_deferred_work(unsigned budget) {
  const uint64_t t0 = x86::rdtsc();
  const unsigned used = mmu_->run_deferred_work(budget);
  const uint64_t dt = x86::rdtsc() - t0;
  add(deferred_.passes, 1);
  if (used) {
    add(deferred_.busy_passes, 1);
    add(deferred_.units, used);
    raise_to(deferred_.max_units, used);
  }
  raise_to(deferred_.max_budget, budget);
  raise_to(deferred_.max_tsc, dt);
}

DeferredStats GuestMmu::deferred_stats() const {
  DeferredStats d;
  d.passes = get(deferred_.passes);
  d.busy_passes = get(deferred_.busy_passes);
  d.units = get(deferred_.units);
  d.max_units = get(deferred_.max_units);
  d.max_budget = get(deferred_.max_budget);
  d.max_tsc = get(deferred_.max_tsc);
  return d;
}

void GuestMmu::leaves(uint64_t out[4]) { mmu_->count_leaves(0, out); }

uint64_t GuestMmu::table_pages() { return mmu_->stats().tables_live; }

mmu::MemslotError GuestMmu::update_memslot(const mmu::MemslotOp& op) { return mmu_->update_memslot(op); }

void GuestMmu::invalidate_all_roots(bool wait) {
  const uint64_t ticket = mmu_->invalidate_all_roots();
  if (wait) mmu_->wait_for_teardown(ticket);
}

mmu::MmuStats GuestMmu::stats() { return mmu_->stats(); }

bool GuestMmu::find_slot(uint32_t id, mmu::Memslot* out) {
  mmu::EpochReadGuard section(epoch());
  const mmu::MemslotSet* set = memslots_->active(0);
  const mmu::Memslot* s = set ? set->find_id(id) : nullptr;
  if (s) *out = *s;
  return s != nullptr;
}

uint64_t GuestMmu::translate(uint64_t gpa, uint64_t len, bool write) {
  if (!len || gpa + len < gpa) return 0;
  const mmu::gfn_t first = gpa >> mmu::kPageShift, last = (gpa + len - 1) >> mmu::kPageShift;
  mmu::EpochReadGuard section(epoch());
  const mmu::Memslot* s = memslots_->find(0, first);
  // Both ends in the same slot means the whole range is: slots are contiguous ranges.
  if (!s || !s->contains(last) || (write && s->read_only())) return 0;
  return s->gfn_to_hpa(first) + (gpa & (mmu::kPageSize - 1));
}

void GuestMmu::destroy() {
  if (!mmu_) return;
  for (mmu::VcpuMmu*& v : vcpus_) {
    if (!v) continue;
    mmu_->vcpu_release(*v);
    v->~VcpuMmu();
    v = nullptr;
  }
  mmu_->~Mmu();
  mmu_ = nullptr;
  memslots_->~Memslots();
  memslots_ = nullptr;
}

}  // namespace hv
