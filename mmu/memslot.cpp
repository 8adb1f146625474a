// Memslot sets: validation, copy-on-write builders, lookup and publication (see memslot.h).
#include "mmu/memslot.h"

namespace mmu {

const char* to_string(MemslotError e) {
  switch (e) {
    case MemslotError::ok: return "ok";
    case MemslotError::overlap: return "the range overlaps another memslot";
    case MemslotError::misaligned: return "the backing address is not 4 KiB aligned";
    case MemslotError::zero_size: return "the memslot has no pages";
    case MemslotError::too_large: return "the range reaches beyond the physical address width";
    case MemslotError::gfn_wraps: return "the range wraps around the end of the address space";
    case MemslotError::too_many: return "the address space already has the maximum of memslots";
    case MemslotError::no_such_slot: return "no memslot with this id in the address space";
    case MemslotError::bad_flags: return "unknown memslot flags, or a dirty-log flag change not made by the MMU";
    case MemslotError::bad_address_space: return "no such address space";
    case MemslotError::duplicate_id: return "a memslot with this id already exists";
    case MemslotError::out_of_memory: return "out of memory for the memslot set";
    case MemslotError::bad_level: return "max_level must be 1 (4K), 2 (2M) or 3 (1G)";
    case MemslotError::read_only_slot: return "dirty logging on a read-only memslot";
    case MemslotError::already_logging: return "dirty logging is already on for this memslot";
    case MemslotError::not_logging: return "dirty logging is not on for this memslot";
    case MemslotError::buffer_too_small: return "the bitmap buffer is smaller than the memslot's bitmap";
    case MemslotError::unsupported: return "the dirty-log mechanism needs EPT A/D bits, which are off";
  }
  return "unknown memslot error";
}

uint8_t Memslot::max_mapping_level(gfn_t gfn) const {
  for (uint8_t level = max_level; level > 1; level--) {
    const uint64_t span = uint64_t{1} << (9 * (level - 1));  // pages per leaf of this level
    // A huge leaf maps span pages that must be one aligned host huge page: possible only if
    // guest and host frame numbers agree in their low bits.
    if (((base_gfn ^ (backing_hpa >> kPageShift)) & (span - 1)) != 0) continue;
    const gfn_t start = gfn & ~(span - 1);
    if (start >= base_gfn && start + span <= end_gfn()) return level;
  }
  return 1;
}

namespace {

MemslotError check_flags(uint32_t flags) {
  if ((flags & ~Memslot::kKnownFlags) != 0) return MemslotError::bad_flags;
  // A read-only slot is never written by the guest: nothing to log.
  if ((flags & Memslot::kDirtyLog) && (flags & Memslot::kReadOnly)) return MemslotError::bad_flags;
  return MemslotError::ok;
}

// The flag and the log go together (the MMU makes the log before it asks for the flag).
MemslotError check_dirty_log(const Memslot& s) {
  return s.dirty_logging() == (s.dirty_log != nullptr) ? MemslotError::ok : MemslotError::bad_flags;
}

// The guest range [base, base + npages) and the backing [backing, + npages pages).
MemslotError check_range(const MemslotConfig& cfg, gfn_t base, uint64_t npages, hpa_t backing) {
  if (npages == 0) return MemslotError::zero_size;
  if (backing % kPageSize != 0) return MemslotError::misaligned;
  if (base + npages < base) return MemslotError::gfn_wraps;
  const uint64_t limit = cfg.gfn_limit();
  if (base + npages > limit) return MemslotError::too_large;
  // npages <= limit <= 2^40 here, and backing >> 12 < 2^52: the sum cannot overflow.
  if ((backing >> kPageShift) + npages > limit) return MemslotError::too_large;
  return MemslotError::ok;
}

bool overlaps(const Memslot& s, gfn_t base, uint64_t npages) {
  return base < s.end_gfn() && s.base_gfn < base + npages;
}

}  // namespace

// --- Lookup ---

const Memslot* MemslotSet::find(gfn_t gfn) const {
  // The last slot whose base is <= gfn is the only candidate (sorted, non-overlapping).
  unsigned lo = 0, hi = count_;  // candidates: slots_[lo, hi)
  while (lo < hi) {
    const unsigned mid = lo + (hi - lo) / 2;
    if (slots_[mid].base_gfn <= gfn) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo == 0) return nullptr;
  const Memslot& s = slots_[lo - 1];
  return s.contains(gfn) ? &s : nullptr;
}

int MemslotSet::index_of(uint32_t id) const {
  for (unsigned i = 0; i < count_; i++)
    if (slots_[i].id == id) return static_cast<int>(i);
  return -1;
}

const Memslot* MemslotSet::find_id(uint32_t id) const {
  const int i = index_of(id);
  return i < 0 ? nullptr : &slots_[i];
}

bool MemslotSet::check_invariants(const MemslotConfig& cfg) const {
  if (as_id_ >= Memslots::kAddressSpaces || count_ > kMaxMemslots) return false;
  for (unsigned i = 0; i < count_; i++) {
    const Memslot& s = slots_[i];
    if (s.as_id != as_id_ || check_flags(s.flags) != MemslotError::ok) return false;
    if (check_dirty_log(s) != MemslotError::ok) return false;
    if (s.max_level < 1 || s.max_level > 3) return false;
    if (check_range(cfg, s.base_gfn, s.npages, s.backing_hpa) != MemslotError::ok) return false;
    if (i > 0 && slots_[i - 1].end_gfn() > s.base_gfn) return false;  // unsorted or overlap
    for (unsigned j = 0; j < i; j++)
      if (slots_[j].id == s.id) return false;
  }
  return true;
}

// --- Building ---

MemslotSet* MemslotSet::allocate(Platform& p, uint32_t as_id, const MemslotSet* old) {
  static_assert(sizeof(MemslotSet) <= kPageSize, "a memslot set must fit one page");
  const hpa_t pa = p.alloc_page();
  if (pa == 0) return nullptr;
  auto* set = new (p.phys_to_virt(pa)) MemslotSet(p, pa, as_id, old ? old->generation_ + 1 : 1);
  if (old != nullptr) {
    set->count_ = old->count_;
    for (unsigned i = 0; i < old->count_; i++) set->slots_[i] = old->slots_[i];
  }
  return set;
}

void MemslotSet::insert_sorted(const Memslot& s) {
  MMU_ASSERT(count_ < kMaxMemslots);
  unsigned i = count_;
  for (; i > 0 && slots_[i - 1].base_gfn > s.base_gfn; i--) slots_[i] = slots_[i - 1];
  slots_[i] = s;
  count_++;
}

void MemslotSet::remove_at(unsigned i) {
  MMU_ASSERT(i < count_);
  for (; i + 1 < count_; i++) slots_[i] = slots_[i + 1];
  count_--;
}

MemslotError MemslotSet::with_created(Platform& p, const MemslotConfig& cfg,
                                      const MemslotSet* old, const Memslot& slot,
                                      const MemslotSet*& out) {
  if (slot.as_id >= Memslots::kAddressSpaces || (old != nullptr && old->as_id_ != slot.as_id))
    return MemslotError::bad_address_space;
  if (MemslotError e = check_flags(slot.flags); e != MemslotError::ok) return e;
  if (MemslotError e = check_dirty_log(slot); e != MemslotError::ok) return e;
  if (slot.max_level < 1 || slot.max_level > 3) return MemslotError::bad_level;
  if (MemslotError e = check_range(cfg, slot.base_gfn, slot.npages, slot.backing_hpa);
      e != MemslotError::ok)
    return e;
  if (old != nullptr) {
    if (old->index_of(slot.id) >= 0) return MemslotError::duplicate_id;
    if (old->count_ >= kMaxMemslots) return MemslotError::too_many;
    for (const Memslot& s : *old)
      if (overlaps(s, slot.base_gfn, slot.npages)) return MemslotError::overlap;
  }
  MemslotSet* set = allocate(p, slot.as_id, old);
  if (set == nullptr) return MemslotError::out_of_memory;
  set->insert_sorted(slot);
  out = set;
  return MemslotError::ok;
}

MemslotError MemslotSet::with_removed(Platform& p, const MemslotSet* old, uint32_t id,
                                      const MemslotSet*& out) {
  const int i = old != nullptr ? old->index_of(id) : -1;
  if (i < 0) return MemslotError::no_such_slot;
  MemslotSet* set = allocate(p, old->as_id_, old);
  if (set == nullptr) return MemslotError::out_of_memory;
  set->remove_at(static_cast<unsigned>(i));
  out = set;
  return MemslotError::ok;
}

MemslotError MemslotSet::with_moved(Platform& p, const MemslotConfig& cfg, const MemslotSet* old,
                                    uint32_t id, gfn_t new_base_gfn, const MemslotSet*& out) {
  const int i = old != nullptr ? old->index_of(id) : -1;
  if (i < 0) return MemslotError::no_such_slot;
  Memslot moved = old->slots_[i];
  moved.base_gfn = new_base_gfn;
  if (MemslotError e = check_range(cfg, moved.base_gfn, moved.npages, moved.backing_hpa);
      e != MemslotError::ok)
    return e;
  for (unsigned j = 0; j < old->count_; j++)
    if (j != static_cast<unsigned>(i) && overlaps(old->slots_[j], moved.base_gfn, moved.npages))
      return MemslotError::overlap;
  MemslotSet* set = allocate(p, old->as_id_, old);
  if (set == nullptr) return MemslotError::out_of_memory;
  set->remove_at(static_cast<unsigned>(i));
  set->insert_sorted(moved);
  out = set;
  return MemslotError::ok;
}

MemslotError MemslotSet::with_flags(Platform& p, const MemslotSet* old, uint32_t id,
                                    uint32_t flags, const MemslotSet*& out) {
  const int i = old != nullptr ? old->index_of(id) : -1;
  if (i < 0) return MemslotError::no_such_slot;
  if (MemslotError e = check_flags(flags); e != MemslotError::ok) return e;
  // Dirty logging is switched by with_dirty_log() only (the log must exist with the flag).
  if ((flags ^ old->slots_[i].flags) & Memslot::kDirtyLog) return MemslotError::bad_flags;
  MemslotSet* set = allocate(p, old->as_id_, old);
  if (set == nullptr) return MemslotError::out_of_memory;
  set->slots_[i].flags = flags;
  out = set;
  return MemslotError::ok;
}

MemslotError MemslotSet::with_dirty_log(Platform& p, const MemslotSet* old, uint32_t id,
                                        DirtyLog* log, const MemslotSet*& out) {
  const int i = old != nullptr ? old->index_of(id) : -1;
  if (i < 0) return MemslotError::no_such_slot;
  const Memslot& cur = old->slots_[i];
  if (log != nullptr && cur.read_only()) return MemslotError::read_only_slot;
  if (log != nullptr && cur.dirty_logging()) return MemslotError::already_logging;
  if (log == nullptr && !cur.dirty_logging()) return MemslotError::not_logging;
  MemslotSet* set = allocate(p, old->as_id_, old);
  if (set == nullptr) return MemslotError::out_of_memory;
  Memslot& s = set->slots_[i];
  s.dirty_log = log;
  s.flags = log != nullptr ? (s.flags | Memslot::kDirtyLog) : (s.flags & ~Memslot::kDirtyLog);
  out = set;
  return MemslotError::ok;
}

// --- Freeing ---

void MemslotSet::destroy() const { platform_->free_page(self_); }

void MemslotSet::retire(Epoch& epoch) const { epoch.retire(&retire_node_, &MemslotSet::retire_fn); }

void MemslotSet::retire_fn(EpochCallback* cb) {
  // The node is the first member of a standard-layout class: its address is the set's.
  static_assert(__is_standard_layout(MemslotSet), "retire_fn casts from the node to the set");
  reinterpret_cast<const MemslotSet*>(cb)->destroy();
}

// --- Memslots ---

Memslots::Memslots(Platform& platform, Epoch& epoch, const MemslotConfig& cfg)
    : platform_(platform), epoch_(epoch), cfg_(cfg) {
  MMU_ASSERT(cfg.maxphyaddr > kPageShift && cfg.maxphyaddr <= 52);
}

Memslots::~Memslots() {
  for (auto& s : sets_) {
    const MemslotSet* set = s.load(Order::relaxed);
    if (set != nullptr) set->destroy();
  }
}

const MemslotSet* Memslots::active(uint32_t as_id) const {
  // Inside a read section, the set we return stays allocated until the section ends (it is
  // freed only through retire(), after a grace period). Holding update_lock_ is not enough
  // for a reader: another CPU may hold it, not us (the lock word records no owner), and the
  // updater has its own accessor, active_locked().
  MMU_ASSERT(epoch_.in_read_section());
  MMU_ASSERT(as_id < kAddressSpaces);
  // Acquire: pairs with the release store in publish(), so that the set's contents, written
  // by the builder before publication, are visible here.
  return sets_[as_id].load(Order::acquire);
}

const MemslotSet* Memslots::active_locked(uint32_t as_id) const {
  update_lock_.assert_held();  // run-time half: held by someone (the analysis checks "by us")
  MMU_ASSERT(as_id < kAddressSpaces);
  // Relaxed: only update_lock_ holders store sets_, and the lock (acquire in lock(), release
  // in unlock()) orders us after the last publish() and the builder's writes before it.
  return sets_[as_id].load(Order::relaxed);
}

const Memslot* Memslots::find(uint32_t as_id, gfn_t gfn) const {
  if (as_id >= kAddressSpaces) return nullptr;
  const MemslotSet* set = active(as_id);
  return set != nullptr ? set->find(gfn) : nullptr;
}

MemslotError Memslots::prepare(const MemslotOp& op, const MemslotSet*& new_set) {
  const uint32_t as_id = op.slot.as_id;
  if (as_id >= kAddressSpaces) return MemslotError::bad_address_space;
  // Relaxed: only update_lock_ holders store sets_, and the lock orders us after them.
  const MemslotSet* cur = sets_[as_id].load(Order::relaxed);
  switch (op.kind) {
    case MemslotOp::Kind::create:
      return MemslotSet::with_created(platform_, cfg_, cur, op.slot, new_set);
    case MemslotOp::Kind::remove:
      return MemslotSet::with_removed(platform_, cur, op.slot.id, new_set);
    case MemslotOp::Kind::move:
      return MemslotSet::with_moved(platform_, cfg_, cur, op.slot.id, op.slot.base_gfn, new_set);
    case MemslotOp::Kind::set_flags:
      return MemslotSet::with_flags(platform_, cur, op.slot.id, op.slot.flags, new_set);
    case MemslotOp::Kind::set_dirty_log:
      return MemslotSet::with_dirty_log(platform_, cur, op.slot.id, op.slot.dirty_log, new_set);
  }
  return MemslotError::bad_flags;  // not reached: every kind is handled above
}

const MemslotSet* Memslots::publish(const MemslotSet* new_set) {
  MMU_ASSERT(new_set != nullptr && new_set->as_id() < kAddressSpaces);
  Atomic<const MemslotSet*>& slot = sets_[new_set->as_id()];
  const MemslotSet* old = slot.load(Order::relaxed);  // relaxed: as in prepare()
  // A set must be built from the one it replaces, or a concurrent change would be lost.
  MMU_ASSERT(new_set->generation() == (old != nullptr ? old->generation() + 1 : 1));
  // Release: pairs with the acquire load in active(); the builder's writes to *new_set come
  // before it.
  slot.store(new_set, Order::release);
  // After the pointer (release): a reader whose acquire load sees this generation also sees
  // the set. Faults compare it with the generation of their cached slot (Mmu::lookup_slot_vcpu).
  generations_[new_set->as_id()].store(new_set->generation(), Order::release);
  return old;
}

void Memslots::retire(const MemslotSet* old) {
  if (old != nullptr) old->retire(epoch_);
}

void Memslots::discard(const MemslotSet* unpublished) {
  if (unpublished == nullptr) return;
  for (auto& s : sets_) MMU_ASSERT(s.load(Order::relaxed) != unpublished);
  unpublished->destroy();
}

}  // namespace mmu
