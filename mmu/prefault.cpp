// Pre-fault and fault-around: mapping guest memory before the guest touches it.
//
// Pre-fault (Mmu::prefault, as KVM_PRE_FAULT_MEMORY): a caller (a hypercall, a VMM before the
// first entry) asks for [start, end) to be mapped now. It is the fault path run over a range:
// the same memslot snapshot, level choice (goal_level), invalidation check and walk
// (map_locked), only in batches of several leaves per lock hold instead of one per exit.
//
// Fault-around (Mmu::fault_around_locked, called from map_locked for a new 4 KiB or 2 MiB leaf):
// a slot that allows only 4 KiB leaves (its backing, its alignment, or the per-VM maximum) costs
// one exit per page, one with 2 MiB leaves one per 2 MiB; installing some of the faulting
// leaf's not yet mapped neighbours in the same table takes most of those exits away for the
// price of a few CAS in a table the walk already holds. hv's guest memory is all backed before
// the guest runs (no demand paging), so a neighbour costs an EPT entry and nothing else.
//
// Invalidation rules (the same as a fault's, mmu/fault.cpp and memslot_update.cpp): the
// invalidation sequence is read *before* the memslot lookup, and the MMU lock (shared) is
// taken before anything is installed; under it, a sequence that moved or an invalidation in
// flight over any frame the batch may map sends the batch back to the start (a new snapshot,
// a new lookup). Every memslot change raises the count and the range under the lock held
// exclusively before it publishes, and bumps the sequence after its zap: so a leaf installed
// here is either installed before the zap (which removes it) or built from the new memslot
// set. A fast zap marks the root invalid; we check that under the lock too, and an invalid
// root's teardown removes whatever lands in it anyway.
//
// Dirty logging (hook for the dirty-log work): a slot whose writes are logged must get no huge
// leaf and no write permission it has not logged. Pre-fault gets the level from goal_level(),
// the one place the fault path decides it (a dirty-logged slot must cap it at 1 there), and
// asks map_locked() only for read access, so it never upgrades an existing read-only leaf to
// writable. New leaves get the slot's permissions from the same leaf encoder as a fault's;
// fault_around_allowed() below is where a dirty-logged slot turns fault-around off (or makes
// the neighbours read-only) so that the first write to each still exits and is logged.
#include "mmu/mmu.h"
#include "mmu/spte_ops.h"
#include "mmu/tdp_iter.h"

namespace mmu {

namespace {

// Neighbours may be installed for this slot (see "Dirty logging" above): not in a dirty-logged
// one. With write protection a neighbour would be installed writable without its page being
// marked, and its first write would go unlogged; with D bits it would be correct (D starts
// clear) but logging is where 4 KiB faults are the point: keep each exit one page.
bool fault_around_allowed(const SlotView& slot) { return slot.dirty_log == nullptr; }

// The smallest power of two >= n (n <= 512).
uint64_t pow2_at_least(uint64_t n) {
  uint64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

bool Mmu::lookup_slot_from(unsigned as_id, gfn_t gfn, SlotView* out) {
  // The set may be replaced and retired at any moment: copy what we need inside the section.
  EpochReadGuard section(epoch_);
  const MemslotSet* set = memslots_.active(as_id);
  if (set == nullptr) return false;
  // Sorted by base_gfn and non-overlapping: the first slot that ends above `gfn` either
  // contains it or is the next one.
  for (const Memslot& s : *set) {
    if (s.end_gfn() <= gfn) continue;
    view_of(s, out);  // the same view as a fault's (dirty logging included: 4 KiB leaves only)
    return true;
  }
  return false;
}

PrefaultResult Mmu::prefault(VcpuMmu& v, gfn_t start, gfn_t end, unsigned budget) {
  PrefaultResult r;
  r.next = start;
  if (start > end || end > gfn_limit_) {
    r.status = FaultOutcome::bad_gfn;
    return r;
  }
  if (budget == 0) budget = 1;
  // The CPU id stays the same for the call (no migration while a vCPU runs its exit).
  const unsigned cpu = platform_.cpu_id();
  while (r.next < end && r.units < budget) {
    Root* const root = v.root_;  // the vCPU's reference keeps it (and its top table) alive
    if (root == nullptr || root->invalid.load(Order::acquire)) {
      r.status = FaultOutcome::retry;  // vcpu_load_root() first
      break;
    }
    // Snapshot before the lookup; acquire pairs with the release increment in
    // invalidate_end(), as in map().
    const uint64_t seq = invalidate_seq_.load(Order::acquire);
    SlotView slot;
    if (!lookup_slot_from(v.as_id_, r.next, &slot) || slot.base_gfn >= end) {
      r.next = end;  // nothing backed in the rest of the range: gfns without a slot stay MMIO
      r.status = FaultOutcome::fixed;
      r.units++;
      break;
    }
    if (slot.base_gfn > r.next) {
      r.next = slot.base_gfn;  // skip the hole up to the next slot
      r.status = FaultOutcome::fixed;
      r.units++;
      continue;
    }
    // The batch: up to kPrefaultBatch leaves of this slot, each at the level a fault on its
    // first gfn would choose now. Levels are computed once, so that the frames checked
    // against invalidations below are exactly the frames installed.
    const gfn_t slot_end = slot.base_gfn + slot.npages;
    const gfn_t limit = end < slot_end ? end : slot_end;
    unsigned want = budget - r.units;
    if (want > kPrefaultBatch) want = kPrefaultBatch;
    int8_t goals[kPrefaultBatch];
    unsigned n = 0;
    gfn_t g = r.next;
    while (n < want && g < limit) {
      const int goal = goal_level(slot, g);
      goals[n++] = static_cast<int8_t>(goal);
      g = spte::align_down(g, goal) + spte::pages_per_entry(goal);
    }
    const gfn_t frame_start = spte::align_down(r.next, goals[0]);
    const gfn_t frame_end = g;  // the end of the last frame
    // Pages for the walks are taken before the lock, as by a fault; when they run out inside
    // the batch, map_locked() says so and we come back here for more. A failed top-up is not
    // an error yet (the tables may all be there): only a walk that needs a page it cannot have
    // ends the call with out_of_memory.
    const bool dry = !v.cache_.topup(platform_, account_, static_cast<unsigned>(config_.root_level)) &&
                     v.cache_.count() == 0;
    // A CPU must never wait for the MMU lock inside an epoch section (mmu/epoch.h).
    epoch_.assert_not_in_read_section(cpu);
    PerCpuReadGuard guard(mmu_lock_, cpu);
    if (root->invalid.load(Order::acquire)) {
      r.status = FaultOutcome::retry;
      break;
    }
    if (invalidate_retry(cpu, seq, frame_start, frame_end)) {
      // A memslot change is in flight or finished since the snapshot: it wins. Start over
      // with a new snapshot (or let the caller do so when the budget is spent).
      r.status = FaultOutcome::retry;
      r.units++;
      continue;
    }
    r.status = FaultOutcome::fixed;
    // Tables may be unlinked by other CPUs holding the lock shared: the section keeps every
    // table the walks may still point into alive (as in map()).
    EpochReadGuard section(epoch_, cpu);
    g = r.next;
    for (unsigned i = 0; i < n; i++) {
      const int goal = goals[i];
      // Read access only: an existing leaf that allows reads is left as it is (never made
      // writable behind a write-protection); a new leaf gets the slot's permissions.
      const FaultOutcome o = map_locked(v, cpu, g, spte::kAccRead, slot, goal);
      r.units++;
      if (o == FaultOutcome::fixed) {
        r.installed++;
        count(cpu, kHotPrefaultLeaves);
      } else if (o == FaultOutcome::spurious) {
        r.present++;
      } else {
        // retry (a lost race, a stale leaf that a zap will remove, a FROZEN entry: the lock
        // must be dropped for it to resolve) or out_of_memory (the cache ran dry): the outer
        // loop takes a new snapshot and tops the cache up, then goes on from this gfn.
        r.status = o;
        break;
      }
      g = spte::align_down(g, goal) + spte::pages_per_entry(goal);
      r.next = g < end ? g : end;
    }
    if (r.status == FaultOutcome::out_of_memory) {
      if (dry) break;                   // nothing to top up with: the caller may reclaim
      r.status = FaultOutcome::fixed;  // the cache ran dry inside the batch: top up, go on
    }
  }
  return r;
}

// MMU lock: shared, inside the epoch section of the fault that just installed the leaf of
// `level` (4 KiB or 2 MiB) for `gfn` into `table` (the table at that level the walk holds). The
// neighbours are the entries of the aligned window of the next power of two >= around + 1
// entries around `gfn`'s (inside the table, since around < 512), whose whole frame lies inside
// the slot; entries that hold anything (a leaf, a table, FROZEN, an MMIO marker, a dead table's
// link) are left alone, only empty ones are filled, with a CAS: a racing fault, zap or table
// removal wins. A 2 MiB neighbour needs no more than the fault's own checks: its frame is in
// the slot, and its host frame is aligned as the fault's is (they differ by whole 2 MiB steps;
// goal_level() found the fault's aligned), so the same level is right for it. The per-VM
// maximum level was applied to the fault's level already.
//
// Why the slot snapshot is good for the neighbours too: the fault checked, under this lock
// hold, that the sequence did not move since its lookup and that no invalidation in flight
// covers `gfn`; every change of the slot invalidates the slot's whole range, which contains
// `gfn`. Invalidations that cover only a neighbour (a range zap by some later user of
// invalidate_begin()) are checked here, against the window.
unsigned Mmu::fault_around_locked(unsigned cpu, spte_t* table, gfn_t gfn, const SlotView& slot,
                                  unsigned around, int level) {
  mmu_lock_.assert_held_shared(cpu);
  if (!fault_around_allowed(slot)) return 0;
  const uint64_t span = spte::pages_per_entry(level);  // gfns per entry
  const uint64_t window = pow2_at_least(uint64_t{around} + 1) * span;
  const gfn_t slot_end = slot.base_gfn + slot.npages;
  gfn_t first = gfn & ~(window - 1);
  gfn_t last = first + window;  // exclusive
  // Whole frames inside the slot only (a 4 KiB frame is inside when its gfn is).
  if (first < slot.base_gfn) first = spte::align_down(slot.base_gfn + span - 1, level);
  if (last > slot_end) last = spte::align_down(slot_end, level);
  if (first >= last) return 0;
  // Stable under the lock held shared (written only under it exclusively).
  if (invalidate_in_progress_ != 0 && first < invalidate_end_ && invalidate_start_ < last) return 0;
  const gfn_t own = spte::align_down(gfn, level);
  unsigned installed = 0;
  for (gfn_t n = first; n < last && installed < around; n += span) {
    if (n == own) continue;
    spte_t* const sptep = table + spte::index_of(n, level);
    spte_t expected = 0;
    if (spte_read(sptep) != 0) continue;  // cheap test before the locked instruction
    const hpa_t hpa = slot.backing_hpa + ((n - slot.base_gfn) << kPageShift);
    // The same encoding as the fault's own leaf: the slot's permissions (no W in a read-only
    // slot), no Accessed bit (aging sees a neighbour as young only once the guest used it).
    const spte_t leaf = spte::make_leaf(hpa, level, spte::kAccRead | spte::kAccWrite | spte::kAccExec,
                                        !slot.read_only);
    // Release (spte_ops.h): nothing to publish beyond the entry itself; the CAS fails on
    // FROZEN/dead markers written by a CPU that is removing this table.
    if (spte_cmpxchg(sptep, expected, leaf, level)) installed++;
  }
  if (installed != 0) {
    count(cpu, kHotLeaves + static_cast<unsigned>(level), installed);
    count(cpu, kHotFaultAroundLeaves, installed);
  }
  return installed;
}

}  // namespace mmu
