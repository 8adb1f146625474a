// Memslot changes as the MMU sees them: lookups for the fault path, and the orchestration of an
// update (docs/mmu.md §4).
//
// Update protocol, for a change of address space `as` whose old range [start, end) loses leaves:
//   1. invalidate_begin(start, end): from here, faults in the range retry (checked under the
//      MMU lock, which invalidate_begin() took exclusively to raise the count).
//   2. publish the new set (release; faults look it up with acquire inside an epoch section).
//   3. zap the leaves of [start, end) in every root of `as`, and flush the TLBs. zap_range()
//      returns only once a completed flush covers its own zaps *and* every unlink made before
//      it took the MMU lock (the unlink generation, zap.cpp): leaves of the range that a
//      teardown step or another zap removed first, and has not flushed yet, count too.
//   4. invalidate_end(): bump the sequence (release). A fault that looked at the old set took
//      its sequence snapshot before this bump, so it retries; later faults see the new set.
//   5. retire the old set through the epoch (readers from before step 2 may still use it).
// Only then does the update report success.
#include "mmu/memslot.h"
#include "mmu/mmu.h"

namespace mmu {

bool Mmu::lookup_slot(unsigned as_id, gfn_t gfn, SlotView* out) {
  // The set may be replaced and retired at any moment: copy what we need inside the section.
  EpochReadGuard section(epoch_);
  const Memslot* s = memslots_.find(as_id, gfn);
  if (s == nullptr) return false;
  view_of(*s, out);
  return true;
}

bool Mmu::lookup_slot_vcpu_miss(VcpuMmu& v, gfn_t gfn, uint64_t gen, SlotView* out) {
  if (!lookup_slot(v.as_id_, gfn, out)) return false;
  v.last_slot_ = *out;
  v.last_slot_generation_ = gen;
  return true;
}

void Mmu::view_of(const Memslot& s, SlotView* out) {
  out->slot_id = s.id;
  out->as_id = s.as_id;
  out->base_gfn = s.base_gfn;
  out->npages = s.npages;
  out->backing_hpa = s.backing_hpa;
  out->max_level = s.max_level;
  out->read_only = s.read_only();
  // The log stays allocated while a fault may use it: see SlotView::dirty_log.
  out->dirty_log = s.dirty_log;
  out->dirty_wp = s.dirty_log != nullptr && s.dirty_log->mode() == DirtyMode::write_protect;
}

MemslotError Mmu::update_memslot(const MemslotOp& op) {
  const unsigned as_id = op.slot.as_id;
  // Dirty logging is switched by dirty_log_start/stop only (they split, protect and free).
  if (op.kind == MemslotOp::Kind::set_dirty_log) return MemslotError::bad_flags;
  MemslotOp effective = op;
  DirtyLog* made = nullptr;  // a slot created logged gets its log here
  if (op.kind == MemslotOp::Kind::create) {
    effective.slot.dirty_log = nullptr;  // a caller's pointer never gets into a set
    if (op.slot.dirty_logging()) {
      if (op.slot.read_only()) return MemslotError::read_only_slot;
      if (op.slot.npages == 0) return MemslotError::zero_size;
      if (op.slot.npages > DirtyLog::kMaxPages) return MemslotError::too_large;
      if (uses_dirty_bit(config_.dirty_mode) && !config_.ept_ad) return MemslotError::unsupported;
      made = DirtyLog::create(platform_, op.slot.npages, config_.dirty_mode);
      if (made == nullptr) return MemslotError::out_of_memory;
      // A new slot has no leaves: nothing to split or protect. Every page counts as dirty at
      // the start, as with dirty_log_start().
      made->set_all();
      effective.slot.dirty_log = made;
    }
  }
  SpinLockGuard serialize(memslots_.update_lock());
  const MemslotSet* next = nullptr;
  const MemslotError err = memslots_.prepare(effective, next);
  if (err != MemslotError::ok) {
    if (made != nullptr) made->destroy();  // never published
    return err;
  }
  if (made != nullptr && uses_dirty_bit(made->mode())) dirty_d_slots_.fetch_add(1, Order::relaxed);

  // The range whose leaves become wrong: where the slot was (remove, move) or its whole range
  // (set_flags: a slot turned read-only must lose W; one turned writable gets W on the next
  // fault). A created slot had no leaves (no other slot overlapped it).
  gfn_t start = 0, end = 0;
  DirtyLog* old_log = nullptr;
  if (op.kind != MemslotOp::Kind::create) {
    // We hold the update lock, so the active set cannot change or be retired under us: no
    // read-side section is needed to look at it.
    const MemslotSet* cur = memslots_.active_locked(as_id);
    const Memslot* old = cur ? cur->find_id(op.slot.id) : nullptr;
    MMU_ASSERT(old != nullptr);  // prepare() validated the id
    start = old->base_gfn;
    end = old->end_gfn();
    old_log = old->dirty_log;
  }
  if (start == end) {
    memslots_.retire(memslots_.publish(next));
    return MemslotError::ok;
  }
  invalidate_begin(as_id, start, end);
  const MemslotSet* old_set = memslots_.publish(next);
  zap_range(as_id, start, end);
  invalidate_end();
  memslots_.retire(old_set);
  if (old_log != nullptr) {
    if (op.kind == MemslotOp::Kind::remove) {
      // No fault can use the log any more (the invalidation above made every fault that saw
      // the old set retry); a PML mark inside an epoch section may: free after a grace period.
      if (uses_dirty_bit(old_log->mode())) dirty_d_slots_.fetch_sub(1, Order::relaxed);
      old_log->retire(epoch_);
    } else if (uses_dirty_bit(old_log->mode())) {
      // move, set_flags: the zap dropped the leaves with their D bits, which the zap's hook
      // could not give back to the slot it no longer finds at the old place (move): every page
      // counts as dirty again. (write_protect loses nothing: a writable leaf's bit is set.)
      old_log->set_all();
    }
  }
  return MemslotError::ok;
}

}  // namespace mmu
