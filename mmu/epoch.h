// Epoch-based reclamation: the MMU's stand-in for RCU.
//
// Contract
// --------
// * Readers (lockless walkers of EPT tables, aging, memslot lookups) bracket their accesses with
//   read_lock()/read_unlock() (or an EpochReadGuard). The section is cheap: a load of the global
//   epoch, one store and one fence on the current CPU's own slot; no shared cache line is
//   written. Sections nest (only the outermost one publishes anything). They are not reentrant
//   from interrupt or NMI context: don't use them in handlers that can interrupt a section.
//   Every pointer a section dereferences must be loaded inside that section (after its
//   read_lock()): never carry a table pointer from one section into the next (epoch.cpp,
//   condition C3 of the correctness argument).
// * A grace period depends only on read-side sections: an object retired at time t is freed
//   once every CPU that was inside a section at t has left it. A CPU that is not inside a
//   section never holds up a grace period, whether it runs a guest, idles or is offline, and
//   it does not have to report anything for others to make progress.
// * quiescent() is the hook for the kernel's safe points (VM exit/entry boundary, idle): it
//   asserts that no section is open there (a leaked section would stall reclamation forever)
//   and nudges the global epoch forward if this CPU has work waiting for it.
// * set_online(false) marks a CPU that will not call poll() for a while (idle, offline). Other
//   CPUs' poll() then run its ready callbacks for it. It must not be inside a section nor in a
//   callback. Its partly filled page batch is closed then, and pages it retires while offline
//   are closed into a batch of their own at once, so nothing waits for it to poll again.
// * retire(cb) hands an object over for freeing. cb->fn(cb) runs only after a full grace
//   period: every CPU has, since the retire, been outside a read-side section. Objects that a
//   TLB may still reference (page-table pages) must be retired only after the TLB flush that
//   covers them has completed; the MMU orders "unlink, flush, retire".
// * retire_page(hpa) does the same for a bare page (a page-table page): the tracking node is
//   kept in a separate "batch" page, never in the retired page, because lockless walkers may
//   keep reading the retired page until the grace period ends. The CPU's open batch collects
//   pages until it is full or until the global epoch has moved since its first page (checked
//   in poll()): pages retired within one epoch step share one tracking page and one stamp,
//   and closing the batch later than that would only delay their reclamation. Tracking pages
//   are recycled through a small per-CPU free list, so steady-state retiring allocates none.
// * synchronize() waits for one grace period (no reader that could have seen an object unlinked
//   before the call is still running when it returns).
// * barrier() waits until every callback retired before the call has run (on any CPU); it
//   runs ready callbacks of every CPU itself, so it needs no help from the other CPUs.
// * poll(budget) runs ready callbacks of the current CPU, then of CPUs marked offline; the
//   kernel calls it at safe points (before VM entry, in idle). `budget` counts units of work:
//   one per callback, and one per *page* freed from a page batch (a batch frees up to
//   kPagesPerBatch pages, so counting it as one would not bound the pass). A batch larger than
//   what is left of the budget is freed in part; the rest stays first in line for the next
//   poll(). It may also close this CPU's open page batch and try once to advance the epoch.
//
// Rules for callers (each is asserted where it can be):
// * synchronize() and barrier() must not be called inside a read-side section (it would wait
//   for itself) nor from a callback, nor while holding a lock that some CPU may spin on inside
//   a read-side section (that CPU could never leave its section: deadlock).
// * Hence, conversely: no CPU waits for such a lock (the MMU lock above all) inside a
//   read-side section. Put assert_not_in_read_section() before each such acquisition.
// * Callbacks run on whichever CPU runs that list (the owner in poll(), a helper in poll() for
//   an offline CPU, or a barrier() caller), holding only that list's run_lock. They must not
//   block and must not call poll(), synchronize() or barrier(); they may call retire() and
//   retire_page() (which queue on the running CPU's own list).
//
// Algorithm (our own; the classic three-epoch scheme)
// ---------------------------------------------------
// A global epoch counter G. The outermost read_lock() copies G into the CPU's slot (marked
// "active") and fences; read_unlock() clears the slot. An attempt to advance G from g to g+1
// succeeds only if no active slot holds an epoch other than g. A callback is stamped with G
// when it is queued (after the object was unlinked), and is ready when G >= stamp + 2. Why +2
// and why it is correct is written down next to try_advance() in epoch.cpp.
//
// Deferred lists: each CPU queues onto its own FIFO (so stamps are in order and the ready ones
// are a prefix). Two per-CPU locks: `list_lock` guards the list itself and is held only to push
// or pop; `run_lock` is held by whoever runs that CPU's callbacks (the owner in poll(), another
// CPU in poll() if it is offline, or barrier()). Holding run_lock while running is what lets
// barrier() know that callbacks popped by someone else have finished. poll() only try-locks
// run_lock (a barrier in progress is doing the work anyway), so it stays bounded. Lock order:
// run_lock (of any CPU) -> list_lock (of the running CPU, when a callback retires or a page
// batch recycles its tracking page); nothing is taken under a list_lock, at most one run_lock
// is held, and no lock is held while waiting for a grace period, which needs only that
// readers leave their sections. So the scheme cannot deadlock however the CPUs (or host
// threads) come and go, and no CPU has to keep polling for another one's barrier() to finish.
#pragma once

#include "mmu/atomic.h"
#include "mmu/lock.h"
#include "mmu/page_account.h"
#include "mmu/platform.h"
#include "base/thread_safety.h"
#include "mmu/types.h"

namespace mmu {

// An intrusive list node embedded in each retired object. The object's owner sets `fn` (or
// passes it to retire()); `next` and `epoch` belong to the Epoch while the node is queued.
// Where the node may live: anywhere that no lockless reader reads, since retire() writes it
// while readers may still be looking at the object. Page-table pages therefore cannot hold
// their own node (use retire_page()); an immutable object whose readers never read the node's
// bytes (a MemslotSet) can.
struct EpochCallback {
  EpochCallback* next = nullptr;
  void (*fn)(EpochCallback*) = nullptr;
  uint64_t epoch = 0;
};

class Epoch {
 public:
  explicit Epoch(Platform& platform);
  // Runs every pending callback (as barrier()) and gives back the batch pages. No CPU may be
  // inside a read-side section.
  ~Epoch();
  Epoch(const Epoch&) = delete;
  Epoch& operator=(const Epoch&) = delete;

  void read_lock();
  void read_unlock();
  bool in_read_section() const;  // on the current CPU (for assertions)
  // The same for a caller that already knows its CPU id (`cpu` == Platform::cpu_id(); the fault
  // path asks once per fault instead of twice per call).
  // Inline (every fault opens two sections). `cpu` comes from Platform::cpu_id(), which the
  // Platform keeps below cpu_count(), where try_advance() looks (read_lock() checks that).
  void read_lock(unsigned cpu) {
    MMU_ASSERT(cpu < Platform::kMaxCpus);
    CpuState& c = cpus_[cpu];
    const uint32_t depth = c.nesting.load(Order::relaxed);
    MMU_ASSERT(depth < 0x7fffffffu);
    if (depth == 0) {
      // Acquire (condition C1): pairs with the acq_rel CAS in try_advance() that wrote the
      // value we read (step 2 of the argument in epoch.cpp).
      pin(c, global_epoch_.load(Order::acquire));
    }
    c.nesting.store(depth + 1, Order::relaxed);
  }
  void read_unlock(unsigned cpu) {
    MMU_ASSERT(cpu < Platform::kMaxCpus);
    CpuState& c = cpus_[cpu];
    const uint32_t depth = c.nesting.load(Order::relaxed);
    MMU_ASSERT(depth != 0);  // unbalanced read_unlock()
    c.nesting.store(depth - 1, Order::relaxed);
    if (depth == 1) {
      // Release: every read of this section happens before an advancer's acquire load that
      // sees "not reading" (try_advance()), hence before the free (step 5).
      c.reader.store(0, Order::release);
    }
  }
  // A section that fences for itself even with asymmetric fences (mmu/platform.h): for a CPU
  // that a heavy fence may skip because the platform believes it cannot be inside a section
  // (the kernel skips CPUs in guest mode; hv/pml.cpp drains the log while still in it).
  void read_lock_fenced(unsigned cpu) {
    read_lock(cpu);
    atomic_thread_fence(Order::seq_cst);  // the pin (or an outer one) before our loads
  }
  bool in_read_section(unsigned cpu) const {
    MMU_ASSERT(cpu < Platform::kMaxCpus);
    return cpus_[cpu].nesting.load(Order::relaxed) != 0;
  }
  void assert_not_in_read_section(unsigned cpu) const { MMU_ASSERT(!in_read_section(cpu)); }
  // For the rule "never wait for the MMU lock (or any lock whose holder may synchronize())
  // inside a read-side section": call it right before taking such a lock.
  void assert_not_in_read_section() const { MMU_ASSERT(!in_read_section()); }

  // Test hook: an outermost read_lock() whose load of the global epoch returned
  // `observed_epoch` (<= the current epoch) rather than the current value. It sets up exactly
  // the interleaving "the reader loaded G, then G advanced, then the reader pinned its stale
  // G", which real threads produce only rarely and no sanitizer can force. Pair it with
  // read_unlock(). Not for production code.
  void read_lock_pinned_for_test(uint64_t observed_epoch);

  void quiescent();
  // The same for a caller that knows its CPU's index (the vCPU loop, at every exit): no
  // lookup of the CPU, inline.
  void quiescent(unsigned cpu) {
    CpuState& c = cpus_[cpu];
    MMU_ASSERT(c.nesting.load(Order::relaxed) == 0);
    if (advance_wanted(c)) try_advance();
  }
  void set_online(bool online);  // for the current CPU
  bool is_online(unsigned cpu) const;

  // Queue `cb` (with cb->fn set by the caller) on the current CPU's deferred list.
  void retire(EpochCallback* cb);
  void retire(EpochCallback* cb, void (*fn)(EpochCallback*)) {
    cb->fn = fn;
    retire(cb);
  }
  // Free the page `page` (Platform::free_page) after a grace period. Returns false, and keeps
  // nothing, only if no tracking page could be allocated: the Platform is out of memory and
  // this CPU's current batch is full. The caller then still owns the page (keep it and retry
  // later, or synchronize() outside any section and free it directly).
  // With `account`, the page was charged to it (an Mmu's table pages, mmu/page_account.h) and
  // is credited back when it is freed. A batch holds the pages of one account only (its header
  // records it): a page for another account closes the open batch first. The account must
  // outlive the free: its owner runs barrier() before it goes away.
  [[nodiscard]] bool retire_page(hpa_t page, PageAccount* account = nullptr);

  void synchronize();
  void barrier();
  // Bounded work at a safe point. Closes this CPU's open page batch if the epoch has moved
  // since its first page (else tries once to move it, so that the batch gets closed by a later
  // poll() even when nothing else is pending). Then runs ready work of the current CPU, then
  // of offline CPUs, at most `budget` units: a callback is one unit, a page freed from a
  // retire_page() batch is one unit (a batch may be freed in part). Returns the units done.
  // This CPU's own list is skipped if someone else (a barrier(), a helper) is running it.
  unsigned poll(unsigned budget);
  // The part of poll_idle_hint() about `cpu` itself: no callbacks pending, no open page batch.
  bool cpu_idle_hint(unsigned cpu) const {
    const CpuState& me = cpus_[cpu];
    return me.pending.load(Order::relaxed) == 0 && me.open_pages.load(Order::relaxed) == 0;
  }
  // Whether poll() on `cpu` (the caller's) would find nothing to do: nothing queued or open
  // there, and no offline CPU with callbacks to help with. Loads only, inline: a safe point
  // asks before every VM entry. A hint, as poll()'s own first loads are.
  bool poll_idle_hint(unsigned cpu, unsigned cpu_count) const {
    if (!cpu_idle_hint(cpu)) return false;
    for (unsigned i = 0; i < cpu_count; i++) {
      const CpuState& o = cpus_[i];
      if (i != cpu && o.online.load(Order::relaxed) == 0 && o.pending.load(Order::relaxed) != 0) return false;
    }
    return true;
  }

  // Statistics.
  uint64_t current_epoch() const;
  uint64_t pending() const;        // callbacks retired and not yet run, on all CPUs
  uint64_t pending_pages() const;  // pages passed to retire_page() and not yet freed

  Platform& platform() { return platform_; }

  // Number of retired pages one tracking page records (a 56-byte header, then the page
  // addresses; see PageBatch in epoch.cpp).
  static constexpr unsigned kPagesPerBatch = (kPageSize - 56) / sizeof(hpa_t);

 private:
  // Recycled tracking pages kept per CPU (beyond the open batch).
  static constexpr unsigned kSpareBatches = 3;

  struct alignas(64) CpuState {
    // --- Written by the owning CPU on every read-side section; read by try_advance(). ---
    // 0: outside any section; else (epoch << 1) | 1, the epoch the outermost section entered.
    // The shift makes room for the "active" bit 0 (epoch 0 would otherwise look like "not
    // reading"); it leaves 63 bits of epoch, which 2^63 advances would take to exhaust.
    Atomic<uint64_t> reader{0};
    // Depth of nested sections and "running callbacks": touched by the owner only, atomic
    // only so that a misuse (two host threads claiming one CPU id) is a clean assertion.
    Atomic<uint32_t> nesting{0};
    Atomic<uint32_t> in_callbacks{0};
    Atomic<uint32_t> online{1};

    // --- Deferred work (its own cache line: other CPUs touch it in barrier/poll). ---
    alignas(64) SpinLock list_lock;
    EpochCallback* head GUARDED_BY(list_lock) = nullptr;
    EpochCallback* tail GUARDED_BY(list_lock) = nullptr;
    hpa_t open_batch GUARDED_BY(list_lock) = 0;  // retire_page() fills this one
    // The global epoch when the open batch got its first page (poll() closes the batch once
    // the epoch has moved on). Meaningless while the open batch is empty.
    uint64_t open_epoch GUARDED_BY(list_lock) = 0;
    // Recycled tracking pages, ready for use: spare[0 .. spares).
    hpa_t spare[kSpareBatches] GUARDED_BY(list_lock) = {};
    unsigned spares GUARDED_BY(list_lock) = 0;
    SpinLock run_lock;                            // held while running this CPU's callbacks
    Atomic<uint64_t> pending{0};                  // queued or running callbacks
    // The stamp of the newest callback queued here (the list's stamps never decrease): once
    // G >= newest_stamp + 2 every callback of the list is ready, and advancing further would
    // not make any more of them ready. A hint for quiescent() (relaxed), mirrored under
    // list_lock.
    Atomic<uint64_t> newest_stamp{0};
    // Pages in the open batch, mirrored from its count under list_lock so that poll() can
    // see "nothing to do here" without the lock (a hint: poll() runs again soon).
    Atomic<uint32_t> open_pages{0};
  };
  struct PageBatch;

  CpuState& self();
  const CpuState& self() const;
  CpuState& of(unsigned cpu);
  static constexpr uint64_t kReaderActive = 1;  // CpuState::reader: (epoch << 1) | active
  void pin(CpuState& c, uint64_t g) {
    // (g << 1) | 1: see CpuState::reader.
    // Release: pairs with the acquire slot load in try_advance(); it orders our *previous*
    // section's reads before this store, for an advancer that sees this pin rather than the
    // unpin in between (step 5).
    c.reader.store((g << 1) | kReaderActive, Order::release);
    // F_R, the store->load fence: the pin must be visible to an advancer that could let a
    // pointer we load next be freed. Pairs with F_A in try_advance() (step 4: the advancer's
    // slot loads see the pin) and with F_W in stamp() (step 1). A release store alone would let
    // the CPU's store buffer hold the pin while our pointer loads run ahead. With asymmetric
    // fences (mmu/platform.h) this is a compiler barrier and F_A is a heavy fence that makes
    // this CPU fence for us; "Asymmetric fences" in epoch.cpp says why steps 1-4 still hold.
    platform_.asymmetric_fence_light();
  }
  uint64_t stamp();
  bool try_advance();
  // Whether an advance could make one of this CPU's callbacks ready (quiescent()): something
  // is pending and the newest one is not ready yet. Saves an advance attempt (with asymmetric
  // fences, a heavy fence) at every exit while ready callbacks wait for the next poll().
  bool advance_wanted(const CpuState& c) const {
    return c.pending.load(Order::relaxed) != 0 &&
           c.newest_stamp.load(Order::relaxed) + 2 > global_epoch_.load(Order::relaxed);
  }
  bool stale_reader_visible(uint64_t g, unsigned cpu_count) const;
  void enqueue_locked(CpuState& c, EpochCallback* cb) REQUIRES(c.list_lock);
  void seal_batch_locked(CpuState& c) REQUIRES(c.list_lock);
  unsigned poll_own(CpuState& me, unsigned budget);
  unsigned run_ready(CpuState& c, unsigned budget, bool advance) REQUIRES(c.run_lock);
  static uint64_t cost_of(const EpochCallback* cb);
  void free_batch_part(PageBatch* b, uint64_t pages);
  void recycle_tracking_page(hpa_t page);
  static void free_batch(EpochCallback* cb);

  Platform& platform_;
  // Read by every outermost read_lock(): a line of its own, apart from pending_pages_ (written
  // by every retire_page() and free) and the per-CPU states.
  alignas(64) Atomic<uint64_t> global_epoch_{2};
  alignas(64) Atomic<uint64_t> pending_pages_{0};
  CpuState cpus_[Platform::kMaxCpus];
};

class EpochReadGuard {
 public:
  explicit EpochReadGuard(Epoch& e) : e_(e), cpu_(e.platform().cpu_id()) { e_.read_lock(cpu_); }
  EpochReadGuard(Epoch& e, unsigned cpu) : e_(e), cpu_(cpu) { e_.read_lock(cpu_); }
  ~EpochReadGuard() { e_.read_unlock(cpu_); }
  EpochReadGuard(const EpochReadGuard&) = delete;
  EpochReadGuard& operator=(const EpochReadGuard&) = delete;

 private:
  Epoch& e_;
  const unsigned cpu_;
};

}  // namespace mmu
