// Fast zap and the deferred, bounded teardown of invalidated roots.
//
// invalidate_all_roots() only marks roots invalid and queues each one's teardown *once* (the
// teardown_scheduled marker of root.h, lesson 3) on the current CPU's queue. The platform runs
// run_deferred_work(budget) at safe points (before VM entry, in idle): each call does at most
// `budget` units of work (one unit per SPTE visited), so teardown never holds a CPU for long
// (lesson of KVM's removed async zap workers), and the work stays on the CPU that asked. A caller
// that must know the teardown is done (memslot deletion, VM destruction) calls
// wait_for_teardown(ticket), which runs the work itself, helping other CPUs' queues so that the
// wait never depends on another CPU reaching a safe point.
//
// A root is zapped in passes by level so that every step is short: pass 1 unlinks the 4 KiB
// tables (each a 2 MiB range: 512 entries to account), pass 2 the 2 MiB tables (each a 1 GiB
// range), pass 3 the 1 GiB tables, and so on up to the root. Huge leaves met on the way are
// zapped in the pass of their level. Each step ends with a TLB flush that covers what it
// unlinked, and only then are the unlinked tables retired to the epoch.
#include "mmu/mmu.h"
#include "mmu/spte_ops.h"
#include "mmu/tdp_iter.h"

namespace mmu {

void Mmu::schedule_teardown_cb(void* ctx, Root* root) { static_cast<Mmu*>(ctx)->schedule_teardown(root); }

void Mmu::schedule_teardown(Root* root) {
  stats_.teardowns_queued.fetch_add(1, Order::relaxed);
  DeferredQueue& q = queues_[platform_.cpu_id()];
  SpinLockGuard g(q.lock);
  root->deferred_next = nullptr;
  if (q.tail) {
    q.tail->deferred_next = root;
  } else {
    q.head = root;
  }
  q.tail = root;
}

Root* Mmu::pop_deferred(unsigned cpu) {
  DeferredQueue& q = queues_[cpu];
  SpinLockGuard g(q.lock);
  Root* r = q.head;
  if (r) {
    q.head = r->deferred_next;
    if (!q.head) q.tail = nullptr;
    r->deferred_next = nullptr;
  }
  return r;
}

void Mmu::push_deferred_front(unsigned cpu, Root* root) {
  DeferredQueue& q = queues_[cpu];
  SpinLockGuard g(q.lock);
  root->deferred_next = q.head;
  q.head = root;
  if (!q.tail) q.tail = root;
}

uint64_t Mmu::invalidate_all_roots() { return roots_.invalidate_all(); }

// One bounded step of a root's teardown; true when the whole tree is gone. The lock is taken
// exclusively for the step: faults on other roots wait at most one step, and no fault can be
// inside the tree being removed (a fault checks root->invalid under the lock, and the root was
// marked invalid, or lost its last reference, before the teardown was queued).
bool Mmu::teardown_step(Root* root, unsigned& budget) {
  const int passes = root->level - 1;  // min levels 2 .. root level
  DeadTables dead;
  bool zapped_leaves = false;
  stats_.teardown_steps.fetch_add(1, Order::relaxed);
  {
    epoch_.assert_not_in_read_section();  // no waiting for the lock in a section
    WriteLockGuard guard(mmu_lock_);
    bool progressed = false;
    while (root->td_pass < passes) {
      const int min_level = 2 + root->td_pass;
      TdpIter it(platform_, root->table, root->level, root->td_gfn, ~gfn_t{0}, min_level);
      for (; it.valid(); it.next()) {
        // Stop when the budget is spent, but only after real progress (an entry at the pass's
        // level, or a leaf) so that a tiny budget still moves forward.
        if (budget == 0 && progressed) break;
        if (budget) budget--;
        const int level = it.level();
        const spte_t old = it.old_spte;
        if (spte::is_table(old, level) && level > min_level) continue;  // descend
        progressed = true;
        if (spte::is_leaf(old, level) || spte::is_mmio(old)) {
          // Exchange: a vCPU may still run on this (invalid) root and set A/D concurrently.
          const spte_t last = spte_exchange(it.sptep(), 0, level);
          if (spte::is_leaf(last, level)) {
            stats_.leaves[level].fetch_sub(1, Order::relaxed);
            zapped_leaves = true;
          }
        } else if (spte::is_table(old, level)) {
          // Unlink a whole table of the pass's level; its entries are accounted for (leaves
          // counted, tables below chained) and it joins the dead list.
          spte_exchange(it.sptep(), 0, level);
          collect_dead_table(spte::pfn_addr(old), level - 1, dead);
          budget = budget > spte::kEntriesPerTable ? budget - spte::kEntriesPerTable : 0;
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
  }
  // Unlinked tables and zapped leaves may still be cached by TLBs of vCPUs that run on this root
  // (until they reload) or of any CPU that ran it: flush before the pages may be reused.
  if (dead.count || zapped_leaves) flush();
  retire_dead(dead);
  return root->td_pass >= passes;
}

unsigned Mmu::run_queue(unsigned cpu, unsigned budget) {
  unsigned left = budget;
  while (left > 0) {
    Root* r = pop_deferred(cpu);
    if (!r) break;
    if (teardown_step(r, left)) {
      roots_.teardown_finished(r);
    } else {
      push_deferred_front(cpu, r);
      break;
    }
  }
  return budget - left;
}

unsigned Mmu::run_deferred_work(unsigned budget) {
  const unsigned used = run_queue(platform_.cpu_id(), budget);
  retry_limbo();
  epoch_.poll(budget);
  return used;
}

void Mmu::wait_for_teardown(uint64_t ticket) {
  // Small steps: each one holds the MMU lock exclusively, so a big step here stalls every other
  // vCPU's faults for as long (the guest benchmark saw 200-300k TSC ticks of stall with 4096).
  // One table (512 entries) per step bounds that stall while keeping the per-step flush
  // (teardown_step flushes whatever it unlinked) from dominating.
  constexpr unsigned kBudget = 512;
  while (!roots_.teardowns_done_up_to(ticket)) {
    // Our own queue first, then help the others: a root queued by another CPU that is not at a
    // safe point right now must not stall us.
    unsigned used = run_queue(platform_.cpu_id(), kBudget);
    for (unsigned cpu = 0; cpu < platform_.cpu_count(); cpu++) used += run_queue(cpu, kBudget);
    // Nothing to run here but not done: another CPU has popped the root and is running a step.
    if (used == 0) platform_.cpu_relax();
  }
}

}  // namespace mmu
