// Roots: creation, sharing by role, reference counting, invalidation. See root.h.
// "Rule N": the five design rules of the MMU, docs/mmu.md §10.
#include "mmu/root.h"

namespace mmu {

Roots::Roots(Platform& platform, PageAccount& account, Epoch& epoch, ScheduleFn schedule, void* ctx)
    : platform_(platform), account_(account), epoch_(epoch), schedule_(schedule), schedule_ctx_(ctx) {}

bool Roots::tryget(Root* root) {
  uint32_t n = root->refcount.load(Order::relaxed);
  while (n != 0) {
    // Relaxed is enough: the root's fields were published by the list lock (or by the
    // reference the caller already holds); a reference orders nothing by itself.
    if (root->refcount.compare_exchange(n, n + 1, Order::relaxed)) return true;
  }
  return false;
}

Root* Roots::get(unsigned as_id, int level) {
  {
    SpinLockGuard g(lock_);
    for (Root* r = head_; r; r = r->next) {
      if (r->as_id == as_id && r->level == level && !r->invalid.load(Order::relaxed) &&
          tryget(r)) {
        return r;
      }
    }
  }
  // None: build one outside the lock (allocation may be slow), then publish it unless another
  // CPU published one of the same role meanwhile.
  const hpa_t meta = account_.alloc(platform_);
  const hpa_t table = meta ? account_.alloc(platform_) : 0;
  if (table == 0) {
    if (meta) account_.free(platform_, meta);
    return nullptr;
  }
  Root* fresh = new (platform_.phys_to_virt(meta)) Root();
  fresh->table_pa = table;
  fresh->table = static_cast<spte_t*>(platform_.phys_to_virt(table));
  fresh->level = level;
  fresh->as_id = as_id;
  fresh->platform = &platform_;
  fresh->account = &account_;
  {
    SpinLockGuard g(lock_);
    for (Root* r = head_; r; r = r->next) {
      if (r->as_id == as_id && r->level == level && !r->invalid.load(Order::relaxed) &&
          tryget(r)) {
        account_.free(platform_, table);
        account_.free(platform_, meta);
        return r;
      }
    }
    // The lock's release publishes the zeroed table and the Root fields to every CPU that finds
    // the root in the list (they take the lock, acquire).
    fresh->next = head_;
    head_ = fresh;
  }
  live_.fetch_add(1, Order::relaxed);
  return fresh;
}

void Roots::put(Root* root) {
  // Fast path: not the last reference, no lock needed.
  uint32_t n = root->refcount.load(Order::relaxed);
  while (n > 1) {
    if (root->refcount.compare_exchange(n, n - 1, Order::release)) return;
  }
  bool schedule = false, free_now = false;
  {
    // The 1 -> 0 transition happens under the list lock, so that get() (which takes references
    // under the same lock) can never revive a root that is going away.
    SpinLockGuard g(lock_);
    if (root->refcount.fetch_sub(1, Order::acq_rel) != 1) return;
    // No reference left: nobody may be given this root again.
    root->invalid.store(1, Order::release);
    if (!root->teardown_scheduled.load(Order::relaxed)) {
      root->teardown_scheduled.store(1, Order::relaxed);
      root->free_when_done = true;
      root->teardown_ticket = ++ticket_;
      schedule = true;
    } else {
      // A teardown job holds a reference until it is done, so the count can reach 0 here
      // only after the job finished.
      MMU_ASSERT(root->teardown_done.load(Order::acquire));
      Root** pp = &head_;
      while (*pp != root) pp = &(*pp)->next;
      *pp = root->next;
      free_now = true;
    }
  }
  if (schedule) schedule_(schedule_ctx_, root);
  if (free_now) free_root(root);
}

Root* Roots::next(Root* prev, unsigned as_id) {
  Root* found = nullptr;
  {
    SpinLockGuard g(lock_);
    // `prev` is still in the list: our reference keeps it there.
    for (Root* r = prev ? prev->next : head_; r; r = r->next) {
      if ((as_id == kAnyAs || r->as_id == as_id) && !r->teardown_done.load(Order::acquire) &&
          tryget(r)) {
        found = r;
        break;
      }
    }
  }
  if (prev) put(prev);
  return found;
}

uint64_t Roots::invalidate_all() {
  Root* to_schedule[64];
  unsigned n = 0;
  uint64_t ticket;
  for (;;) {
    bool more = false;
    {
      SpinLockGuard g(lock_);
      ticket = ++ticket_;
      for (Root* r = head_; r; r = r->next) {
        r->invalid.store(1, Order::release);
        // Exactly once (rule 3): a root invalidated twice, or whose last reference already
        // queued its teardown, is not queued again; waiters find it by its older ticket.
        if (r->teardown_scheduled.load(Order::relaxed)) continue;
        if (n == 64) {
          more = true;
          continue;
        }
        r->teardown_scheduled.store(1, Order::relaxed);
        r->teardown_ticket = ticket;
        // The job's own reference: the root stays alive until the job is done, even if every
        // vCPU drops it meanwhile. The count is > 0 here: a root at 0 already had its teardown
        // scheduled by put().
        const bool referenced = tryget(r);
        MMU_ASSERT(referenced);
        to_schedule[n++] = r;
      }
      // Release: a vCPU that sees the new generation (acquire in generation()) also sees every
      // root's invalid flag, so it reloads instead of re-entering on an invalid root.
      generation_.fetch_add(1, Order::release);
    }
    for (unsigned i = 0; i < n; i++) schedule_(schedule_ctx_, to_schedule[i]);
    n = 0;
    if (!more) return ticket;
  }
}

bool Roots::teardowns_done_up_to(uint64_t ticket) {
  SpinLockGuard g(lock_);
  for (Root* r = head_; r; r = r->next) {
    if (r->teardown_scheduled.load(Order::relaxed) && r->teardown_ticket <= ticket &&
        !r->teardown_done.load(Order::acquire)) {
      return false;
    }
  }
  return true;
}

uint64_t Roots::last_ticket() {
  SpinLockGuard g(lock_);
  return ticket_;
}

uint64_t Roots::invalid_count() {
  SpinLockGuard g(lock_);
  uint64_t n = 0;
  for (Root* r = head_; r; r = r->next) n += r->invalid.load(Order::relaxed) != 0;
  return n;
}

void Roots::teardown_finished(Root* root) {
  // Release: pairs with the acquire loads of teardown_done in next()/put()/waiters, which then
  // also see the emptied tree.
  root->teardown_done.store(1, Order::release);
  if (!root->free_when_done) {
    put(root);  // the job's reference; the last one frees the root (put() sees "done")
    return;
  }
  {
    SpinLockGuard g(lock_);
    Root** pp = &head_;
    while (*pp != root) pp = &(*pp)->next;
    *pp = root->next;
  }
  free_root(root);
}

void Roots::free_root(Root* root) {
  live_.fetch_sub(1, Order::relaxed);
  // The tree below is empty and the TLB flush that followed its teardown is done; the top table
  // and the Root object go after a grace period (a lockless walker may still be looking).
  epoch_.retire(&root->free_cb, free_root_cb);
}

void Roots::free_root_cb(EpochCallback* cb) {
  Root* root = reinterpret_cast<Root*>(reinterpret_cast<char*>(cb) - offsetof(Root, free_cb));
  Platform& p = *root->platform;
  PageAccount& a = *root->account;  // outlives the root: ~Mmu waits for this callback (barrier)
  a.free(p, root->table_pa);
  const hpa_t meta = p.virt_to_phys(root);
  root->~Root();
  a.free(p, meta);
}

}  // namespace mmu
