// EPT roots: one top-level table per (address space, level), shared by the vCPUs whose role
// matches, reference-counted, and never handed out again once invalid.
//
// Protection (rule 2): the root list and the refcount transitions that matter (1 -> 0 and
// "take a reference from the list") are protected by the list's own SpinLock, never by the MMU
// lock, so every function here works whatever the caller holds of the MMU lock (or nothing).
// Root objects are freed through the epoch after they leave the list, so a walker that still
// holds a Root* obtained from the list (with a reference or inside an epoch section) is safe.
//
// Lifecycle of a root:
//   created valid, refcount 1 (the vCPU that asked) -> shared by get() while valid ->
//   invalidated (fast zap) or its last reference dropped -> teardown scheduled exactly once
//   (teardown_scheduled, rule 3: "invalid" alone does not mean "queued") -> the teardown job
//   zaps the whole tree in bounded steps -> when both the job is done and the refcount is 0,
//   the root leaves the list and its top table and object are retired through the epoch.
// "Rule N": the five design rules of the MMU, docs/mmu.md §10.
#pragma once

#include "mmu/atomic.h"
#include "mmu/epoch.h"
#include "mmu/lock.h"
#include "mmu/page_account.h"
#include "mmu/percpu_rwlock.h"
#include "mmu/platform.h"
#include "mmu/spte.h"

namespace mmu {

struct Root {
  hpa_t table_pa = 0;
  spte_t* table = nullptr;
  int level = 4;
  unsigned as_id = 0;

  Atomic<uint32_t> refcount{1};
  Atomic<uint32_t> invalid{0};
  // Set once, by whoever queues the teardown (invalidation or last put); never cleared.
  Atomic<uint32_t> teardown_scheduled{0};
  Atomic<uint32_t> teardown_done{0};
  // The teardown was scheduled by the last put (it holds no reference and frees the root when
  // done) rather than by an invalidation (it holds a reference and drops it when done).
  bool free_when_done = false;
  // Ticket of the invalidation that scheduled the teardown (for waiters).
  uint64_t teardown_ticket = 0;

  // Teardown cursor: touched only by the CPU running the job (the job is popped from its queue
  // while it runs, so one CPU at a time).
  int td_pass = 0;  // index into the pass list (see teardown.cpp)
  gfn_t td_gfn = 0;
  // Unlink generation (Mmu::note_unlinks) of this teardown's latest step that removed
  // anything: the job is reported done only after a flush covers it (teardown.cpp).
  uint64_t td_gen = 0;
  // The teardown fence has run (Mmu::teardown_fence): since then no CPU writes into this
  // tree in software but the teardown job, whose steps therefore need the MMU lock only shared.
  bool td_fenced = false;

  Platform* platform = nullptr;   // for the final free (an epoch callback has no context)
  PageAccount* account = nullptr; // the Mmu's count, credited by the final free
  Root* next = nullptr;           // in the root list (list lock)
  Root* deferred_next = nullptr;  // in a CPU's deferred-teardown queue (queue lock)
  EpochCallback free_cb;          // final free through the epoch
};

class Roots {
 public:
  // Called (with no lock held) when a root needs its teardown queued: `root` had its
  // teardown_scheduled flag set by the caller of this hook's owner.
  using ScheduleFn = void (*)(void* ctx, Root* root);

  // The root tables and Root objects are charged to `account` (the owning Mmu's).
  Roots(Platform& platform, PageAccount& account, Epoch& epoch, ScheduleFn schedule, void* ctx);
  Roots(const Roots&) = delete;
  Roots& operator=(const Roots&) = delete;

  // A valid root of role (as_id, level) with a reference for the caller: an existing one is
  // shared, else a new one is created. nullptr when memory is exhausted.
  Root* get(unsigned as_id, int level) EXCLUDES(lock_);
  // Take one more reference on a root the caller already holds (or found under the lock).
  bool tryget(Root* root);
  void put(Root* root) EXCLUDES(lock_);

  // Yield-safe iteration over the roots of `as_id` (kAnyAs: all): returns the root after
  // `prev` (nullptr: the first) with a reference taken, and drops the reference on `prev`.
  // Roots whose teardown is done are skipped (nothing left to walk).
  static constexpr unsigned kAnyAs = ~0u;
  Root* next(Root* prev, unsigned as_id) EXCLUDES(lock_);

  // Fast zap, first half: mark every root invalid, bump the generation, and for each root whose
  // teardown was not scheduled yet, schedule it (taking the job's reference). Returns the
  // ticket that waiters pass to teardowns_done_up_to().
  uint64_t invalidate_all() EXCLUDES(lock_);
  // True when no root has a teardown scheduled with a ticket <= `ticket` still unfinished.
  bool teardowns_done_up_to(uint64_t ticket) EXCLUDES(lock_);
  // The newest ticket handed out so far (fast zaps and roots whose last reference went): a
  // waiter for "every teardown scheduled before now" passes it to teardowns_done_up_to().
  uint64_t last_ticket() EXCLUDES(lock_);

  // The job finished zapping `root`: drop its reference or free it.
  void teardown_finished(Root* root) EXCLUDES(lock_);

  // Changes whenever roots were invalidated: a vCPU compares it with the value it saw when it
  // loaded its root, before every entry. Acquire pairs with the release in invalidate_all().
  uint64_t generation() const { return generation_.load(Order::acquire); }

  uint64_t live() const { return live_.load(Order::relaxed); }
  uint64_t invalid_count() EXCLUDES(lock_);

 private:
  void free_root(Root* root);  // unlinked already
  static void free_root_cb(EpochCallback* cb);

  Platform& platform_;
  PageAccount& account_;
  Epoch& epoch_;
  ScheduleFn schedule_;
  void* schedule_ctx_;
  SpinLock lock_;
  Root* head_ GUARDED_BY(lock_) = nullptr;
  uint64_t ticket_ GUARDED_BY(lock_) = 0;
  Atomic<uint64_t> generation_{0};
  Atomic<uint64_t> live_{0};
};

// A walk over the roots of one address space (Roots::kAnyAs: all), for range-for:
//
//   for (Root* r : RootWalk::exclusive(roots, as_id, mmu_lock)) { ... }
//
// Each root is held by a reference while the body runs, so the body may drop and retake locks
// (yield) without the root leaving the list; roots whose teardown is done are skipped. The walk
// states which protection it needs and asserts it before every root (rule 2, as the root
// iteration macros of KVM's TDP MMU assert the MMU lock), instead of trusting a flag:
//   exclusive        the caller holds the MMU lock exclusively (zaps); checked again before
//                    each root, so a body that yields must have retaken it.
//   locked           the caller holds the MMU lock in either mode.
//   epoch_per_root   no MMU lock: the walk opens an epoch read section around each root and
//                    closes it before taking the next one (rule 1: a grace period can end
//                    between two roots). The caller must not be inside a section, which the
//                    walk asserts; pointers into a root's tables must not outlive its turn.
//   body_sections    no MMU lock, and the walk opens no section: the body opens its own,
//                    several per root if it wants them short (a long walk leaves and re-enters
//                    its section inside a root, restarting from the root: mmu/age.cpp). The
//                    walk asserts before every root that the body left no section open.
// The Mmu wraps these with its own lock and epoch (Mmu::roots_exclusive(), roots_lockless()).
class RootWalk {
 public:
  enum class Mode : uint8_t { exclusive, locked, epoch_per_root, body_sections };

  static RootWalk exclusive(Roots& roots, unsigned as_id, const PerCpuRwLock& lock) {
    return RootWalk(roots, as_id, Mode::exclusive, &lock, nullptr);
  }
  static RootWalk locked(Roots& roots, unsigned as_id, const PerCpuRwLock& lock) {
    return RootWalk(roots, as_id, Mode::locked, &lock, nullptr);
  }
  static RootWalk epoch_per_root(Roots& roots, unsigned as_id, Epoch& epoch) {
    return RootWalk(roots, as_id, Mode::epoch_per_root, nullptr, &epoch);
  }
  static RootWalk body_sections(Roots& roots, unsigned as_id, Epoch& epoch) {
    return RootWalk(roots, as_id, Mode::body_sections, nullptr, &epoch);
  }

  struct End {};
  class Iterator {
   public:
    explicit Iterator(const RootWalk& w) : w_(w) { advance(); }
    // An early exit (break, return) drops the section and the reference of the current root.
    ~Iterator() {
      if (root_ == nullptr) return;
      leave();
      w_.roots_.put(root_);
    }
    Iterator(const Iterator&) = delete;
    Iterator& operator=(const Iterator&) = delete;

    Root* operator*() const { return root_; }
    Iterator& operator++() {
      leave();
      advance();
      return *this;
    }
    bool operator!=(End) const { return root_ != nullptr; }

   private:
    void check() const {
      switch (w_.mode_) {
        case Mode::exclusive: w_.lock_->assert_held(); break;
        case Mode::locked: w_.lock_->assert_held_shared(); break;
        case Mode::epoch_per_root:
        case Mode::body_sections: w_.epoch_->assert_not_in_read_section(); break;
      }
    }
    void advance() {
      check();
      // Outside any section: next() may drop the previous root's last reference, which may
      // queue its teardown or retire it.
      root_ = w_.roots_.next(root_, w_.as_id_);
      if (root_ != nullptr && w_.mode_ == Mode::epoch_per_root) w_.epoch_->read_lock();
    }
    void leave() {
      if (w_.mode_ == Mode::epoch_per_root) w_.epoch_->read_unlock();
    }

    const RootWalk& w_;
    Root* root_ = nullptr;
  };

  Iterator begin() const { return Iterator(*this); }
  End end() const { return End{}; }

 private:
  RootWalk(Roots& roots, unsigned as_id, Mode mode, const PerCpuRwLock* lock, Epoch* epoch)
      : roots_(roots), as_id_(as_id), mode_(mode), lock_(lock), epoch_(epoch) {}

  Roots& roots_;
  unsigned as_id_;
  Mode mode_;
  const PerCpuRwLock* lock_;
  Epoch* epoch_;
};

}  // namespace mmu
