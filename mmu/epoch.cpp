// Epoch-based reclamation; the contract and the locking scheme are in epoch.h.
//
// Why a callback stamped s is safe to run once G >= s + 2
// --------------------------------------------------------
// Actors: a reader R, whose outermost read_lock() loads G (acquire) into r, stores (r<<1)|1
// into its slot (release) and then executes seq_cst fence F_R before reading shared pointers.
// A retirer W that unlinks object O, then (in stamp()) executes seq_cst fence F_W and loads G
// = s. An advancer A_k that moves G from k to k+1: it loads G = k (acquire), executes seq_cst
// fence F_A, loads every slot (acquire) and CASes k -> k+1 (acq_rel). The C++20 rule we lean on
// ([atomics.order]/4.4): if a seq_cst fence X happens before an access M1, M1 is
// coherence-ordered before an access M2 of the same object, and M2 happens before a seq_cst
// fence Y, then X precedes Y in the single total order S of seq_cst operations.
//
// Suppose R still holds a pointer to O, loaded after F_R. Then:
//  1. F_R <S F_W. Otherwise F_W <S F_R: F_W is after the unlink, and R's pointer load, which
//     saw O (coherence-ordered before the unlink), is after F_R, so by 4.4 (X=F_R, M1=R's load,
//     M2=unlink, Y=F_W) F_R <S F_W: a contradiction.
//  2. r <= s. If r > s, W's load of G (after F_W) read a value older than the one R read; the
//     CAS that wrote R's value happens before F_R (R's load is acquire), so 4.4 gives
//     F_W <S F_R, contradicting 1.
//  3. F_W <S F_A for the advancer A_{s+1} (the one that moves G from s+1 to s+2). A_{s+1}
//     loaded s+1 (acquire) from the CAS of A_s, which is later in G's modification order than
//     the s that W read; so W's load is coherence-ordered before that CAS, which happens before
//     F_A: 4.4 gives F_W <S F_A.
//  4. Hence F_R <S F_A, so A_{s+1}'s load of R's slot sees R's pin store or a later store
//     (4.4 again, with the slot's older value). While R stays in its section that is the pin,
//     with epoch r <= s != s+1, so A_{s+1} refuses to advance: G cannot reach s+2.
//  5. If A_{s+1} saw a later store (R's unpin, or a pin of a later section: both are release
//     stores), R's reads of O happen before A_{s+1}'s CAS, whose release sequence (every later
//     change of G is a CAS) ends at the G >= s+2 that the runner loads with acquire before it
//     calls fn. So every read of O by R happens before O is freed.
// synchronize() is W without a callback; barrier() is W for all callbacks queued before it.
// On x86 every acquire/release here is a plain mov; the only costly instruction on the read
// side is the fence in read_lock(), and with asymmetric fences there is none.
//
// Asymmetric fences (Platform::asymmetric_fences(), mmu/platform.h)
// ------------------------------------------------------------------
// Then F_R is only a compiler barrier, and F_A is Platform::asymmetric_fence_heavy(): a full
// fence of our own, then one on every CPU at a point P_R of its instruction stream between the
// start and the end of the heavy fence. The argument above uses F_R in steps 1 and 4; it goes
// through in x86-TSO terms, where loads are not reordered with loads and a locked RMW or a
// fence drains the store buffer (models/asym_fence.pml checks this part):
//  1'-2'. r <= s without F_R. R's load of G (value r) precedes R's load of the link (load->load
//     order), which saw O, so it precedes the unlink; the unlink precedes W's load of G (the
//     RMW and F_W drain W's stores). If s < r, W's load came before the CAS that wrote r, which
//     R's load of G saw: a cycle in memory order.
//  4'. A_{s+1}'s scan sees R's pin. If P_R (R's fence point of A_{s+1}'s heavy fence) comes
//     after R's pin store, the pin is in memory before the heavy fence returns, and the scan
//     comes after. If P_R comes before the pin store, then R's load of the link comes after
//     P_R, which comes after A_{s+1}'s load of G = s+1, which comes after W's load of G = s,
//     which comes after the unlink: R cannot have seen O, contrary to the assumption.
//  Steps 3 and 5 do not involve R's fence.
// try_advance() first scans the slots without the heavy fence: a stale pin it sees already
// forbids the advance (a later look could only show the same pin or R's unpin), so the
// expensive fence is paid only by an advance that may succeed.
//
// The conditions the argument depends on (break one and it no longer holds):
//  C1. The load of G in read_lock() stays acquire. Step 2 needs the CAS that wrote R's value
//      of G to happen before F_R; a relaxed load would leave the stale-pin case (R loads G,
//      G moves twice, R pins its old value) without an ordering to reason from.
//  C2. The unlink of O is an atomic RMW (the SPTE exchange/CAS of the MMU) or a release store
//      that happens before the fence F_W in stamp(): retire()/retire_page()/synchronize() come
//      after the unlink in program order on the same CPU, or on another CPU that took O over
//      through a release/acquire pair (a lock: the MMU's pending dead tables, mmu/zap.cpp (d)).
//      Step 1 needs the unlink to be an access to the pointer's location that is ordered
//      after R's load of it (coherence) and that happens before F_W ([atomics.order]/4.4 is
//      stated with "happens before", not "sequenced before"). A plain store, or a stamp taken before the unlink, breaks
//      step 1.
//  C3. A reader obtains every pointer it dereferences, after its F_R, through a location the
//      unlink changes (the parent SPTE, the published memslot set), or through pointers read
//      in the same section from such locations. A walker must not carry a table pointer from
//      one section into the next: that pointer was loaded before this section's F_R, and
//      step 1 says nothing about it (the section that loaded it may have ended long ago).
// None of these can be checked by the host tests: ThreadSanitizer does not model store
// buffering (it would not report a missing seq_cst fence), and the test machines have too
// little real parallelism to hit the window. The unit test "a reader that pinned a stale
// epoch" sets up the interleaving of step 2 deterministically through
// read_lock_pinned_for_test().
#include "mmu/epoch.h"

namespace mmu {

// A tracking page for retire_page(): the callback node and the addresses of the retired pages.
// It lives in its own page, never in one of the pages it tracks, because lockless walkers may
// still read those until the grace period ends, and enqueueing writes the node.
struct Epoch::PageBatch {
  EpochCallback cb;  // first member: free_batch() gets from &cb back to the batch
  Epoch* owner;
  hpa_t self;        // this tracking page
  uint64_t count;
  // Credited with every page freed from this batch (nullptr: nobody). Set when the batch gets
  // its first page; all its pages belong to it.
  PageAccount* account;
  hpa_t pages[kPagesPerBatch];
};
static_assert(sizeof(EpochCallback) + 4 * sizeof(uint64_t) == 56,
              "kPagesPerBatch in epoch.h assumes a 56-byte batch header");

namespace {
constexpr unsigned kUnlimited = ~0u;
}  // namespace

Epoch::Epoch(Platform& platform) : platform_(platform) {}

Epoch::~Epoch() {
  const unsigned n = platform_.cpu_count();
  for (unsigned i = 0; i < n; i++) MMU_ASSERT(cpus_[i].nesting.load(Order::relaxed) == 0);
  // Callbacks may retire further objects; drain until nothing is left.
  do {
    barrier();
  } while (pending() != 0 || pending_pages() != 0);
  for (unsigned i = 0; i < n; i++) {
    CpuState& c = cpus_[i];
    SpinLockGuard l(c.list_lock);
    MMU_ASSERT(c.head == nullptr);
    if (c.open_batch != 0) platform_.free_page(c.open_batch);  // empty: barrier sealed it
    for (unsigned k = 0; k < c.spares; k++) platform_.free_page(c.spare[k]);
    c.open_batch = 0;
    c.spares = 0;
  }
}

Epoch::CpuState& Epoch::self() {
  const unsigned id = platform_.cpu_id();
  MMU_ASSERT(id < platform_.cpu_count() && id < Platform::kMaxCpus);
  return cpus_[id];
}

const Epoch::CpuState& Epoch::self() const {
  const unsigned id = platform_.cpu_id();
  MMU_ASSERT(id < platform_.cpu_count() && id < Platform::kMaxCpus);
  return cpus_[id];
}

Epoch::CpuState& Epoch::of(unsigned cpu) {
  // cpu_count(): a reader beyond it would be invisible to try_advance(), which scans only those.
  MMU_ASSERT(cpu < platform_.cpu_count() && cpu < Platform::kMaxCpus);
  return cpus_[cpu];
}

void Epoch::read_lock() {
  const unsigned cpu = platform_.cpu_id();
  (void)of(cpu);  // the full check: below cpu_count(), where try_advance() looks
  read_lock(cpu);
}
void Epoch::read_unlock() { read_unlock(platform_.cpu_id()); }

void Epoch::read_lock_pinned_for_test(uint64_t observed_epoch) {
  CpuState& c = self();
  MMU_ASSERT(c.nesting.load(Order::relaxed) == 0);  // an outermost section only
  // A reader can only have loaded a value that G had: one not above the current one.
  MMU_ASSERT(observed_epoch <= global_epoch_.load(Order::acquire));
  pin(c, observed_epoch);
  c.nesting.store(1, Order::relaxed);
}

bool Epoch::in_read_section() const { return self().nesting.load(Order::relaxed) != 0; }
bool Epoch::is_online(unsigned cpu) const {
  MMU_ASSERT(cpu < Platform::kMaxCpus);
  return cpus_[cpu].online.load(Order::relaxed) != 0;
}

uint64_t Epoch::stamp() {
  // F_W. Everything the caller unlinked before this point (condition C2) is ordered before the
  // load of G by this fence; pairs with the fence F_R in pin() (step 1) and orders us before
  // the advancers' fences F_A (step 3). The load itself can be relaxed: steps 2 and 3 need
  // only the fence.
  atomic_thread_fence(Order::seq_cst);
  return global_epoch_.load(Order::relaxed);
}

bool Epoch::try_advance() {
  // Acquire: pairs with the CAS of the previous advancer (step 3).
  uint64_t g = global_epoch_.load(Order::acquire);
  const unsigned n = platform_.cpu_count();
  // A reader from before g that we can already see says no without the heavy fence below
  // (saying no is always safe: a section that has ended unseen only delays the advance to a
  // later call). Saves that fence while a long section holds the epoch back.
  if (platform_.asymmetric_fences() && stale_reader_visible(g, n)) return false;
  // F_A: pairs with F_R in pin() (step 4: our slot loads below see every pin whose fence
  // precedes ours; with asymmetric fences, every pin stored before the heavy fence made its
  // CPU fence) and with F_W in stamp() (step 3).
  platform_.asymmetric_fence_heavy();
  // Acquire loads: pair with the release stores of read_lock()/read_unlock() (step 5).
  if (stale_reader_visible(g, n)) return false;
  // acq_rel: release pairs with the acquire loads of G in run_ready()/synchronize()/barrier()
  // and of the next advancer; acquire continues the chain from the previous advancer. A failed
  // CAS means someone else advanced from g already, which is just as good.
  return global_epoch_.compare_exchange(g, g + 1, Order::acq_rel);
}

bool Epoch::stale_reader_visible(uint64_t g, unsigned n) const {
  for (unsigned i = 0; i < n; i++) {
    // Acquire: pairs with the release stores of read_lock()/read_unlock() (step 5).
    const uint64_t r = cpus_[i].reader.load(Order::acquire);
    if ((r & kReaderActive) != 0 && (r >> 1) != g) return true;  // a reader from before g
  }
  return false;
}

void Epoch::quiescent() {
  CpuState& c = self();
  // A quiescent point inside a read-side section is a leaked section: catch it here, where
  // it is cheap to find, rather than as a reclamation that never completes.
  MMU_ASSERT(c.nesting.load(Order::relaxed) == 0);
  if (advance_wanted(c)) try_advance();
}

void Epoch::set_online(bool online) {
  CpuState& c = self();
  if (!online) {
    MMU_ASSERT(c.nesting.load(Order::relaxed) == 0);
    // A callback runs inside someone's run_lock on behalf of a list; the CPU running it is
    // busy, not going offline.
    MMU_ASSERT(c.in_callbacks.load(Order::relaxed) == 0);
    // Hand over this CPU's partly filled batch: it won't poll, helpers will. (retire_page()
    // closes every batch at once while we are offline, see there.)
    SpinLockGuard l(c.list_lock);
    seal_batch_locked(c);
  }
  // Relaxed: `online` is only a hint for helpers in poll(); the lists it leads them to are
  // protected by list_lock/run_lock, which order everything that matters.
  c.online.store(online ? 1 : 0, Order::relaxed);
}

void Epoch::enqueue_locked(CpuState& c, EpochCallback* cb) {
  MMU_ASSERT(cb != nullptr && cb->fn != nullptr);
  cb->next = nullptr;
  // Stamped under list_lock, so the list's stamps never decrease (G only grows) and the ready
  // callbacks are always a prefix of it.
  cb->epoch = stamp();
  if (c.tail != nullptr) {
    c.tail->next = cb;
  } else {
    c.head = cb;
  }
  c.tail = cb;
  c.pending.fetch_add(1, Order::relaxed);
  c.newest_stamp.store(cb->epoch, Order::relaxed);
}

void Epoch::retire(EpochCallback* cb) {
  CpuState& c = self();
  SpinLockGuard l(c.list_lock);
  enqueue_locked(c, cb);
}

void Epoch::seal_batch_locked(CpuState& c) {
  if (c.open_batch == 0) return;
  auto* b = static_cast<PageBatch*>(platform_.phys_to_virt(c.open_batch));
  if (b->count == 0) return;  // keep the empty tracking page open for the next retire_page()
  c.open_batch = 0;
  c.open_pages.store(0, Order::relaxed);
  b->cb.fn = &Epoch::free_batch;
  // The stamp is taken now, after every retire_page() that filled the batch (each of which
  // came after its page was unlinked), so it covers all of them.
  enqueue_locked(c, &b->cb);
}

bool Epoch::retire_page(hpa_t page, PageAccount* account) {
  MMU_ASSERT(page != 0 && page % kPageSize == 0);
  CpuState& c = self();
  for (;;) {
    {
      SpinLockGuard l(c.list_lock);
      // A batch credits one account: a page of another one closes it (early, which is always
      // safe; pages of one Mmu are retired in runs, so batches stay large in practice).
      if (c.open_batch != 0) {
        auto* open = static_cast<PageBatch*>(platform_.phys_to_virt(c.open_batch));
        if (open->count != 0 && open->account != account) seal_batch_locked(c);
      }
      if (c.open_batch == 0 && c.spares != 0) {
        const hpa_t t = c.spare[--c.spares];
        auto* b = static_cast<PageBatch*>(platform_.phys_to_virt(t));
        b->owner = this;
        b->self = t;
        b->count = 0;
        b->account = nullptr;
        c.open_batch = t;
      }
      if (c.open_batch != 0) {
        auto* b = static_cast<PageBatch*>(platform_.phys_to_virt(c.open_batch));
        // Relaxed: open_epoch only decides *when* poll() closes the batch; the stamp, taken
        // when it is closed, is what makes reclamation safe.
        if (b->count == 0) {
          c.open_epoch = global_epoch_.load(Order::relaxed);
          b->account = account;
        }
        b->pages[b->count++] = page;
        c.open_pages.store(static_cast<uint32_t>(b->count), Order::relaxed);
        pending_pages_.fetch_add(1, Order::relaxed);
        // Close it when full, and at once on an offline CPU: it does not poll(), and helpers
        // only run queued work, so an open batch there would wait until it came back online.
        // (Reading our own `online` flag: only we write it.)
        if (b->count == kPagesPerBatch || c.online.load(Order::relaxed) == 0)
          seal_batch_locked(c);
        return true;
      }
    }
    // No tracking page: allocate one outside the spinlock (the platform's allocator may take
    // locks of its own) and go round again.
    const hpa_t fresh = platform_.alloc_page();
    if (fresh == 0) return false;
    bool used = false;
    {
      SpinLockGuard l(c.list_lock);
      if (c.spares < kSpareBatches) {
        c.spare[c.spares++] = fresh;
        used = true;
      }
    }
    if (!used) platform_.free_page(fresh);
  }
}

void Epoch::recycle_tracking_page(hpa_t page) {
  // Keep it on the running CPU's free list, so that steady-state retiring does not allocate.
  // Lock order run_lock (held by our caller) -> list_lock, as everywhere.
  CpuState& c = self();
  bool kept = false;
  {
    SpinLockGuard l(c.list_lock);
    if (c.spares < kSpareBatches) {
      c.spare[c.spares++] = page;
      kept = true;
    }
  }
  if (!kept) platform_.free_page(page);
}

uint64_t Epoch::cost_of(const EpochCallback* cb) {
  if (cb->fn != &Epoch::free_batch) return 1;
  // A sealed batch's count is changed only by the holder of its list's run_lock (our caller).
  return reinterpret_cast<const PageBatch*>(cb)->count;
}

void Epoch::free_batch_part(PageBatch* b, uint64_t pages) {
  // Free the last `pages` pages; the batch keeps pages[0 .. count) and its place (and stamp)
  // at the head of its list. Only the run_lock holder of that list gets here, and nobody else
  // touches a sealed batch's count or pages (enqueueing behind it writes only cb.next).
  MMU_ASSERT(pages < b->count);
  for (uint64_t i = 0; i < pages; i++) platform_.free_page(b->pages[--b->count]);
  if (b->account) b->account->credit(pages);
  pending_pages_.fetch_sub(pages, Order::relaxed);
}

void Epoch::free_batch(EpochCallback* cb) {
  static_assert(sizeof(PageBatch) <= kPageSize, "a batch must fit its tracking page");
  auto* b = reinterpret_cast<PageBatch*>(cb);
  Epoch& e = *b->owner;
  for (uint64_t i = 0; i < b->count; i++) e.platform_.free_page(b->pages[i]);
  if (b->account) b->account->credit(b->count);
  e.pending_pages_.fetch_sub(b->count, Order::relaxed);
  e.recycle_tracking_page(b->self);
}

unsigned Epoch::run_ready(CpuState& c, unsigned budget, bool advance) {
  // Acquire: pairs with the release CAS in try_advance() (step 5): the readers that had to
  // leave before G got here have finished their reads.
  uint64_t g = global_epoch_.load(Order::acquire);
  if (advance) {
    // A fresh callback needs G two steps past its stamp: try at most that often, so that a
    // poll() stays bounded even when a reader holds the epoch back.
    for (int i = 0; i < 2; i++) {
      uint64_t oldest;
      {
        SpinLockGuard l(c.list_lock);
        if (c.head == nullptr) return 0;
        oldest = c.head->epoch;
      }
      if (oldest + 2 <= g || !try_advance()) break;
      g = global_epoch_.load(Order::acquire);  // acquire: as above
    }
  }
  // Take the ready prefix that fits the budget (a callback costs 1, a batch its page count).
  // A ready batch that does not fit is freed in part and stays at the head.
  EpochCallback* chain = nullptr;
  uint64_t units = 0;
  uint64_t ncb = 0;
  PageBatch* part = nullptr;
  uint64_t part_pages = 0;
  {
    SpinLockGuard l(c.list_lock);
    EpochCallback* cb = c.head;
    EpochCallback* last = nullptr;
    while (cb != nullptr && cb->epoch + 2 <= g) {
      const uint64_t cost = cost_of(cb);
      if (units + cost > budget) {
        if (cb->fn == &Epoch::free_batch && units < budget) {
          part = reinterpret_cast<PageBatch*>(cb);
          part_pages = budget - units;
        }
        break;
      }
      units += cost;
      ncb++;
      last = cb;
      cb = cb->next;
    }
    if (ncb != 0) {
      chain = c.head;
      last->next = nullptr;
      c.head = cb;
      if (cb == nullptr) c.tail = nullptr;
    }
  }
  if (ncb == 0 && part == nullptr) return 0;
  // Run outside list_lock (a callback may retire(), which takes the current CPU's list_lock)
  // but inside run_lock, which tells barrier() when these have finished and keeps `part` ours.
  CpuState& me = self();
  me.in_callbacks.fetch_add(1, Order::relaxed);
  while (chain != nullptr) {
    EpochCallback* next = chain->next;  // fn may free the memory holding the node
    chain->fn(chain);
    chain = next;
  }
  if (part != nullptr) {
    free_batch_part(part, part_pages);
    units += part_pages;
  }
  me.in_callbacks.fetch_sub(1, Order::relaxed);
  c.pending.fetch_sub(ncb, Order::relaxed);
  return units > kUnlimited ? kUnlimited : static_cast<unsigned>(units);
}

// poll()'s part for the calling CPU's own list: close the open batch once the epoch moved,
// run what is ready.
unsigned Epoch::poll_own(CpuState& me, unsigned budget) {
  bool batch_waits = false;
  {
    SpinLockGuard l(me.list_lock);
    if (me.open_batch != 0 &&
        static_cast<PageBatch*>(platform_.phys_to_virt(me.open_batch))->count != 0) {
      // Close it once the epoch has moved since its first page: pages retired from now on
      // would get a later stamp anyway, and keeping the batch open longer would only delay
      // the pages already in it. Until then keep filling it (one tracking page per epoch
      // step, not per poll()). Relaxed: a heuristic, as in retire_page().
      if (global_epoch_.load(Order::relaxed) != me.open_epoch) {
        seal_batch_locked(me);
      } else {
        batch_waits = true;
      }
    }
  }
  // Nothing else may be pending to move the epoch (run_ready() advances only for queued
  // work): nudge it, so that a later poll() closes the batch.
  if (batch_waits) try_advance();
  unsigned ran = 0;
  if (me.run_lock.try_lock()) {
    ran = run_ready(me, budget, true);
    me.run_lock.unlock();
  }
  return ran;
}

unsigned Epoch::poll(unsigned budget) {
  CpuState& me = self();
  MMU_ASSERT(me.in_callbacks.load(Order::relaxed) == 0);  // poll() from a callback
  if (budget == 0) return 0;
  unsigned ran = 0;
  // Every VM entry polls: with no callback queued here and no page in the open batch (the
  // usual case) there is nothing of ours to do, and two relaxed loads of our own line say so
  // without a lock. Both are hints kept under list_lock; a retirement that races with these
  // loads is seen by the next poll().
  if (me.pending.load(Order::relaxed) != 0 || me.open_pages.load(Order::relaxed) != 0)
    ran = poll_own(me, budget);
  // Offline CPUs don't poll; whoever does, helps them (their batches were sealed when they
  // went offline, or at once by retire_page() while offline). try_lock only: poll() must not
  // wait.
  const unsigned n = platform_.cpu_count();
  for (unsigned i = 0; i < n && ran < budget; i++) {
    CpuState& o = cpus_[i];
    if (&o == &me || o.online.load(Order::relaxed) != 0 || o.pending.load(Order::relaxed) == 0)
      continue;
    if (o.run_lock.try_lock()) {
      ran += run_ready(o, budget - ran, true);
      o.run_lock.unlock();
    }
  }
  return ran;
}

void Epoch::synchronize() {
  const CpuState& me = self();
  MMU_ASSERT(me.nesting.load(Order::relaxed) == 0);       // would wait for itself
  MMU_ASSERT(me.in_callbacks.load(Order::relaxed) == 0);  // callbacks must not block
  const uint64_t target = stamp() + 2;
  // Acquire: pairs with the release CAS in try_advance(), so that the caller's frees come
  // after the readers' reads (step 5).
  while (global_epoch_.load(Order::acquire) < target) {
    if (!try_advance()) platform_.cpu_relax();
  }
}

void Epoch::barrier() {
  const CpuState& me = self();
  MMU_ASSERT(me.nesting.load(Order::relaxed) == 0);
  MMU_ASSERT(me.in_callbacks.load(Order::relaxed) == 0);
  const unsigned n = platform_.cpu_count();
  // Partly filled page batches hold retirements too: queue them, so that they are stamped
  // no later than `target`.
  for (unsigned i = 0; i < n; i++) {
    SpinLockGuard l(cpus_[i].list_lock);
    seal_batch_locked(cpus_[i]);
  }
  // Every callback queued before this point carries a stamp <= target (stamps are read from
  // G under list_lock, G only grows, and a queueing that happens before us is ordered before
  // our load by coherence).
  const uint64_t target = stamp();
  // Acquire: as in synchronize().
  while (global_epoch_.load(Order::acquire) < target + 2) {
    if (!try_advance()) platform_.cpu_relax();
  }
  // All of them are ready now, and they are a prefix of each list. Taking run_lock waits for
  // anyone already running some of them; then we run the rest ourselves.
  for (unsigned i = 0; i < n; i++) {
    CpuState& c = cpus_[i];
    c.run_lock.lock();
    run_ready(c, kUnlimited, false);
    c.run_lock.unlock();
  }
}

uint64_t Epoch::current_epoch() const { return global_epoch_.load(Order::relaxed); }

uint64_t Epoch::pending() const {
  uint64_t sum = 0;
  const unsigned n = platform_.cpu_count();
  for (unsigned i = 0; i < n; i++) sum += cpus_[i].pending.load(Order::relaxed);
  return sum;
}

uint64_t Epoch::pending_pages() const { return pending_pages_.load(Order::relaxed); }

}  // namespace mmu
