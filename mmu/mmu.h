// Mmu: the per-VM TDP MMU facade. One instance per VM; its vCPUs each own a VcpuMmu.
//
// Locking contract (rule 2: stated per path, asserted at the top of each function):
//   map (fault)            MMU lock shared; SPTEs changed with CAS; FROZEN marks an entry that
//                          one CPU is replacing.
//   split_huge_pages       MMU lock shared (CAS); dropped and retaken at yield points, and the
//                          epoch section is left at each of them.
//   zap_range              MMU lock exclusive, dropped and retaken at yield points.
//   teardown step          MMU lock shared for one bounded step (no yield inside a step),
//                          after one empty exclusive section per root (the teardown fence),
//                          so faults on the valid root run beside it (teardown.cpp).
//   age_range, count       no MMU lock: lockless, inside epoch read sections of bounded length
//                          (one per root at least, left every few hundred entries).
//   roots                  their own lock + epoch (root.h), whatever the caller holds.
//   root walks             RootWalk (root.h) asserts the mode before every root:
//                          roots_exclusive() for zaps, roots_lockless() for readers,
//                          roots_lockless_yield_safe() for readers with their own sections.
// Lock order (docs/mmu.md §8): memslot update lock -> MMU lock -> each of the root list lock,
// a deferred queue lock, the pending-dead lock, the limbo lock and the epoch's own locks. The
// root list lock and a queue lock are never held together; nothing is taken under the
// pending-dead or limbo lock.
// No CPU waits for the MMU lock inside an epoch read section (faults take the lock first, then
// enter their section), so synchronize() may be called with the MMU lock held.
//
// Reclamation order for page-table pages (docs/mmu.md §7): unlink (under the lock), flush the
// TLBs that may cache them (Platform::flush_remote_tlbs), then retire through the epoch; the page
// is freed only after the grace period that follows.
//
// TLB flushes by generation (zap.cpp has the details and the barrier pairings): whoever unlinks
// leaves or tables and drops the MMU lock before flushing records an "unlink generation" under
// the lock (note_unlinks()); a flush records the generation it covers. A zap or memslot update
// reads the generation under the lock and, before it returns, makes sure a completed flush
// covers it, flushing itself if needed. So "I zapped nothing" no longer means "no flush
// needed": a delete that finds its leaves already unlinked by a teardown step whose flush is
// still pending waits for (does) that flush. Teardown batches: its dead tables wait in a
// bounded pending list and one flush covers the whole batch (not one per table).
// "Rule N": the five design rules of the MMU, docs/mmu.md §10.
#pragma once

#include "mmu/atomic.h"
#include "mmu/dirty_log.h"
#include "mmu/dirty_ring.h"
#include "mmu/epoch.h"
#include "mmu/lock.h"
#include "mmu/memslot.h"
#include "mmu/page_account.h"
#include "mmu/page_cache.h"
#include "mmu/percpu_counters.h"
#include "mmu/percpu_rwlock.h"
#include "mmu/platform.h"
#include "mmu/root.h"
#include "mmu/spte.h"

namespace mmu {

enum class FaultOutcome : uint8_t {
  fixed,            // a leaf was installed (or split) and the access will now succeed
  spurious,         // the access is already allowed (another vCPU fixed it first)
  retry,            // lost a race (CAS, FROZEN entry, memslot change in flight, stale root)
  unbacked,         // no memslot: the VM layer emulates the access (MMIO)
  write_protected,  // a write to a read-only memslot: the VM layer decides (emulate, inject)
  bad_gfn,          // beyond the guest's physical address width
  out_of_memory,    // no page for a table: nothing was changed, the VM layer may reclaim/retry
  kCount
};
const char* to_string(FaultOutcome o);

struct MmuConfig {
  uint64_t tlb_tag = 0;          // passed to Platform::flush_remote_tlbs (the VM's id)
  int root_level = 4;            // 4 or 5 (EPT page-walk length)
  int max_level = 3;             // largest mapping: 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB
  unsigned guest_phys_bits = 46;  // guest MAXPHYADDR: larger gfns are bad_gfn
  unsigned address_spaces = 2;
  // Most pages the MMU may hold for its EPT at once (roots, their objects, paging structures,
  // the vCPUs' page caches; see mmu/page_account.h); 0: no limit. A page beyond it is refused
  // exactly like a failed Platform::alloc_page(): the fault reports out_of_memory, nothing
  // changed. Pages come back to the count when they are finally freed (after the epoch).
  uint64_t max_table_pages = 0;
  // Fast-zap backpressure (invalidate_all_roots): at most this many invalidations may still
  // have teardown outstanding when a fast zap returns; older ones are finished by the caller.
  // 0: none (old trees wait for deferred work alone; tests use it to build up invalid roots).
  static constexpr uint64_t kDefaultTeardownBacklog = 2;
  uint64_t max_teardown_backlog = kDefaultTeardownBacklog;
  // Fault-around (prefault.cpp): a fault that installs a 4 KiB or 2 MiB leaf also installs up
  // to this many neighbouring leaves of the same size and slot, in the same table, where nothing
  // is mapped yet. 0: off, the portable core's default (the host tests see exactly one leaf
  // per fault unless they ask); hv sets its per-VM default, chosen by measurement, from
  // hv.fault-around=N (hv/cmdline.h). At most kMaxFaultAround.
  static constexpr unsigned kMaxFaultAround = spte::kEntriesPerTable - 1;
  unsigned fault_around = 0;
  // The EPTP enables accessed/dirty flags (EPTP bit 6): the CPU sets D in a leaf it writes
  // through. Required by DirtyMode::dirty_bit and ::pml (else MemslotError::unsupported).
  bool ept_ad = false;
  // The mechanism of a slot created with Memslot::kDirtyLog through update_memslot().
  DirtyMode dirty_mode = DirtyMode::write_protect;
};

// What one Mmu::prefault() call did. Resume with a new call from `next` until it equals the end.
struct PrefaultResult {
  gfn_t next = 0;  // the first gfn not done yet (the range's end when everything is done)
  // fixed: no obstacle (done, or the budget ran out); retry: stopped by a race that the caller
  // resolves by calling again (the vCPU's root was invalidated: vcpu_load_root() first; a
  // memslot change in flight); out_of_memory: no page for a table (Mmu::reclaim() may help);
  // bad_gfn: the range is empty-inverted or reaches beyond the guest's physical width (nothing
  // was done).
  FaultOutcome status = FaultOutcome::fixed;
  uint64_t installed = 0;  // leaves this call installed (a huge leaf counts once)
  uint64_t present = 0;    // leaves found already mapped
  unsigned units = 0;      // work done, at most the budget (see Mmu::prefault)
};

// What a memslot means to the fault path (a copy, so it can be used after the epoch section).
struct SlotView {
  uint32_t slot_id = 0;
  unsigned as_id = 0;
  gfn_t base_gfn = 0;
  uint64_t npages = 0;
  hpa_t backing_hpa = 0;
  int max_level = 1;
  bool read_only = false;
  // Dirty logging (dirty_log.cpp): the slot's log, nullptr when not logged. Only valid under
  // the MMU lock taken after the lookup with the invalidation sequence checked (a stop frees it
  // after an invalidation of the slot's range, which makes such a fault retry).
  DirtyLog* dirty_log = nullptr;
  bool dirty_wp = false;  // dirty_log with DirtyMode::write_protect
};

// The MMU state of one vCPU. Owned and used by that vCPU only.
class VcpuMmu {
 public:
  VcpuMmu() = default;
  VcpuMmu(const VcpuMmu&) = delete;
  VcpuMmu& operator=(const VcpuMmu&) = delete;
  Root* root() const { return root_; }
  // The vCPU's dirty ring (mmu/dirty_ring.h), or nullptr: the write-protection fault path of
  // this vCPU pushes (slot, offset) for each page it makes writable in a logged slot. The
  // vCPU's own thread is the ring's producer. Set while the vCPU does not fault.
  void set_dirty_ring(DirtyRing* ring) { dirty_ring_ = ring; }
  DirtyRing* dirty_ring() const { return dirty_ring_; }

 private:
  friend class Mmu;
  DirtyRing* dirty_ring_ = nullptr;
  // The slot of the vCPU's last fault lookup and the memslot generation it was copied under
  // (0: none; published sets start at 1). Mmu::lookup_slot_vcpu.
  SlotView last_slot_;
  uint64_t last_slot_generation_ = 0;
  unsigned as_id_ = 0;
  Root* root_ = nullptr;
  uint64_t root_generation_ = 0;
  PageCache cache_;
};

struct MmuStats {
  uint64_t leaves[4] = {};  // mapped leaves by level (index 1..3)
  uint64_t tables_live = 0;  // paging structures below the roots, linked in a tree
  // Pages charged to the MMU's PageAccount: allocated and not yet freed, wherever they are
  // (in a tree, in a page cache, waiting for the epoch or in limbo). The limit applies to it.
  uint64_t table_pages_live = 0;
  uint64_t table_pages_limit = 0;    // MmuConfig::max_table_pages
  uint64_t table_pages_refused = 0;  // allocations refused because of the limit
  uint64_t zapped_leaves = 0;
  uint64_t zap_calls = 0;
  uint64_t flushes = 0;
  uint64_t roots_live = 0;
  uint64_t roots_invalid = 0;
  uint64_t pages_awaiting_reclaim = 0;
  uint64_t splits = 0;        // huge leaves split, by faults and by split_huge_pages
  uint64_t eager_splits = 0;  // of which by split_huge_pages
  uint64_t split_yields = 0;  // times split_huge_pages dropped the MMU lock at a yield point
  uint64_t huge_replacements = 0;
  uint64_t teardown_steps = 0;
  uint64_t teardowns_queued = 0;
  // Teardown steps a CPU ran from another CPU's queue (run_deferred_work() helping a large
  // backlog, reclaim(), wait_for_teardown()).
  uint64_t teardown_steps_helped = 0;
  uint64_t dead_tables_pending = 0;  // unlinked, waiting for the flush of their batch
  uint64_t flushes_avoided = 0;      // zaps/teardowns whose unlinks an earlier flush covered
  uint64_t reclaim_calls = 0;
  uint64_t reclaim_pages = 0;        // ReclaimResult::pages_freed, summed
  uint64_t faults[static_cast<int>(FaultOutcome::kCount)] = {};
  uint64_t prefault_leaves = 0;      // leaves installed by prefault()
  uint64_t fault_around_leaves = 0;  // leaves (4 KiB or 2 MiB) installed next to a fault (fault-around)
};

// What Mmu::reclaim() did.
struct ReclaimResult {
  // Teardown units run (SPTEs visited, a removed table counting its 512 entries), as
  // run_deferred_work() counts them: at most the budget plus Mmu::kTeardownOvershoot.
  unsigned units = 0;
  // Pages credited back to this MMU's account (MmuConfig::max_table_pages) while the call ran:
  // freed by this call's epoch poll, or by other CPUs meanwhile. Room for a retry, if > 0.
  uint64_t pages_freed = 0;
};

class Mmu {
 public:
  Mmu(Platform& platform, Epoch& epoch, Memslots& memslots, const MmuConfig& config);
  // All vCPUs must have been released (vcpu_release). Tears down every root, waits for the
  // reclamation of everything, and leaves no page allocated.
  ~Mmu();
  Mmu(const Mmu&) = delete;
  Mmu& operator=(const Mmu&) = delete;

  // --- vCPU side ---
  void vcpu_init(VcpuMmu& v, unsigned as_id);
  // Before every VM entry: make sure the vCPU has a valid root of its role (a fast zap or a
  // role change makes it load a fresh one). Returns the root table's address (for the EPTP),
  // or 0 when no root could be allocated (the VM layer reports out of memory).
  hpa_t vcpu_load_root(VcpuMmu& v);
  // Whether vcpu_load_root() would hand back the root the vCPU holds, without looking for
  // one: a fast re-entry (hv/fast_entry.h) asks this instead. Acquire on `invalid`, as there.
  bool vcpu_root_current(const VcpuMmu& v) const {
    const Root* r = v.root_;
    return r && v.root_generation_ == roots_.generation() && !r->invalid.load(Order::acquire);
  }
  // Switch the vCPU to another address space (e.g. entering/leaving an SMM-like view).
  void vcpu_set_address_space(VcpuMmu& v, unsigned as_id);
  void vcpu_release(VcpuMmu& v);

  // The EPT violation handler: make `gfn` accessible for `access` (spte::Access bits).
  FaultOutcome map(VcpuMmu& v, gfn_t gfn, unsigned access) EXCLUDES(mmu_lock_);
  // Pre-fault (as KVM_PRE_FAULT_MEMORY; prefault.cpp): map [start, end) of the vCPU's address
  // space in its root now, each part at the largest level its memslot and the per-VM maximum
  // allow (a leaf may reach beyond the range, as a fault's would), read-only slots read-only,
  // gfns without a slot skipped. Under the same invalidation rules as map(): a racing zap or
  // memslot change wins (the affected part is retried or left unmapped, never mapped stale).
  // Bounded: at most `budget` units (one per leaf walked, per hole skipped, per lost race), and
  // the MMU lock is held for at most kPrefaultBatch of them at a time. Never changes an
  // existing leaf's permissions (a write-protected leaf stays so).
  static constexpr unsigned kPrefaultBatch = 32;
  PrefaultResult prefault(VcpuMmu& v, gfn_t start, gfn_t end, unsigned budget) EXCLUDES(mmu_lock_);

  // --- Invalidation ---
  // Zap the leaves of [start, end) in every root of `as_id`, flush, and return. Huge leaves that
  // straddle the range are zapped whole (rule 4). Used by memslot updates; public for tests.
  void zap_range(unsigned as_id, gfn_t start, gfn_t end) EXCLUDES(mmu_lock_);
  // Split the huge leaves of [start, end) in the vCPU's root down to `level` (same mappings, no
  // flush needed). False if memory ran out (what was split stays split). Takes the MMU lock
  // shared; yields it (and the epoch section) at bounded intervals, so a long range never holds
  // off writers or grace periods (see fault.cpp). Stops early, returning true, if the root is
  // invalidated meanwhile: its teardown removes every leaf, and the next root is faulted in at
  // the current per-VM maximum.
  bool split_huge_pages(VcpuMmu& v, gfn_t start, gfn_t end, int level) EXCLUDES(mmu_lock_);
  // Fast zap: invalidate every root; their teardown goes to this CPU's deferred work. Returns a
  // ticket for wait_for_teardown(). Backpressure: if teardown of invalidations older than the
  // last MmuConfig::max_teardown_backlog is still outstanding, this call finishes it first
  // (bounded steps, on this CPU), so the trees of invalid roots a VM holds at once stay
  // bounded however fast a vCPU zaps.
  static constexpr unsigned kBackpressurePollBudget = 512;  // epoch work after such a wait
  uint64_t invalidate_all_roots();
  // Run deferred teardown (this CPU's queue, then helping every other CPU's) until every root
  // invalidated up to `ticket` is zapped and a flush covers it. It does not poll the epoch:
  // the tables are retired, and freed after their grace period as usual.
  void wait_for_teardown(uint64_t ticket);
  // What one teardown step may do beyond the budget it was given: a step always makes
  // progress, and its last piece of work may be a whole table (its 512 entries plus the entry
  // that linked it) reached through the few entries of the path from the root.
  static constexpr unsigned kTeardownOvershoot =
      spte::kEntriesPerTable + static_cast<unsigned>(spte::kMaxLevels);
  // At safe points (before VM entry, idle): run deferred teardown, then poll the epoch. Works
  // on this CPU's queue first; when the teardown pending on other CPUs' queues of this MMU is
  // large (teardown_backlog_large()), helps them too, within the same budget. Returns the
  // units done (SPTEs visited, a removed table counting its entries): at most
  // budget + kTeardownOvershoot, and 0 when there was no teardown work.
  unsigned run_deferred_work(unsigned budget);
  // Whether run_deferred_work on `cpu` (the caller's, of `cpu_count`) would find nothing: no
  // teardown queued anywhere, nothing in limbo, nothing for the epoch. Relaxed loads of lines
  // that change rarely, inline (no call through the Platform): the idle safe point before
  // every VM entry asks this first. A hint, as run_deferred_work's own checks are.
  bool deferred_work_idle_hint(unsigned cpu, unsigned cpu_count) const {
    return teardowns_outstanding_.load(Order::relaxed) == 0 && stats_.limbo_pages.load(Order::relaxed) == 0 &&
           epoch_.poll_idle_hint(cpu, cpu_count);
  }
  // The same without the look at offline CPUs' callbacks (which idle CPUs help with anyway):
  // what the exit fast path asks at every quiet exit (hv/fast_entry.h).
  bool deferred_work_idle_hint_local(unsigned cpu) const {
    return teardowns_outstanding_.load(Order::relaxed) == 0 && stats_.limbo_pages.load(Order::relaxed) == 0 &&
           epoch_.cpu_idle_hint(cpu);
  }
  // For a vCPU whose fault (or root load) failed with out_of_memory because of the page limit
  // (MmuConfig::max_table_pages), before it retries: run teardown steps from any CPU's queue
  // (own first) within `budget`, hand the dead tables waiting for a flush to the epoch (one
  // flush), and poll the epoch so that retired pages come back to the account. Bounded like
  // run_deferred_work(). A result with pages_freed == 0 and units == 0 means nothing could be
  // reclaimed now: the VM really holds its limit's worth of pages.
  ReclaimResult reclaim(unsigned budget);
  // Set the per-VM largest mapping level (1..3) used by future faults.
  void set_max_level(int level) { max_level_.store(level, Order::relaxed); }

  // --- Memslot updates (see memslot_update.cpp) ---
  // Apply `op` (create, remove, move, set_flags) to the VM's memslots. On success the change is
  // complete when this returns: the new set is published, no leaf of an old range is left in
  // any root of the address space, and the TLB flush covering them is done; the old set is
  // retired through the epoch. On error nothing changed.
  MemslotError update_memslot(const MemslotOp& op) EXCLUDES(mmu_lock_);
  Memslots& memslots() { return memslots_; }

  // --- Dirty logging (dirty_log.cpp; docs/mmu.md §11) ---
  // Start logging memslot `slot_id` of address space `as_id` with `mode`: every page counts as
  // dirty at the start (the first harvest returns all of them), the slot's huge leaves in `v`'s
  // root are split to 4 KiB (bounded, resumable steps: split_huge_pages), no huge leaf is
  // installed in the slot while it is logged, and from then on every guest write to the slot is
  // reported by a harvest. `v`: the calling vCPU (its page cache feeds the split; a vCPU of
  // another address space, or without a root, skips the eager split, which only costs faults).
  // Errors: no_such_slot, bad_address_space, read_only_slot, already_logging, too_large (more
  // than DirtyLog::kMaxPages), unsupported (dirty_bit/pml without MmuConfig::ept_ad),
  // out_of_memory. On error nothing changed.
  MemslotError dirty_log_start(VcpuMmu& v, unsigned as_id, unsigned slot_id, DirtyMode mode)
      EXCLUDES(mmu_lock_);
  // Stop logging: the log is dropped (bits not harvested are lost: harvest first), the slot's
  // leaves are zapped so that faults rebuild them with W and as huge as the slot allows.
  // Errors: no_such_slot, bad_address_space, not_logging.
  MemslotError dirty_log_stop(VcpuMmu& v, unsigned as_id, unsigned slot_id) EXCLUDES(mmu_lock_);
  // Get-and-clear: ORs the slot's dirty pages since the previous harvest (or the start) into
  // `bitmap` (bit i of word i/64 = page i of the slot) and returns in *pages_out how many bits
  // it took. With vCPUs running, every guest write to the slot is reported by the harvest
  // during which it happens or by a later one (never lost): the TLB flush and, for pml, the
  // drain of every vCPU's log are done inside (the argument is in dirty_log.cpp).
  // Errors: no_such_slot, bad_address_space, not_logging, buffer_too_small (`words` <
  // dirty_log_words()); then nothing is cleared. `v` is not used by every mechanism.
  MemslotError dirty_log_harvest(VcpuMmu& v, unsigned as_id, unsigned slot_id, uint64_t* bitmap,
                                 size_t words, uint64_t* pages_out) EXCLUDES(mmu_lock_);
  // Words a harvest of a slot of `npages` pages needs.
  static size_t dirty_log_words(uint64_t npages) { return static_cast<size_t>((npages + 63) / 64); }
  // PML: the VMX layer reports a GPA from a vCPU's log (on a log-full exit and on a drain).
  // A GPA outside every logged slot of `as_id` is ignored (the log may hold stale entries).
  // Lock-free (an epoch read section); callable from any context the fault path may run in.
  // With `ring`: also push (slot, offset) to it when the page is in a logged slot (the caller is
  // the ring's producer).
  void dirty_log_mark_gpa(gpa_t gpa, unsigned as_id = 0, DirtyRing* ring = nullptr);
  // Logged slots whose mechanism uses D bits (for the zap and teardown hooks, and tests).
  uint64_t dirty_log_d_slots() const { return dirty_d_slots_.load(Order::relaxed); }

  // Invalidation sequence (KVM's mmu_invalidate_seq): a fault that raced with an update retries.
  uint64_t invalidate_seq() const { return invalidate_seq_.load(Order::acquire); }
  void invalidate_begin(unsigned as_id, gfn_t start, gfn_t end) EXCLUDES(mmu_lock_);
  void invalidate_end() EXCLUDES(mmu_lock_);

  // --- Aging and inspection ---
  // Test-and-clear Accessed on the leaves of [start, end) in every root of `as_id`; returns how
  // many were young. Lockless; epoch read sections of bounded length, none across roots (rule 1).
  uint64_t age_range(unsigned as_id, gfn_t start, gfn_t end);
  // Leaves currently mapped per level (index 1..3) in the roots of `as_id`, counted by a walk
  // (for tests and diagnostics). Lockless; its epoch sections are bounded (a yield point between
  // roots and every few hundred entries inside a root, see age.cpp), but the whole walk takes
  // time proportional to every root's size, invalid roots included. Callers that must be cheap
  // (a hypercall) read stats().leaves: counters over all address spaces, exact at quiescent
  // points (no MMU operation in flight), where they equal the sum of count_leaves() over the
  // address spaces - except while a root whose last reference was dropped (not by a fast zap)
  // waits for its teardown: Roots::next() no longer hands it out, so the walk misses what it
  // still maps until the teardown has run.
  void count_leaves(unsigned as_id, uint64_t out[4]);
  // The leaf mapping `gfn` in `root` (value and level), or false. Lockless (epoch).
  bool lookup(Root* root, gfn_t gfn, spte_t* leaf, int* level);

  MmuStats stats();
  Roots& roots() { return roots_; }
  // Walks over the roots of `as_id` (Roots::kAnyAs: all), for range-for; see RootWalk.
  // For zaps: the MMU lock held exclusively (asserted before each root).
  RootWalk roots_exclusive(unsigned as_id) REQUIRES(mmu_lock_) {
    return RootWalk::exclusive(roots_, as_id, mmu_lock_);
  }
  // For lockless readers: one epoch read section per root (rule 1), none across roots.
  RootWalk roots_lockless(unsigned as_id) { return RootWalk::epoch_per_root(roots_, as_id, epoch_); }
  // For lockless readers that keep their sections short themselves (several per root, each a
  // bounded number of entries; age.cpp): the walk holds none and asserts none is left open.
  RootWalk roots_lockless_yield_safe(unsigned as_id) { return RootWalk::body_sections(roots_, as_id, epoch_); }
  Platform& platform() { return platform_; }
  Epoch& epoch() { return epoch_; }
  const MmuConfig& config() const { return config_; }
  PerCpuRwLock& lock() RETURN_CAPABILITY(mmu_lock_) { return mmu_lock_; }
  // The MMU lock held shared by the current CPU, or exclusively (a writer holds everything a
  // reader holds). For the top of functions that need the lock in either mode.
  void assert_lock_held_shared() ASSERT_SHARED_CAPABILITY(mmu_lock_) {
    mmu_lock_.assert_held_shared(platform_.cpu_id());
  }

 private:
  struct alignas(64) DeferredQueue {
    SpinLock lock;
    Root* head GUARDED_BY(lock) = nullptr;
    Root* tail GUARDED_BY(lock) = nullptr;
    // Roots in the queue (not counting one popped while a CPU runs its step). Written under
    // `lock`; read without it by CPUs deciding whether to help (a hint, relaxed).
    Atomic<uint32_t> length{0};
  };
  // A chain of dead tables linked through their entry 0 (spte::make_dead_link).
  struct DeadTables {
    hpa_t head = 0;
    hpa_t tail = 0;
    uint64_t count = 0;
    uint64_t leaves[4] = {};  // leaves that were still mapped in them (not yet uncounted)
  };
  // Most dead tables kept waiting for a batched flush (per MMU): 512 KiB. With a page limit,
  // a sixteenth of it (at least 1), since waiting tables still count against the limit.
  static constexpr uint64_t kMaxPendingDead = 128;

  // fault.cpp
  bool lookup_slot(unsigned as_id, gfn_t gfn, SlotView* out);
  // The same for a vCPU's fault, from the slot the vCPU found last when it still applies (as
  // KVM's last_used_slot): same address space, the gfn inside it, and no set published since.
  // The hit is inline (every fault asks); the miss looks the set up and keeps the copy.
  bool lookup_slot_vcpu(VcpuMmu& v, gfn_t gfn, SlotView* out) {
    // The generation first: the lookup then sees its set or a later one. A copy kept under a
    // generation older than the set it came from only ever misses (a later generation never
    // equals it), so the cache can be stale only in the safe direction.
    const uint64_t gen = memslots_.generation(v.as_id_);
    const SlotView& last = v.last_slot_;
    if (gen != 0 && v.last_slot_generation_ == gen && last.as_id == v.as_id_ && gfn - last.base_gfn < last.npages) {
      *out = last;
      return true;
    }
    return lookup_slot_vcpu_miss(v, gfn, gen, out);
  }
  bool lookup_slot_vcpu_miss(VcpuMmu& v, gfn_t gfn, uint64_t gen, SlotView* out);
  int goal_level(const SlotView& slot, gfn_t gfn) const;
  // `around`: fault-around, neighbours to install next to a new 4 KiB leaf (map() passes
  // MmuConfig::fault_around, pre-fault 0).
  FaultOutcome map_locked(VcpuMmu& v, unsigned cpu, gfn_t gfn, unsigned access,
                          const SlotView& slot, int goal, unsigned around = 0) REQUIRES_SHARED(mmu_lock_);
  bool invalidate_retry(unsigned cpu, uint64_t seq, gfn_t start, gfn_t end) REQUIRES_SHARED(mmu_lock_);
  // `gfn`: the first page the huge leaf maps (a D it carries is reported to a logged slot).
  FaultOutcome split_huge_leaf_atomic(VcpuMmu& v, spte_t* sptep, spte_t old, int level, gfn_t gfn)
      REQUIRES_SHARED(mmu_lock_);
  FaultOutcome replace_table_with_leaf_atomic(VcpuMmu& v, spte_t* sptep, spte_t old, int level,
                                              spte_t leaf) REQUIRES_SHARED(mmu_lock_);
  gfn_t split_huge_leafs_yield_safe(VcpuMmu& v, unsigned cpu, Root* root, gfn_t start, gfn_t end,
                                    int level) REQUIRES_SHARED(mmu_lock_);
  // What a fault needs of a memslot, copied inside the epoch section that found it (every
  // lookup goes through here, so a new field reaches faults and pre-faults alike).
  static void view_of(const Memslot& s, SlotView* out);
  // prefault.cpp
  // The slot containing `gfn`, else the first slot above it; false if there is neither.
  bool lookup_slot_from(unsigned as_id, gfn_t gfn, SlotView* out);
  // Install up to `around` leaves of `level` (1: 4 KiB, 2: 2 MiB) next to the one just
  // installed for `gfn` in `table`, the table at that level that holds it; returns how many.
  unsigned fault_around_locked(unsigned cpu, spte_t* table, gfn_t gfn, const SlotView& slot,
                               unsigned around, int level) REQUIRES_SHARED(mmu_lock_);
  // dirty_log.cpp
  // Clear `bits` (W, or D) in every leaf of [start, end) in every root of `as_id`; leaves whose
  // D was set mark `log` (when D is cleared) if their level is at least `mark_min_level` (pml:
  // 2, the 4 KiB leaves' D bits are reported by the CPU's log instead). MMU lock exclusive,
  // yielding like a zap.
  void dirty_log_protect(unsigned as_id, gfn_t start, gfn_t end, spte_t bits, DirtyLog* log,
                         gfn_t log_base, int mark_min_level = 1) EXCLUDES(mmu_lock_);
  void dirty_log_protect_root_yield_safe(Root* root, gfn_t start, gfn_t end, spte_t bits,
                                         DirtyLog* log, gfn_t log_base, int mark_min_level)
      REQUIRES(mmu_lock_);
  // A leaf with D set left the tree (zap): report it to its slot's log if that slot is logged.
  void dirty_log_dropped(unsigned as_id, gfn_t gfn, int level);
  // A root's teardown finished: what its leaves' D bits said is gone, so every D-logged slot
  // of the address space counts as wholly dirty (teardown.cpp).
  void dirty_log_root_gone(unsigned as_id);
  // age.cpp
  void count_root_leaves(Root* root, uint64_t out[4]);
  // zap.cpp
  void zap_leafs_yield_safe(Root* root, gfn_t start, gfn_t end) REQUIRES(mmu_lock_);
  // Returns the entries visited (512 per table, with the tables below). The MMU lock held
  // shared at least, and no other software writer in the subtree: a teardown step of a fenced
  // root (teardown.cpp).
  unsigned collect_dead_table(hpa_t table, int level, DeadTables& dead) REQUIRES_SHARED(mmu_lock_);
  void collect_dead_table_atomic(hpa_t table, int level, DeadTables& dead)
      REQUIRES_SHARED(mmu_lock_);
  void push_dead(hpa_t table, DeadTables& dead);
  void retire_dead(DeadTables& dead);  // after the flush that covers them
  // Flush every TLB of this MMU and record the unlink generation the flush covers.
  void flush();
  // Record that leaves or tables were unlinked and are not flushed yet; called under the MMU
  // lock before it is dropped. Returns the generation to pass to flush_covering().
  uint64_t note_unlinks() REQUIRES_SHARED(mmu_lock_);
  // The unlink generation now: under the MMU lock it covers every unlink made before the
  // caller took the lock.
  uint64_t unlink_generation() REQUIRES_SHARED(mmu_lock_);
  // Make sure a completed flush covers generation `gen` (flush unless one already does).
  void flush_covering(uint64_t gen) EXCLUDES(mmu_lock_);
  // Dead tables unlinked at generation <= `gen`: wait in the pending list for a flush; the
  // list is flushed and retired when it is full. `dead` is emptied.
  void defer_dead(DeadTables& dead, uint64_t gen) EXCLUDES(mmu_lock_);
  // Flush (if needed) and retire every pending dead table.
  void flush_pending() EXCLUDES(mmu_lock_);
  // Retire the pending dead tables if a completed flush already covers them (never flushes).
  void retire_pending_if_flushed() EXCLUDES(mmu_lock_);
  // teardown.cpp
  static void schedule_teardown_cb(void* ctx, Root* root);
  void schedule_teardown(Root* root);
  Root* pop_deferred(unsigned cpu);
  void push_deferred_front(unsigned cpu, Root* root);
  // Once per root, before its first step: one empty exclusive section, after which no CPU but
  // the teardown job writes into the (invalid) root's tree in software.
  void teardown_fence(Root* root) EXCLUDES(mmu_lock_);
  // One bounded step, under the MMU lock held shared; true when the root is fully zapped. Adds
  // the units done to `used` and stops once `used` reaches `budget` (after at least one unit
  // of progress).
  bool teardown_step(Root* root, unsigned budget, unsigned& used) EXCLUDES(mmu_lock_);
  // The root's job is done: flush what it unlinked (if no flush covers it yet), report it.
  void finish_teardown(Root* root) EXCLUDES(mmu_lock_);
  void run_queue(unsigned cpu, unsigned budget, unsigned& used) EXCLUDES(mmu_lock_);
  // Other CPUs' queues hold enough teardown that this CPU should help (teardown.cpp).
  bool teardown_backlog_large();
  void retry_limbo();

  // --- Read-mostly: read by every fault, written only by configuration and memslot updates.
  // Kept off the lines that faults or writers write (the lock's own lines, the counters, the
  // page account), so that these lines stay shared in every CPU's cache.
  // (The object is 64-aligned, so these start a line: see check_layout() in mmu.cpp.)
  Platform& platform_;
  Epoch& epoch_;
  Memslots& memslots_;
  const MmuConfig config_;
  gfn_t gfn_limit_;
  Atomic<int> max_level_;
  // Invalidations in flight (memslot updates): faults on gfns in the union [start, end) of
  // their ranges retry (whatever the address space: over-retrying is harmless). Written by
  // invalidate_begin()/_end() under the lock held exclusively; read by faults under it shared.
  uint64_t invalidate_in_progress_ GUARDED_BY(mmu_lock_) = 0;
  gfn_t invalidate_start_ GUARDED_BY(mmu_lock_) = 0;
  gfn_t invalidate_end_ GUARDED_BY(mmu_lock_) = 0;
  Atomic<uint64_t> invalidate_seq_{0};

  // The MMU lock: its writer word and each CPU's reader indicator on lines of their own.
  // Asymmetric fences when the Platform has them (faults fence nothing, writers pay).
  PerCpuRwLock mmu_lock_;

  // Before roots_, which charges its pages to it. Must outlive every page batch of the epoch
  // that names it: ~Mmu ends with Epoch::barrier().
  // Its own line: written (CAS) whenever a vCPU tops up its page cache.
  alignas(64) PageAccount account_;
  Roots roots_;
  DeferredQueue queues_[Platform::kMaxCpus];
  // Roots whose teardown is scheduled and not finished (queued, or popped for a step): the
  // cheap "nothing to help with" test of teardown_backlog_large().
  Atomic<uint64_t> teardowns_outstanding_{0};
  // Dead tables whose retire_page() failed (no memory for the epoch's tracking page).
  SpinLock limbo_lock_;
  DeadTables limbo_ GUARDED_BY(limbo_lock_);

  // TLB flush generations (zap.cpp: the protocol and its barrier pairings).
  Atomic<uint64_t> unlink_gen_{0};   // bumped by note_unlinks(), under the MMU lock
  Atomic<uint64_t> flushed_gen_{0};  // the largest generation a completed flush covers
  // Dead tables unlinked by teardown steps, waiting for one flush that covers them all.
  SpinLock pending_lock_;
  DeadTables pending_ GUARDED_BY(pending_lock_);
  uint64_t pending_gen_ GUARDED_BY(pending_lock_) = 0;  // the newest unlink among them
  uint64_t pending_cap_ = kMaxPendingDead;              // set from the page limit

  // Counters the fault path bumps: per CPU (mmu/percpu_counters.h), summed by stats().
  enum HotCounter : unsigned {
    kHotLeaves = 0,  // + level (1..3): leaves installed (or made by splits) on this CPU
    kHotTablesLive = 4,
    kHotSplits,
    kHotEagerSplits,
    kHotSplitYields,
    kHotHugeReplacements,
    kHotPrefaultLeaves,
    kHotFaultAroundLeaves,
    kHotFaults,  // + FaultOutcome
    kHotCount = kHotFaults + static_cast<unsigned>(FaultOutcome::kCount)
  };
  PerCpuCounters<kHotCount> hot_;
  void count(unsigned cpu, unsigned counter, uint64_t delta = 1) { hot_.add(cpu, counter, delta); }

  // Counters off the fault path (zaps, teardown, flushes: rare, or under the lock held
  // exclusively), each a shared atomic. leaves[] and tables_live here hold only what zaps and
  // teardown took away (wrapping below 0); stats() adds the per-CPU counts of what faults
  // installed. Their own lines, away from the read-mostly fields above.
  struct alignas(64) Counters {
    Atomic<uint64_t> leaves[4];
    Atomic<uint64_t> tables_live{0};
    Atomic<uint64_t> zapped_leaves{0};
    Atomic<uint64_t> zap_calls{0};
    Atomic<uint64_t> flushes{0};
    Atomic<uint64_t> limbo_pages{0};
    Atomic<uint64_t> teardown_steps{0};
    Atomic<uint64_t> teardowns_queued{0};
    Atomic<uint64_t> teardown_steps_helped{0};
    Atomic<uint64_t> dead_tables_pending{0};
    Atomic<uint64_t> flushes_avoided{0};
    Atomic<uint64_t> reclaim_calls{0};
    Atomic<uint64_t> reclaim_pages{0};
  } stats_;
  // Logged slots with a D-bit mechanism (dirty_bit, pml): when 0 the zap and teardown hooks
  // cost one relaxed load. Changed under the memslot update lock.
  Atomic<uint64_t> dirty_d_slots_{0};

  // Layout facts the fault path relies on, as static_asserts (mmu.cpp).
  static void check_layout();
};

}  // namespace mmu
