// Fast zap and the deferred, bounded teardown of invalidated roots.
//
// invalidate_all_roots() only marks roots invalid and queues each one's teardown *once* (the
// teardown_scheduled marker of root.h, rule 3) on the current CPU's queue. The platform runs
// run_deferred_work(budget) at safe points (before VM entry, in idle): each call does at most
// about `budget` units of work (one unit per SPTE visited, a removed table counting its 512
// entries; see kTeardownOvershoot for the one step that may cross the budget), so teardown
// never holds a CPU for long (KVM removed its unbounded zap workers: docs/mmu.md §5), and the
// work stays on the CPU that asked -- unless it piles up there (teardown_backlog_large()): then every CPU
// that reaches a safe point of this MMU helps, within its own budget, so a vCPU that zaps in a
// loop and seldom exits cannot make the VM's tables grow without bound. A caller that must
// know the teardown is done (memslot deletion, VM destruction) calls wait_for_teardown(ticket),
// which runs the work itself, helping other CPUs' queues so that the wait never depends on
// another CPU reaching a safe point; a vCPU refused a page by the VM's page limit calls
// reclaim() before it retries.
//
// A root is zapped in passes by level so that every step is short: pass 1 unlinks the 4 KiB
// tables (each a 2 MiB range: 512 entries to account), pass 2 the 2 MiB tables (each a 1 GiB
// range), pass 3 the 1 GiB tables, and so on up to the root. A pass descends through every
// table above its level, so the first pass already zaps every huge leaf it meets.
//
// Locking (issue 13, item 2; as KVM zaps invalid roots under its MMU lock held for read): a
// step holds the MMU lock *shared*, so vCPUs keep faulting on the valid root while an invalid
// one is torn down; only writers (zaps, memslot and dirty-log updates) wait for a step. What
// makes that safe is the teardown fence (teardown_fence): before a root's first step, one
// empty exclusive section, after which nobody but the job writes into the tree in software.
// A step does not flush:
// it records its unlinks (note_unlinks(), zap.cpp) and hands its dead tables to the MMU's
// pending list, which one flush retires as a batch (when it is full, when a root's teardown
// ends, or when a zap/reclaim flushes anyway). A root's job is reported done only after a
// flush covers everything it unlinked.
// "Rule N": the five design rules of the MMU, docs/mmu.md §10.
#include "mmu/mmu.h"
#include "mmu/spte_ops.h"
#include "mmu/tdp_iter.h"

namespace mmu {

void Mmu::schedule_teardown_cb(void* ctx, Root* root) { static_cast<Mmu*>(ctx)->schedule_teardown(root); }

void Mmu::schedule_teardown(Root* root) {
  stats_.teardowns_queued.fetch_add(1, Order::relaxed);
  teardowns_outstanding_.fetch_add(1, Order::relaxed);
  DeferredQueue& q = queues_[platform_.cpu_id()];
  SpinLockGuard g(q.lock);
  root->deferred_next = nullptr;
  if (q.tail) {
    q.tail->deferred_next = root;
  } else {
    q.head = root;
  }
  q.tail = root;
  q.length.store(q.length.load(Order::relaxed) + 1, Order::relaxed);
}

Root* Mmu::pop_deferred(unsigned cpu) {
  DeferredQueue& q = queues_[cpu];
  SpinLockGuard g(q.lock);
  Root* r = q.head;
  if (r) {
    q.head = r->deferred_next;
    if (!q.head) q.tail = nullptr;
    r->deferred_next = nullptr;
    q.length.store(q.length.load(Order::relaxed) - 1, Order::relaxed);
  }
  return r;
}

void Mmu::push_deferred_front(unsigned cpu, Root* root) {
  DeferredQueue& q = queues_[cpu];
  SpinLockGuard g(q.lock);
  root->deferred_next = q.head;
  q.head = root;
  if (!q.tail) q.tail = root;
  q.length.store(q.length.load(Order::relaxed) + 1, Order::relaxed);
}

uint64_t Mmu::invalidate_all_roots() {
  const uint64_t ticket = roots_.invalidate_all();
  // Backpressure: the caller pays for the teardown it causes once it runs ahead of it. A vCPU
  // that fast-zaps in a loop and seldom reaches a safe point would otherwise pile up invalid
  // roots (each holding a whole tree) faster than any helper tears them down, and its VM's
  // pages would grow until the page limit stops it. So at most config_.max_teardown_backlog
  // invalidations may have teardown outstanding when this returns: the older ones are finished
  // here, by this CPU, in the same bounded steps as any waiter (wait_for_teardown). A single
  // fast zap, or a few in a row, still returns at once.
  const uint64_t backlog = config_.max_teardown_backlog;
  if (backlog && ticket > backlog && !roots_.teardowns_done_up_to(ticket - backlog)) {
    wait_for_teardown(ticket - backlog);
    // The tables we just retired sit in this CPU's epoch lists, which only this CPU's poll()
    // runs: poll now too (bounded), rather than rely on the caller reaching a safe point soon.
    epoch_.poll(kBackpressurePollBudget);
  }
  return ticket;
}

// The teardown fence, once per root before its first step. Every software writer of a tree
// that holds the MMU lock only shared (map and fault-around, prefault, split_huge_pages) checks
// root->invalid under the lock, in the same hold as its writes. One exclusive section after
// the root was marked invalid splits those holds in two:
//   - a hold that began before it has ended: lock() drains every reader (pairing (B) of
//     percpu_rwlock.h: the reader's release unlock_shared against our acquire of its slot), so
//     whatever it wrote into the tree happens before our steps read it;
//   - a hold that begins after it sees the root invalid and writes nothing: the release store
//     of `invalid` (Roots::invalidate_all, or the last Roots::put) is sequenced before the
//     root was queued; the queue lock orders that before our pop (release at the scheduler's
//     unlock, acquire at our lock); our unlock() is a release that the reader's lock_shared
//     acquires (pairing (A)), and its acquire load of `invalid` comes after.
// The other writers hold the lock exclusively (zap_range, dirty-log walks) and so exclude a
// step; lockless aging only clears A with an atomic AND, the CPU only sets A/D. KVM gets the
// same split by marking roots invalid with its MMU lock held for write; here the invalidation
// takes only the roots' spinlock (Roots::invalidate_all), so the write-side section comes
// here, once per root, and is empty: faults wait for it no longer than for a lock handover.
// The root is invalid and popped from its queue: only this CPU touches its cursor.
void Mmu::teardown_fence(Root* root) {
  MMU_ASSERT(root->invalid.load(Order::acquire));
  epoch_.assert_not_in_read_section();  // no waiting for the lock in a section
  { WriteLockGuard fence(mmu_lock_); }
  root->td_fenced = true;
}

// One bounded step of a root's teardown; true when the whole tree is gone. The lock is taken
// shared for the step (after the fence above): faults on the valid root run beside it, and
// none can write into the tree being removed. Writers (zaps, memslot updates) wait at most one
// step. No epoch section is needed for the walk: the tables of this tree leave it only by this
// job's own unlinks (a zap keeps tables; the replace path is a fault's, fenced off), and this
// CPU alone runs the job, so every table the walk can reach stays allocated.
//
// Units: every entry visited is one, and a table unlinked whole adds the
// entries collect_dead_table() visited in it (512 for a table of leaves). `used` reports them
// all; the step stops at the first entry it reaches with used >= budget, but not before it
// made progress (so a tiny budget still moves forward). Hence a step ends with
// used <= max(budget - 1, path) + 1 + 512 (+ tables below, which pass order has removed
// already): within kTeardownOvershoot of the budget.
bool Mmu::teardown_step(Root* root, unsigned budget, unsigned& used) {
  const unsigned cpu = platform_.cpu_id();
  const int passes = root->level - 1;  // min levels 2 .. root level
  DeadTables dead;
  stats_.teardown_steps.fetch_add(1, Order::relaxed);
  if (!root->td_fenced) teardown_fence(root);
  {
    epoch_.assert_not_in_read_section(cpu);  // no waiting for the lock in a section
    PerCpuReadGuard guard(mmu_lock_, cpu);
    bool progressed = false;
    bool unlinked = false;
    while (root->td_pass < passes) {
      const int min_level = 2 + root->td_pass;
      TdpIter it(platform_, root->table, root->level, root->td_gfn, ~gfn_t{0}, min_level);
      for (; it.valid(); it.next()) {
        if (used >= budget && progressed) break;
        used++;
        const int level = it.level();
        const spte_t old = it.old_spte;
        if (spte::is_table(old, level) && level > min_level) continue;  // descend
        progressed = true;
        if (spte::is_leaf(old, level) || spte::is_mmio(old)) {
          // A plain store, not an exchange: since the fence no software writer but lockless
          // aging (an atomic AND of A) reaches this entry, and a vCPU may still run on this
          // (invalid) root and set A/D concurrently, but the teardown reads neither
          // (finish_teardown() counts every D-logged slot as wholly dirty), and neither the
          // CPU's locked A/D update nor aging's AND can revive a cleared entry. The leaf is uncounted with its batch (defer_dead), not one shared
          // atomic per leaf.
          spte_store(it.sptep(), 0, level);
          if (spte::is_leaf(old, level)) {
            dead.leaves[level]++;
            unlinked = true;
          }
        } else if (spte::is_table(old, level)) {
          // Unlink a whole table of the pass's level; its entries are accounted for (leaves
          // counted, tables below chained) and it joins the dead list. Start loading the next
          // entry's table meanwhile: collect_dead_table() reads it next.
          if (spte::index_of(it.gfn(), level) + 1 < spte::kEntriesPerTable) {
            const spte_t nxt = spte_read(it.sptep() + 1);
            if (spte::is_table(nxt, level)) __builtin_prefetch(platform_.table_va(spte::pfn_addr(nxt)));
          }
          spte_exchange(it.sptep(), 0, level);
          used += collect_dead_table(spte::pfn_addr(old), level - 1, dead);
          unlinked = true;
        }
        it.old_spte = 0;
      }
      if (it.valid()) {
        root->td_gfn = it.gfn();  // resume here (ancestors are revisited, cheaply)
        break;
      }
      root->td_pass++;
      root->td_gfn = 0;
    }
    // Before the lock is dropped: whoever takes it next and must return with these unlinks
    // flushed (a zap, a memslot delete) finds the generation and flushes for them (zap.cpp).
    if (unlinked) root->td_gen = note_unlinks();
  }
  // Unlinked tables and zapped leaves may still be cached by TLBs of vCPUs that run on this
  // root (until they reload) or of any CPU that ran it: the tables wait for the flush of their
  // batch before they go to the epoch.
  defer_dead(dead, root->td_gen);
  return root->td_pass >= passes;
}

void Mmu::finish_teardown(Root* root) {
  // The waiting tables of this root (and any others) go with one flush, and the job is not
  // reported done before a flush covers its last unlink: waiters (wait_for_teardown) and the
  // root's final free rely on that. Usually flush_pending() already covered it.
  flush_pending();
  flush_covering(root->td_gen);
  // The tree's D bits are gone (a table unlinked whole is not read for them, and a CPU may set
  // D in it until the flush above): D-logged slots count as wholly dirty (dirty_log.cpp).
  dirty_log_root_gone(root->as_id);
  roots_.teardown_finished(root);
  teardowns_outstanding_.fetch_sub(1, Order::relaxed);
}

void Mmu::run_queue(unsigned cpu, unsigned budget, unsigned& used) {
  // Every VM entry asks: an empty queue (the usual case) is one relaxed load, not a lock. The
  // length is a hint kept under the queue lock; a root queued meanwhile waits for the next call.
  if (queues_[cpu].length.load(Order::relaxed) == 0) return;
  const bool helping = cpu != platform_.cpu_id();
  while (used < budget) {
    Root* r = pop_deferred(cpu);
    if (!r) break;
    if (helping) stats_.teardown_steps_helped.fetch_add(1, Order::relaxed);
    // Timed for the trace (Platform::trace_teardown_step); two clock reads per bounded step.
    const uint64_t t0 = platform_.timestamp();
    const unsigned before = used;
    const bool done = teardown_step(r, budget, used);
    platform_.trace_teardown_step(config_.tlb_tag, r->table_pa, t0, used - before, static_cast<unsigned>(r->td_pass),
                                  done, helping);
    if (done) {
      finish_teardown(r);
    } else {
      push_deferred_front(cpu, r);
      break;
    }
  }
}

// "Large": more than one root waits in other CPUs' queues of this MMU (one
// is the normal aftermath of a fast zap, and stays with the CPU that asked), or any root waits
// there while the MMU holds three quarters of its page limit. A root queued on a CPU whose vCPU
// seldom exits can then not hold the VM's memory: the faulting vCPUs and idle CPUs help.
bool Mmu::teardown_backlog_large() {
  // Every safe point asks, before every VM entry: with no teardown anywhere (the usual case)
  // one load of a line that changes twice per root's teardown answers, not a look at every
  // CPU's queue. Relaxed: a hint, as the queue lengths are.
  if (teardowns_outstanding_.load(Order::relaxed) == 0) return false;
  const unsigned me = platform_.cpu_id();
  const unsigned n = platform_.cpu_count();
  uint64_t elsewhere = 0;
  for (unsigned cpu = 0; cpu < n; cpu++) {
    if (cpu != me) elsewhere += queues_[cpu].length.load(Order::relaxed);
  }
  if (elsewhere >= 2) return true;
  const uint64_t limit = account_.limit();
  return elsewhere != 0 && limit != 0 && account_.live() * 4 >= limit * 3;
}

unsigned Mmu::run_deferred_work(unsigned budget) {
  const unsigned me = platform_.cpu_id();
  unsigned used = 0;
  run_queue(me, budget, used);
  if (used < budget && teardown_backlog_large()) {
    const unsigned n = platform_.cpu_count();
    for (unsigned cpu = 0; cpu < n && used < budget; cpu++) {
      if (cpu != me) run_queue(cpu, budget, used);
    }
  }
  retry_limbo();
  epoch_.poll(budget);
  return used;
}

ReclaimResult Mmu::reclaim(unsigned budget) {
  stats_.reclaim_calls.fetch_add(1, Order::relaxed);
  ReclaimResult r;
  const uint64_t freed_before = account_.freed();
  const unsigned me = platform_.cpu_id();
  const unsigned n = platform_.cpu_count();
  // Any queue, ours first: the caller is out of pages now, backlog or not.
  run_queue(me, budget, r.units);
  for (unsigned cpu = 0; cpu < n && r.units < budget; cpu++) {
    if (cpu != me) run_queue(cpu, budget, r.units);
  }
  // Dead tables waiting for their batch's flush still count against the limit.
  flush_pending();
  retry_limbo();
  // Retired pages are freed two epoch steps after their batch is closed: a few polls (each
  // bounded by the budget, each trying to advance the epoch) give them the chance to come
  // back now rather than on the vCPU's next exit.
  for (int i = 0; i < 3 && account_.freed() == freed_before; i++) {
    if (epoch_.poll(budget) == 0 && i > 0) break;
  }
  r.pages_freed = account_.freed() - freed_before;
  stats_.reclaim_pages.fetch_add(r.pages_freed, Order::relaxed);
  return r;
}

void Mmu::wait_for_teardown(uint64_t ticket) {
  // Small steps: each one holds the MMU lock (shared: faults run beside it, but a zap or a
  // memslot update waits for the whole step; when the steps were exclusive the guest benchmark
  // saw 200-300k TSC ticks of fault stall with 4096). One table (512 entries) per step bounds
  // that wait; the flushes are batched (pending dead tables, one flush per batch and one when a
  // root is done), not one per step.
  constexpr unsigned kBudget = 512;
  while (!roots_.teardowns_done_up_to(ticket)) {
    // Our own queue first, then help the others: a root queued by another CPU that is not at a
    // safe point right now must not stall us.
    unsigned used = 0;
    run_queue(platform_.cpu_id(), kBudget, used);
    for (unsigned cpu = 0; cpu < platform_.cpu_count(); cpu++) {
      unsigned u = 0;
      run_queue(cpu, kBudget, u);
      used += u;
    }
    // Nothing to run here but not done: another CPU has popped the root and is running a step.
    if (used == 0) platform_.cpu_relax();
  }
}

}  // namespace mmu
