// TdpIter: a pre-order walker over the entries of an EPT hierarchy that intersect [start, end).
//
// Pure mechanism, no policy: it visits every entry whose range intersects [start, end), from
// the root down to `min_level`, parents before children, in increasing gfn order. It never
// writes. Callers decide what to do with each entry (install, zap, age) and may change the
// current entry; the iterator re-reads an entry right before stepping into it, so a table that
// was unlinked meanwhile is not entered (the caller's epoch section or MMU lock keeps the table
// memory itself valid while the walker may still hold a pointer into it).
//
// Yielding: a caller that must drop its lock calls mark_yielded() and then next(); next() then
// restarts from the root at the current entry's gfn (tables may have changed while unlocked).
// Forward progress: may_yield() is true only once the walk has moved past the gfn of the last
// restart, so between two yields at least one entry was fully processed and the restart gfn
// strictly increases; a walk of a finite range therefore terminates however often it yields.
#pragma once

#include "mmu/platform.h"
#include "mmu/spte.h"
#include "mmu/spte_ops.h"

namespace mmu {

class TdpIter {
 public:
  // `root` is the hypervisor address of the root table, `root_level` 4 or 5.
  TdpIter(Platform& platform, spte_t* root, int root_level, gfn_t start, gfn_t end, int min_level)
      : platform_(platform), root_level_(root_level), min_level_(min_level) {
    MMU_ASSERT(root_level >= 2 && root_level <= spte::kMaxLevels);
    MMU_ASSERT(min_level >= 1 && min_level <= root_level);
    tables_[root_level] = root;
    // Clamp to what the root can translate: a 4-level root covers 2^36 frames (48-bit GPAs).
    const gfn_t limit = spte::pages_per_entry(root_level + 1);
    end_ = end < limit ? end : limit;
    yielded_gfn_ = start;
    start_at(start);
  }

  bool valid() const { return valid_; }
  // The current entry: its address, the value read when it was reached, its level and the first
  // gfn it maps. Callers that change the entry store the new value in old_spte.
  spte_t* sptep() const { return sptep_; }
  spte_t old_spte;
  int level() const { return level_; }
  gfn_t gfn() const { return gfn_; }
  // The table holding the current entry (for callers that hand a whole table to someone).
  spte_t* table(int level) const { return tables_[level]; }

  bool may_yield() const { return gfn_ > yielded_gfn_; }
  // The caller dropped (or is about to drop) its lock: the next next() restarts from the root.
  void mark_yielded() {
    MMU_ASSERT(may_yield());
    yielded_ = true;
  }

  // The caller handled everything below the current entry itself (e.g. zapped a whole table of
  // leaves in one loop): the next next() moves past the entry without descending into it.
  void skip_children() { skip_children_ = true; }

  void next() {
    if (yielded_) {
      yielded_ = false;
      skip_children_ = false;
      yielded_gfn_ = gfn_;
      start_at(gfn_);
      return;
    }
    if (skip_children_) {
      skip_children_ = false;
    } else if (step_down()) {
      return;
    }
    step_side_or_up();
  }

  // Whether the current entry's whole range lies inside the walk's [start, end).
  bool covers_entry() const {
    return gfn_ >= walk_start_ && gfn_ + spte::pages_per_entry(level_) <= end_;
  }

 private:
  void start_at(gfn_t gfn) {
    walk_start_ = gfn;
    level_ = root_level_;
    gfn_ = spte::align_down(gfn, level_);
    valid_ = gfn < end_;
    if (valid_) load();
  }

  void load() {
    sptep_ = tables_[level_] + spte::index_of(gfn_, level_);
    old_spte = spte_read(sptep_);
  }

  bool step_down() {
    if (level_ <= min_level_) return false;
    // Re-read: the caller may have changed the entry, or another CPU may have unlinked the table
    // since we read it. Only a link that is present now is followed.
    const spte_t cur = spte_read(sptep_);
    old_spte = cur;
    if (!spte::is_table(cur, level_)) return false;
    // table_va(): no virtual call per level (mmu/platform.h).
    tables_[level_ - 1] = static_cast<spte_t*>(platform_.table_va(spte::pfn_addr(cur)));
    const gfn_t from = gfn_ > walk_start_ ? gfn_ : walk_start_;
    level_--;
    gfn_ = spte::align_down(from, level_);
    load();
    return true;
  }

  void step_side_or_up() {
    for (;;) {
      const uint64_t span = spte::pages_per_entry(level_);
      const bool last_in_table = spte::index_of(gfn_, level_) == spte::kEntriesPerTable - 1;
      const gfn_t next_gfn = spte::align_down(gfn_, level_) + span;
      if (!last_in_table) {
        if (next_gfn >= end_) break;
        gfn_ = next_gfn;
        load();
        return;
      }
      if (level_ == root_level_) break;
      level_++;
      gfn_ = spte::align_down(gfn_, level_);
    }
    valid_ = false;
  }

  Platform& platform_;
  const int root_level_;
  const int min_level_;
  gfn_t end_ = 0;
  spte_t* tables_[spte::kMaxLevels + 1] = {};
  spte_t* sptep_ = nullptr;
  int level_ = 0;
  gfn_t gfn_ = 0;
  gfn_t walk_start_ = 0;
  gfn_t yielded_gfn_ = 0;
  bool valid_ = false;
  bool yielded_ = false;
  bool skip_children_ = false;
};

// TdpPath: the walk of one gfn from the root down, the fault's walker (mmu/fault.cpp). What
// TdpIter does for a range of one page, without the range's bookkeeping (yield points, skips,
// side steps, a stack of tables): a 4 KiB fault spent about a third of its instructions there.
// The same rule for stepping down: the entry is read again, and followed only if it is a
// present link now; otherwise the walk stays where it is and says so.
class TdpPath {
 public:
  // `root` is the hypervisor address of the root table, `root_level` 4 or 5; `gfn` must be
  // one the root can translate.
  TdpPath(Platform& platform, spte_t* root, int root_level, gfn_t gfn)
      : platform_(platform), gfn_(gfn), level_(root_level), table_(root) {
    MMU_ASSERT(root_level >= 2 && root_level <= spte::kMaxLevels);
    MMU_ASSERT(gfn < spte::pages_per_entry(root_level + 1));
    load();
  }

  // The current entry: its address, the value read when it was reached, its level, the first
  // gfn it maps and the table that holds it. Callers that change the entry store the new
  // value in old_spte.
  spte_t* sptep() const { return sptep_; }
  spte_t old_spte;
  int level() const { return level_; }
  gfn_t gfn() const { return spte::align_down(gfn_, level_); }
  spte_t* table() const { return table_; }

  // Into the table the current entry links to. False, and the walk stays, when the entry
  // (read again) is not a link now: another CPU changed it since it was read.
  bool step_down() {
    MMU_ASSERT(level_ > 1);
    const spte_t cur = spte_read(sptep_);
    old_spte = cur;
    if (!spte::is_table(cur, level_)) return false;
    // table_va(): no virtual call per level (mmu/platform.h).
    table_ = static_cast<spte_t*>(platform_.table_va(spte::pfn_addr(cur)));
    level_--;
    load();
    return true;
  }

 private:
  void load() {
    sptep_ = table_ + spte::index_of(gfn_, level_);
    old_spte = spte_read(sptep_);
  }

  Platform& platform_;
  const gfn_t gfn_;
  int level_;
  spte_t* table_;
  spte_t* sptep_ = nullptr;
};

}  // namespace mmu
