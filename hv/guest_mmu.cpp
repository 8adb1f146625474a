// GuestMmu over mmu::Mmu and mmu::Memslots (see guest_mmu.h).
//
// The kernel has no heap: the MMU objects live inside the GuestMmu (placement new) and are
// destroyed explicitly in destroy(). The Mmu's destructor waits for the teardown of every root
// and for the epoch to free every table page, so after destroy() the VM's EPT holds no page.
#include "hv/guest_mmu.h"

#include "arch/x86/cpu.h"
#include "arch/x86/format.h"
#include "arch/x86/percpu.h"
#include "arch/x86/smp.h"
#include "hv/dirty_log.h"
#include "hv/mmu_platform.h"
#include "hv/pt_limit.h"
#include "hv/trace.h"
#include "mmu/epoch.h"
#include "mmu/page_cache.h"
#include "mmu/spte.h"

namespace hv {

static_assert(pt_limit::kPageCacheCapacity == mmu::PageCache::kCapacity,
              "the default page limit's slack counts the vCPUs' page caches");
static_assert(pt_limit::kRootCopies >= mmu::MmuConfig::kDefaultTeardownBacklog + 1,
              "the default page limit leaves room for the live tree and the old ones fast-zap backpressure allows");

const char* GuestMmu::init(uint64_t vm_id, const RamSlot* slots, unsigned count, int max_level, unsigned guest_phys_bits,
                           uint64_t mappable_bytes, unsigned mappable_ranges) {
  if (count > kMaxSlots) return "too many memory slots";
  vm_id_ = static_cast<uint32_t>(vm_id);
  deferred_.busy_passes.reset();
  deferred_.units.reset();
  deferred_.max_units.reset();
  deferred_.max_budget.reset();
  deferred_.max_tsc.reset();
  if (!limit_override_) page_limit_ = pt_limit::default_limit(mappable_bytes, mappable_ranges);
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
  cfg.max_teardown_backlog = teardown_backlog_;
  cfg.fault_around = fault_around_;
  // Dirty logging: the VM's mechanism and whether the EPTP has A/D on (hv/dirty_log.h).
  cfg.ept_ad = dirty_log_ept_ad();
  cfg.dirty_mode = dirty_log_mode();
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
      x86::format(why_, sizeof why_, "memslot \"%s\": %s", slots[i].name, mmu::to_string(err));
      destroy();
      return why_;
    }
  }
  return nullptr;
}

mmu::hpa_t GuestMmu::load_root(unsigned vcpu) { return mmu_->vcpu_load_root(*vcpus_[vcpu % kMaxVcpus]); }

mmu::PrefaultResult GuestMmu::prefault(unsigned vcpu, mmu::gfn_t start, mmu::gfn_t end, unsigned budget) {
  return mmu_->prefault(*vcpus_[vcpu % kMaxVcpus], start, end, budget);
}

// Timed here, where every caller passes through, so that the summary's "longest pass" covers
// the vCPU loop and idle alike (the point of bounding the teardown: no pass may hold a CPU
// for long, as KVM learned when it removed its zap workers: docs/mmu.md §5).
void GuestMmu::run_deferred_work(unsigned budget) {
  // The usual case, nothing to do, answered by a few loads (no calls through the Platform).
  if (mmu_->deferred_work_idle_hint(x86::cpu_index(), x86::smp::cpus_online())) return;
  const uint64_t t0 = x86::rdtsc();
  const unsigned used = mmu_->run_deferred_work(budget);
  // Passes with work only: an idle pass happens before every VM entry of every vCPU, and
  // counting it would write a line all of the VM's CPUs share on each of them.
  if (!used) return;
  const uint64_t dt = x86::rdtsc() - t0;
  note_pass(used, budget, dt);
  if (trace::on(trace::kCatMmu)) trace::record(trace::kDeferred, vm_id_, 0xFF, t0, used, dt);
}

void GuestMmu::note_pass(unsigned used, unsigned budget, uint64_t dt) {
  deferred_.busy_passes++;
  deferred_.units += used;
  deferred_.max_units.raise_to(used);
  deferred_.max_budget.raise_to(budget);
  deferred_.max_tsc.raise_to(dt);
}

DeferredStats GuestMmu::deferred_stats() const {
  DeferredStats d;
  d.busy_passes = deferred_.busy_passes.get();
  d.units = deferred_.units.get();
  d.max_units = deferred_.max_units.get();
  d.max_budget = deferred_.max_budget.get();
  d.max_tsc = deferred_.max_tsc.get();
  return d;
}

bool GuestMmu::reclaim(unsigned budget) {
  // Teardown from any CPU's queue of this VM (not only ours: the root that holds the pages may
  // have been queued by a vCPU that seldom exits), the pending dead tables flushed and retired,
  // and the epoch polled. Timed and counted like a safe-point pass.
  const uint64_t t0 = x86::rdtsc();
  const mmu::ReclaimResult r = mmu_->reclaim(budget);
  const uint64_t dt = x86::rdtsc() - t0;
  note_pass(r.units, budget, dt);
  if (trace::on(trace::kCatMmu))
    trace::record(trace::kReclaim, vm_id_, 0xFF, t0, r.units,
                  (dt & 0xFFFFFFFFu) | (r.pages_freed > 0xFFFFFFFFu ? 0xFFFFFFFFu : r.pages_freed) << 32);
  if (r.pages_freed) return true;
  const mmu::MmuStats s = mmu_->stats();
  return s.roots_invalid != 0 || s.pages_awaiting_reclaim != 0;
}

void GuestMmu::leaves(uint64_t out[4]) { mmu_->count_leaves(0, out); }

uint64_t GuestMmu::table_pages() { return mmu_->stats().tables_live; }

mmu::MemslotError GuestMmu::update_memslot(const mmu::MemslotOp& op) {
  const uint64_t t0 = x86::rdtsc();
  const mmu::MemslotError e = mmu_->update_memslot(op);
  // The slot change with the zap of its old range (remove, move, flags) inside it.
  if (trace::on(trace::kCatMmu))
    trace::record(trace::kSlotUpdate, vm_id_, 0xFF, t0, op.slot.id | static_cast<uint64_t>(op.kind) << 32,
                  ((x86::rdtsc() - t0) & 0xFFFFFFFFu) | static_cast<uint64_t>(e) << 32);
  return e;
}

void GuestMmu::invalidate_all_roots(bool wait) {
  const uint64_t t0 = x86::rdtsc();
  const uint64_t ticket = mmu_->invalidate_all_roots();
  if (wait) mmu_->wait_for_teardown(ticket);
  // One slice from the invalidation to the end of the wait (the teardown steps it ran are inside).
  if (trace::on(trace::kCatMmu))
    trace::record(trace::kFastZap, vm_id_, 0xFF, t0, ticket, ((x86::rdtsc() - t0) & 0xFFFFFFFFu) | uint64_t{wait} << 32);
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
  if (!s || !s->contains(last) || (write && s->read_only()) || s->id >= kFirstPrivateSlotId) return 0;
  return s->gfn_to_hpa(first) + (gpa & (mmu::kPageSize - 1));
}

mmu::MemslotError GuestMmu::map_private_page(uint32_t id, mmu::gfn_t gfn, mmu::hpa_t hpa) {
  if (id < kFirstPrivateSlotId) return mmu::MemslotError::bad_flags;
  mmu::Memslot s;
  s.id = id;
  s.as_id = 0;
  s.base_gfn = gfn;
  s.npages = 1;
  s.backing_hpa = hpa;
  s.max_level = 1;
  return update_memslot(mmu::MemslotOp::create(s));
}

void GuestMmu::note_write(uint64_t gpa, uint64_t len) {
  if (!len || gpa + len < gpa) return;
  for (uint64_t page = gpa & ~(mmu::kPageSize - 1); page < gpa + len; page += mmu::kPageSize)
    mmu_->dirty_log_mark_gpa(page, 0);
}

mmu::MemslotError GuestMmu::dirty_log_start(unsigned vcpu, uint32_t id) {
  return mmu_->dirty_log_start(*vcpus_[vcpu], 0, id, dirty_log_mode());
}

mmu::MemslotError GuestMmu::dirty_log_stop(unsigned vcpu, uint32_t id) {
  return mmu_->dirty_log_stop(*vcpus_[vcpu], 0, id);
}

mmu::MemslotError GuestMmu::dirty_log_harvest(unsigned vcpu, uint32_t id, uint64_t* bitmap, size_t words,
                                              uint64_t* pages) {
  return mmu_->dirty_log_harvest(*vcpus_[vcpu], 0, id, bitmap, words, pages);
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
