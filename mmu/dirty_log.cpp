// Dirty logging: the per-slot bitmap (dirty_log.h) and the MMU's start, stop, harvest and mark
// (mmu.h). docs/mmu.md §11 explains it for a first reading.
//
// Serialization: start, stop and harvest of any slot hold the memslot update lock, so they never
// run at the same time as each other or as a memslot update; they take the MMU lock inside it
// (the lock order of docs/mmu.md §8). Faults and PML marks run concurrently with all of them.
//
// The guarantee of a harvest H (with vCPUs running): a guest write to page p of the slot that
// happens before H returns is reported by H or by a later harvest. (Equivalently: no write is
// ever lost; a write may be reported twice.) Why it holds, per mechanism:
//
// write_protect. Invariants: (W1) a fault that makes p's leaf writable does the CAS that sets W
// and then sets p's bit, both inside one section of the MMU lock held shared (fault.cpp,
// log_write). (W2) a harvest first takes the bitmap words (exchange with 0), then clears W in
// every leaf of the slot in every root of the address space under the MMU lock held
// exclusively, then flushes every TLB, then returns.
//   Take a write at time t through a writable translation of p. That W was set by some fault F
//   (or was there when logging started: the start clears W everywhere and sets every bit, so
//   that case is the first harvest's). Let H be the first harvest whose W-clearing walk clears
//   that W. Its walk passed p under the exclusive lock, so after F's shared section, hence
//   after F set p's bit (W1). Either H's exchange of p's word came after that bit was set: H
//   reports p; and t is before H's flush completed (afterwards no CPU can use the W that H
//   cleared), so t is before H returns. Or H took the word before F set the bit (H yields the
//   lock between its walk's steps, and F may run in such a gap): the bit stays set and the
//   next harvest reports p, which returns after H, so after t. If no harvest ever clears that
//   W, its bit is still set and the next harvest reports p. A write during the window between
//   H's W clear and H's flush (through a stale TLB entry) is before H returns: covered by H.
//   Bits are cleared only by exchanges; W is cleared only by harvests, the start and zaps,
//   and a zap's drop never loses anything because a writable leaf's bit is already set (W1).
//   The order "W, then bit" in F is the safe one: "bit, then W" would let a harvest take the
//   bit and find W still clear (nothing to clear), after which F's CAS (which compares the
//   whole entry, unchanged) makes p writable with its bit clear: every later write lost.
//
// dirty_bit (and pml). The CPU sets D (atomically, with the walker's locked update) in the
// leaf it writes through, unless its TLB entry already knows D is set. A harvest H first
// test-and-clears D in every leaf of the slot in every root (atomic fetch_and, under the MMU
// lock exclusive - the CPU does not take our locks, hence the atomic), setting the bit of every
// leaf that had D; then takes the bitmap words; then flushes every TLB; then returns.
//   Take a write at time t to page p. Either the CPU set D for it (D was clear): then D stays
//   set until some harvest clears it, and that harvest marks p before it takes the words, so it
//   reports p (and it is this harvest or a later one, since the D was set at t). Or the write
//   went through a TLB entry that knew D was set: that entry was made from a walk that saw D
//   set at some time t0 <= t. Let H be the first harvest clearing D in p's leaf after t0: H
//   reports p; and t is before H's flush completed (afterwards the entry is gone and a write
//   walks again and sets D anew), so before H returns. The flush at the end is therefore what
//   makes "clear D" mean "the next write re-sets D": without it, a TLB entry that knows D
//   would let writes after the clear go unrecorded.
//   Leaves that leave the tree take their D with them, so: a zap (zap.cpp) reads D from its
//   exchange and marks the slot (dirty_log_dropped); a root's teardown unlinks whole tables
//   without reading their leaves atomically, and a CPU on that root may set D in them until the
//   teardown's flush, so when a teardown finishes every D-logged slot of the address space
//   counts as wholly dirty (dirty_log_root_gone: over-reporting after a fast zap, never losing);
//   and since a root whose last reference went is skipped by root walks until its teardown is
//   done, a harvest first finishes every teardown scheduled before it (wait_for_teardown), so
//   a D left in such a root is reported by the harvest that follows the root's release;
//   a memslot move or flag change of a D-logged slot marks the whole slot (memslot_update.cpp).
//   pml uses the CPU's log instead of the 4 KiB leaves' D bits: with PML on, the CPU appends
//   the GPA of a write to the vCPU's log whenever it sets D (0 -> 1) in a leaf, and software
//   never sets D in a 4 KiB leaf without reporting it (the fault path only keeps the old A/D on
//   an upgrade; a split that hands a huge leaf's D to its children marks the huge range). A
//   vCPU's entries become bits when the platform drains its log (hv: at every VM exit, and the
//   harvest's drain_dirty_logs() returns only when every entry logged before the call is a
//   bit). The harvest H: drain, take the words, then clear D in every leaf (reporting only huge
//   leaves' D, into the next harvest: the log holds the GPA of the write, not every page of a
//   huge leaf), then flush. Clearing after the take is what W's order is for write_protect:
//   Take a write at t to p in a 4 KiB leaf, through a translation that knows D (the write set
//   it, or a TLB entry made while it was set); let t0 <= t be the last 0 -> 1 of that D before
//   the translation was made, logged at t0. Let Hr be the first harvest whose take comes after
//   that entry's mark (the entry is marked by the drain of the next exit, or at the latest by
//   the next harvest's drain call): Hr reports p. Hr's D pass comes after its take, so after
//   the mark, so after t0; the D set at t0 is still set then (only harvests clear D, and a zap
//   that drops it marks the slot), so Hr clears it and then flushes. The translation used at t
//   was made while D was set, after t0 and (by the choice of t0) before Hr's clear, so Hr's
//   flush removes it: t is before Hr returns. So Hr, which reports p, is the harvest during
//   which the write happened or a later one. The other order (clear D, then take) loses
//   writes: an entry logged and drained between the clear and the take is reported by this
//   harvest with D left set, and later writes then log nothing. The drain is load-bearing:
//   without it nothing reports a 4 KiB page whose D the walk clears (tests/unit/dirty_log_test.cpp
//   "the drain is load-bearing"; tests/stress/dirty_log_stress.cpp models the per-exit drains).
//
// Huge leaves: a logged slot maps 4 KiB leaves only (Mmu::goal_level). At the start the huge
// leaves of the slot in the caller's root are split (split_huge_pages: bounded steps that yield
// the lock); huge leaves left elsewhere (other roots, or a split that ran out of memory) are
// still correct: write_protect clears their W (a write fault splits them, fault.cpp), and a
// huge leaf's D marks all its pages. After the stop the slot's leaves are zapped, so faults
// build huge leaves again where the slot allows them.
#include "mmu/dirty_log.h"

#include "mmu/dirty_ring.h"
#include "mmu/mmu.h"
#include "mmu/spte_ops.h"
#include "mmu/tdp_iter.h"

namespace mmu {

const char* to_string(DirtyMode m) {
  switch (m) {
    case DirtyMode::write_protect: return "write_protect";
    case DirtyMode::dirty_bit: return "dirty_bit";
    case DirtyMode::pml: return "pml";
  }
  return "?";
}

// --- DirtyLog ---

DirtyLog* DirtyLog::create(Platform& p, uint64_t npages, DirtyMode mode) {
  static_assert(sizeof(DirtyLog) <= kPageSize, "the dirty log's header must fit one page");
  static_assert(sizeof(Atomic<uint64_t>) == sizeof(uint64_t) && kWordsPerChunk == 512,
                "a bitmap page holds 512 atomic words");
  static_assert(__is_standard_layout(DirtyLog), "retire_fn casts from the node to the log");
  MMU_ASSERT(npages > 0 && npages <= kMaxPages);
  const hpa_t self = p.alloc_page();
  if (self == 0) return nullptr;
  auto* log = new (p.phys_to_virt(self)) DirtyLog(p, self, npages, mode);
  const uint64_t chunks = (log->words() + kWordsPerChunk - 1) / kWordsPerChunk;
  for (uint64_t c = 0; c < chunks; c++) {
    const hpa_t page = p.alloc_page();  // zeroed: every bit clear
    if (page == 0) {
      log->destroy();
      return nullptr;
    }
    auto* words = static_cast<Atomic<uint64_t>*>(p.phys_to_virt(page));
    for (unsigned i = 0; i < kWordsPerChunk; i++) new (&words[i]) Atomic<uint64_t>(0);
    log->chunks_[c] = words;
    log->nchunks_++;
  }
  return log;
}

void DirtyLog::destroy() {
  Platform& p = *platform_;
  const hpa_t self = self_;
  for (unsigned c = 0; c < nchunks_; c++) p.free_page(p.virt_to_phys(chunks_[c]));
  p.free_page(self);  // last: the fields live in it
}

void DirtyLog::retire(Epoch& epoch) { epoch.retire(&retire_node_, &DirtyLog::retire_fn); }

void DirtyLog::retire_fn(EpochCallback* cb) {
  // The node is the first member of a standard-layout class: its address is the log's.
  reinterpret_cast<DirtyLog*>(cb)->destroy();
}

void DirtyLog::set_range(uint64_t first, uint64_t n) {
  if (first >= npages_) return;
  uint64_t end = n > npages_ - first ? npages_ : first + n;
  while (first < end) {
    const uint64_t bit = first % 64;
    const uint64_t count = end - first < 64 - bit ? end - first : 64 - bit;
    const uint64_t mask = (count == 64 ? ~uint64_t{0} : ((uint64_t{1} << count) - 1)) << bit;
    word(first / 64).fetch_or(mask, Order::relaxed);
    first += count;
  }
}

// --- Start, stop ---

namespace {
// The slot `slot_id` of `as_id` as the updater sees it (update lock held), or an error.
MemslotError find_slot(Memslots& slots, unsigned as_id, unsigned slot_id, const Memslot** out)
    REQUIRES(slots.update_lock()) {
  const MemslotSet* cur = slots.active_locked(as_id);
  const Memslot* s = cur != nullptr ? cur->find_id(slot_id) : nullptr;
  if (s == nullptr) return MemslotError::no_such_slot;
  *out = s;
  return MemslotError::ok;
}

// The same for a slot whose dirty log is on (stop, harvest).
MemslotError find_logged_slot(Memslots& slots, unsigned as_id, unsigned slot_id, const Memslot** out)
    REQUIRES(slots.update_lock()) {
  if (MemslotError e = find_slot(slots, as_id, slot_id, out); e != MemslotError::ok) return e;
  return (*out)->dirty_logging() ? MemslotError::ok : MemslotError::not_logging;
}
}  // namespace

MemslotError Mmu::dirty_log_start(VcpuMmu& v, unsigned as_id, unsigned slot_id, DirtyMode mode) {
  if (as_id >= Memslots::kAddressSpaces || as_id >= config_.address_spaces)
    return MemslotError::bad_address_space;
  if (uses_dirty_bit(mode) && !config_.ept_ad) return MemslotError::unsupported;
  SpinLockGuard serialize(memslots_.update_lock());
  const Memslot* s = nullptr;
  if (MemslotError e = find_slot(memslots_, as_id, slot_id, &s); e != MemslotError::ok) return e;
  if (s->read_only()) return MemslotError::read_only_slot;
  if (s->dirty_logging()) return MemslotError::already_logging;
  if (s->npages > DirtyLog::kMaxPages) return MemslotError::too_large;
  const gfn_t start = s->base_gfn, end = s->end_gfn();
  DirtyLog* log = DirtyLog::create(platform_, s->npages, mode);
  if (log == nullptr) return MemslotError::out_of_memory;
  // Every page counts as dirty at the start: what the guest wrote before is not known.
  log->set_all();
  const MemslotSet* next = nullptr;
  if (MemslotError e = memslots_.prepare(MemslotOp::set_dirty_log(as_id, slot_id, log), next);
      e != MemslotError::ok) {
    log->destroy();
    return e;
  }
  // Before any leaf can carry D for this slot under the new set (the teardown and zap hooks
  // look at it; the MMU lock taken below orders it before their steps).
  if (uses_dirty_bit(mode)) dirty_d_slots_.fetch_add(1, Order::relaxed);
  // As a memslot update (memslot_update.cpp): from here no fault installs a leaf in the slot
  // until invalidate_end(), and a fault that looked at the old (unlogged) set retries, so no
  // writable huge leaf or unlogged writable leaf appears behind the walks below.
  invalidate_begin(as_id, start, end);
  const MemslotSet* old_set = memslots_.publish(next);
  // Eager split in the caller's root. Its result does not matter for correctness (see the top
  // of this file: huge leaves left over are protected too); false means memory ran out.
  if (v.root_ != nullptr && v.as_id_ == as_id) split_huge_pages(v, start, end, 1);
  // write_protect: no leaf of the slot keeps W. dirty_bit/pml: none keeps D, so the CPU sets D
  // (and logs, with PML) on the next write. No bits to collect: they are all set already.
  dirty_log_protect(as_id, start, end, mode == DirtyMode::write_protect ? spte::kWrite : spte::kDirty,
                    nullptr, 0);
  invalidate_end();
  // No TLB keeps a W or a "D known" that the walk removed once this returns.
  flush();
  memslots_.retire(old_set);
  return MemslotError::ok;
}

MemslotError Mmu::dirty_log_stop(VcpuMmu& v, unsigned as_id, unsigned slot_id) {
  (void)v;
  if (as_id >= Memslots::kAddressSpaces || as_id >= config_.address_spaces)
    return MemslotError::bad_address_space;
  SpinLockGuard serialize(memslots_.update_lock());
  const Memslot* s = nullptr;
  if (MemslotError e = find_logged_slot(memslots_, as_id, slot_id, &s); e != MemslotError::ok) return e;
  const gfn_t start = s->base_gfn, end = s->end_gfn();
  DirtyLog* const log = s->dirty_log;
  const MemslotSet* next = nullptr;
  if (MemslotError e = memslots_.prepare(MemslotOp::set_dirty_log(as_id, slot_id, nullptr), next);
      e != MemslotError::ok)
    return e;
  // The zap drops the 4 KiB leaves (write-protected ones too): faults rebuild the slot's
  // mappings with W and as large as the slot allows. The invalidation makes every fault that
  // still holds the log in its SlotView retry before it touches the log.
  invalidate_begin(as_id, start, end);
  const MemslotSet* old_set = memslots_.publish(next);
  zap_range(as_id, start, end);
  invalidate_end();
  memslots_.retire(old_set);
  if (uses_dirty_bit(log->mode())) dirty_d_slots_.fetch_sub(1, Order::relaxed);
  // PML marks and the zap hook reach the log inside epoch sections: free after a grace period.
  log->retire(epoch_);
  return MemslotError::ok;
}

// --- Harvest ---

MemslotError Mmu::dirty_log_harvest(VcpuMmu& v, unsigned as_id, unsigned slot_id, uint64_t* bitmap,
                                    size_t words, uint64_t* pages_out) {
  (void)v;
  if (as_id >= Memslots::kAddressSpaces || as_id >= config_.address_spaces)
    return MemslotError::bad_address_space;
  SpinLockGuard serialize(memslots_.update_lock());
  const Memslot* s = nullptr;
  if (MemslotError e = find_logged_slot(memslots_, as_id, slot_id, &s); e != MemslotError::ok) return e;
  // The log stays ours while we hold the update lock (only a stop or remove frees it).
  DirtyLog* const log = s->dirty_log;
  const uint64_t need = log->words();
  if (bitmap == nullptr || words < need) return MemslotError::buffer_too_small;
  const gfn_t start = s->base_gfn, end = s->end_gfn();
  const DirtyMode mode = log->mode();

  // pml: what the CPUs logged so far becomes bits (the platform returns once it is reported).
  if (mode == DirtyMode::pml) platform_.drain_dirty_logs(config_.tlb_tag);
  if (uses_dirty_bit(mode)) {
    // A root whose last reference went is out of every root walk (Roots::next) until its
    // teardown is done, but its leaves may carry D bits of writes made before the vCPU left
    // it: finish every teardown scheduled so far, whose end marks the D-logged slots wholly
    // dirty (dirty_log_root_gone). A root dropped after this point is covered by the next
    // harvest, which waits for it in turn. (write_protect needs none of this: a writable
    // leaf's bit is set before the leaf can be used.)
    wait_for_teardown(roots_.last_ticket());
  }
  // dirty_bit: D -> bits, before the words are taken (see the top of this file).
  if (mode == DirtyMode::dirty_bit) dirty_log_protect(as_id, start, end, spte::kDirty, log, start);
  uint64_t pages = 0;
  for (uint64_t w = 0; w < need; w++) {
    const uint64_t bits = log->take_word(w);
    bitmap[w] |= bits;
    pages += static_cast<uint64_t>(__builtin_popcountll(bits));
  }
  // write_protect: W goes after the words are taken (see the top of this file).
  if (mode == DirtyMode::write_protect) dirty_log_protect(as_id, start, end, spte::kWrite, nullptr, 0);
  // pml: D goes after the words are taken, as W does: a page whose log entry was drained before
  // the take has its D cleared after it was reported, so its next write logs again. (Before the
  // take, a write could set D and be drained into this harvest between the clear and the take,
  // leaving D set: later writes would log nothing, and nothing would report them.) Only huge
  // leaves' D become bits here (for the next harvest): the CPU logs the GPA of the write, not
  // every page a huge leaf maps; a 4 KiB leaf's D is just cleared, which re-arms logging.
  if (mode == DirtyMode::pml) dirty_log_protect(as_id, start, end, spte::kDirty, log, start, 2);
  // Always, even if no entry changed here: a zap may have cleared a writable leaf and not have
  // flushed yet, and a TLB entry that knows W or D must not outlive this harvest.
  flush();
  if (pages_out != nullptr) *pages_out = pages;
  return MemslotError::ok;
}

void Mmu::dirty_log_protect(unsigned as_id, gfn_t start, gfn_t end, spte_t bits, DirtyLog* log,
                            gfn_t log_base, int mark_min_level) {
  epoch_.assert_not_in_read_section();  // no waiting for the lock in a section
  WriteLockGuard guard(mmu_lock_);
  // Every root of the address space, valid or not: a vCPU may run on an invalid root until its
  // next entry, and its leaves must lose W (or D) as well.
  for (Root* r : roots_exclusive(as_id)) dirty_log_protect_root_yield_safe(r, start, end, bits, log, log_base, mark_min_level);
}

namespace {
constexpr unsigned kProtectYieldCheck = 32;  // entries between two looks at should_yield()
}  // namespace

// MMU lock: exclusive, dropped and retaken at yield points (nothing is unlinked, so no
// generation to note: the caller flushes before it returns).
void Mmu::dirty_log_protect_root_yield_safe(Root* root, gfn_t start, gfn_t end, spte_t bits,
                                            DirtyLog* log, gfn_t log_base, int mark_min_level) {
  mmu_lock_.assert_held();
  unsigned since_check = 0;
  for (TdpIter it(platform_, root->table, root->level, start, end, 1); it.valid(); it.next()) {
    if (++since_check >= kProtectYieldCheck && it.may_yield()) {
      since_check = 0;
      if (platform_.should_yield()) {
        mmu_lock_.unlock();
        platform_.cpu_relax();
        epoch_.assert_not_in_read_section();  // no waiting for the lock in a section
        mmu_lock_.lock();
        it.mark_yielded();
        continue;
      }
    }
    const int level = it.level();
    if (!spte::is_leaf(it.old_spte, level) || !(it.old_spte & bits)) continue;
    // Atomic: the CPU may set A/D in the entry at any time (it takes none of our locks).
    const spte_t before = spte_clear_bits(it.sptep(), bits, level);
    it.old_spte = before & ~bits;
    if (log != nullptr && level >= mark_min_level && spte::is_leaf(before, level) && (before & spte::kDirty)) {
      // A huge leaf (left over in another root) stands for all its pages.
      const gfn_t first = it.gfn();
      const uint64_t n = spte::pages_per_entry(level);
      if (first >= log_base) {
        log->set_range(first - log_base, n);
      } else if (first + n > log_base) {
        log->set_range(0, first + n - log_base);
      }
    }
  }
}

// --- Marks from outside the walks ---

void Mmu::dirty_log_mark_gpa(gpa_t gpa, unsigned as_id, DirtyRing* ring) {
  if (as_id >= Memslots::kAddressSpaces) return;
  const gfn_t gfn = gpa >> kPageShift;
  // The log is freed only after a grace period once its slot left the published set.
  EpochReadGuard section(epoch_);
  const Memslot* s = memslots_.find(as_id, gfn);
  if (s == nullptr || s->dirty_log == nullptr) return;
  s->dirty_log->set(gfn - s->base_gfn);
  // The ring after the bit (the bitmap is the guarantee; a full ring drops, the bit stays).
  if (ring != nullptr) ring->push(s->id, as_id, gfn - s->base_gfn);
}

void Mmu::dirty_log_dropped(unsigned as_id, gfn_t gfn, int level) {
  EpochReadGuard section(epoch_);
  const Memslot* s = memslots_.find(as_id, gfn);
  if (s == nullptr || s->dirty_log == nullptr || !uses_dirty_bit(s->dirty_log->mode())) return;
  s->dirty_log->set_range(gfn - s->base_gfn, spte::pages_per_entry(level));
}

void Mmu::dirty_log_root_gone(unsigned as_id) {
  // Relaxed: a start that counts a slot does so before it takes the MMU lock exclusively
  // (invalidate_begin), and every teardown step takes that lock too (shared, which orders it
  // against the exclusive section just the same); a teardown whose steps all
  // ran before the start had no leaf of the logged slot with D that matters (the start sets
  // every bit).
  if (dirty_d_slots_.load(Order::relaxed) == 0 || as_id >= Memslots::kAddressSpaces) return;
  EpochReadGuard section(epoch_);
  const MemslotSet* set = memslots_.active(as_id);
  if (set == nullptr) return;
  for (const Memslot& s : *set) {
    if (s.dirty_log != nullptr && uses_dirty_bit(s.dirty_log->mode())) s.dirty_log->set_all();
  }
}

}  // namespace mmu
