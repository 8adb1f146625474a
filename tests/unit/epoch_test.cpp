// Single-threaded semantics of mmu/epoch.h. One host thread plays several CPUs by switching its
// CPU id with hvtest::HostCpu scopes, so "CPU 1 is inside a read-side section" is a state we
// can set up exactly and hold while CPU 0 retires, polls and checks.
#include <catch2/catch.hpp>
#include <vector>

#include "mmu/epoch.h"
#include "tests/host/host_platform.h"

namespace {

// A callback that counts its runs and records their order.
struct Counted {
  mmu::EpochCallback cb;  // first member: the callback gets back to the object
  int id = 0;
  std::vector<int>* log = nullptr;
};

void counted_fn(mmu::EpochCallback* cb) {
  auto* c = reinterpret_cast<Counted*>(cb);
  c->log->push_back(c->id);
}

// Enter / leave a read-side section as CPU `cpu`.
void read_lock_as(mmu::Epoch& e, unsigned cpu) {
  hvtest::HostCpu as(cpu);
  e.read_lock();
}
void read_unlock_as(mmu::Epoch& e, unsigned cpu) {
  hvtest::HostCpu as(cpu);
  e.read_unlock();
}

}  // namespace

TEST_CASE("epoch: read-side sections nest", "[epoch]") {
  hvtest::HostPlatform p(4);
  mmu::Epoch e(p);
  REQUIRE_FALSE(e.in_read_section());
  e.read_lock();
  e.read_lock();
  REQUIRE(e.in_read_section());
  e.read_unlock();
  REQUIRE(e.in_read_section());  // still inside the outer section
  {
    hvtest::HostCpu other(1);
    REQUIRE_FALSE(e.in_read_section());  // per CPU
  }
  e.read_unlock();
  REQUIRE_FALSE(e.in_read_section());
  {
    mmu::EpochReadGuard g(e);
    REQUIRE(e.in_read_section());
  }
  REQUIRE_FALSE(e.in_read_section());
}

TEST_CASE("epoch: a nested inner section does not end the protection", "[epoch]") {
  hvtest::HostPlatform p(2);
  mmu::Epoch e(p);
  std::vector<int> log;
  Counted c;
  c.id = 1;
  c.log = &log;
  read_lock_as(e, 1);
  read_lock_as(e, 1);
  e.retire(&c.cb, counted_fn);
  read_unlock_as(e, 1);  // inner unlock: CPU 1 is still reading
  for (int i = 0; i < 10; i++) e.poll(100);
  REQUIRE(log.empty());
  read_unlock_as(e, 1);
  REQUIRE(e.poll(100) == 1);
  REQUIRE(log.size() == 1);
}

TEST_CASE("epoch: a callback waits for readers inside, runs once they left", "[epoch]") {
  hvtest::HostPlatform p(4);
  mmu::Epoch e(p);
  std::vector<int> log;
  Counted c;
  c.id = 7;
  c.log = &log;

  // CPUs 1..3 are inside sections that began before the retire.
  for (unsigned cpu = 1; cpu < 4; cpu++) read_lock_as(e, cpu);
  const uint64_t epoch_before = e.current_epoch();
  e.retire(&c.cb, counted_fn);
  REQUIRE(e.pending() == 1);

  // However often CPU 0 polls, the callback must not run while any of them is inside, and the
  // epoch cannot run away from the oldest reader (it moves at most one step).
  for (unsigned leaving = 1; leaving < 4; leaving++) {
    for (int i = 0; i < 10; i++) REQUIRE(e.poll(100) == 0);
    e.quiescent();
    REQUIRE(log.empty());
    REQUIRE(e.current_epoch() <= epoch_before + 1);
    read_unlock_as(e, leaving);
  }
  // Every CPU reports a quiescent state (the kernel's VM exit/entry boundary).
  for (unsigned cpu = 0; cpu < 4; cpu++) {
    hvtest::HostCpu as(cpu);
    e.quiescent();
  }
  REQUIRE(e.poll(100) == 1);
  REQUIRE(log == std::vector<int>{7});
  REQUIRE(e.pending() == 0);
  REQUIRE(e.current_epoch() >= epoch_before + 2);
}

TEST_CASE("epoch: a reader that enters after the retire does not see a freed object", "[epoch]") {
  // The callback must not run while the section that began before the retire is open, however
  // often the other CPU polls (a retire() that ran fn at once, or a poll() that ignored the
  // reader, fails here). A section that starts after the epoch has moved past the callback's
  // stamp cannot have seen the object (it was unlinked before the retire) and must not hold
  // the callback back: it runs while that later section is still open.
  hvtest::HostPlatform p(2);
  mmu::Epoch e(p);
  std::vector<int> log;
  Counted c;
  c.id = 1;
  c.log = &log;
  read_lock_as(e, 1);
  const uint64_t stamp = e.current_epoch();
  e.retire(&c.cb, counted_fn);
  REQUIRE(log.empty());  // retire() queues, never runs
  for (int i = 0; i < 10; i++) {
    REQUIRE(e.poll(100) == 0);
    e.quiescent();
  }
  REQUIRE(log.empty());  // the section that began before the retire is still open
  REQUIRE(e.current_epoch() == stamp + 1);  // one step, not the two the callback needs
  read_unlock_as(e, 1);
  read_lock_as(e, 1);  // a new section: it pins stamp + 1
  unsigned ran = 0;
  for (int i = 0; i < 3 && ran == 0; i++) ran += e.poll(100);
  REQUIRE(ran == 1);
  REQUIRE(log.size() == 1);
  read_unlock_as(e, 1);
}

TEST_CASE("epoch: a reader that pinned a stale epoch holds back callbacks retired later",
          "[epoch]") {
  // The interleaving of step 2 in epoch.cpp: CPU 1 loads the global epoch G, is delayed while
  // G advances twice, and then pins the G it loaded. It may already have loaded a pointer to
  // an object that CPU 0 unlinks and retires now (stamp G + 2): that callback must not run
  // while the section is open, so the epoch must not pass G + 2 (an advancer that only looked
  // for readers pinned at exactly g - 1, say, would let it run). Real threads produce this
  // window rarely and no sanitizer forces it; read_lock_pinned_for_test() does.
  hvtest::HostPlatform p(2);
  mmu::Epoch e(p);
  std::vector<int> log;
  Counted c;
  c.id = 5;
  c.log = &log;
  const uint64_t observed = e.current_epoch();  // CPU 1's load of G
  e.synchronize();                               // G advances twice meanwhile
  REQUIRE(e.current_epoch() == observed + 2);
  {
    hvtest::HostCpu as(1);
    e.read_lock_pinned_for_test(observed);  // ... and then it pins the stale value
    REQUIRE(e.in_read_section());
  }
  e.retire(&c.cb, counted_fn);  // stamped observed + 2: ready at observed + 4
  for (int i = 0; i < 20; i++) {
    REQUIRE(e.poll(100) == 0);
    e.quiescent();
  }
  REQUIRE(log.empty());
  // The reader is older than every epoch since: no advance at all while it reads.
  REQUIRE(e.current_epoch() == observed + 2);
  read_unlock_as(e, 1);
  unsigned ran = 0;
  for (int i = 0; i < 3 && ran == 0; i++) ran += e.poll(100);
  REQUIRE(ran == 1);
  REQUIRE(log == std::vector<int>{5});
}

TEST_CASE("epoch: poll honours its budget and runs callbacks in retire order", "[epoch]") {
  hvtest::HostPlatform p(2);
  mmu::Epoch e(p);
  std::vector<int> log;
  std::vector<Counted> objs(10);
  for (int i = 0; i < 10; i++) {
    objs[i].id = i;
    objs[i].log = &log;
    e.retire(&objs[i].cb, counted_fn);
  }
  REQUIRE(e.pending() == 10);
  REQUIRE(e.poll(0) == 0);
  REQUIRE(e.poll(3) == 3);
  REQUIRE(log.size() == 3);
  REQUIRE(e.pending() == 7);
  REQUIRE(e.poll(3) == 3);
  REQUIRE(e.poll(100) == 4);
  REQUIRE(e.poll(100) == 0);
  REQUIRE(e.pending() == 0);
  REQUIRE(log == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
}

TEST_CASE("epoch: poll runs only the current CPU's callbacks", "[epoch]") {
  hvtest::HostPlatform p(2);
  mmu::Epoch e(p);
  std::vector<int> log;
  Counted c;
  c.id = 1;
  c.log = &log;
  {
    hvtest::HostCpu as(1);
    e.retire(&c.cb, counted_fn);
  }
  for (int i = 0; i < 5; i++) REQUIRE(e.poll(100) == 0);  // CPU 1 is online: its own job
  REQUIRE(log.empty());
  {
    hvtest::HostCpu as(1);
    REQUIRE(e.poll(100) == 1);
  }
  REQUIRE(log.size() == 1);
}

TEST_CASE("epoch: barrier runs every CPU's callbacks", "[epoch]") {
  hvtest::HostPlatform p(4);
  {
    mmu::Epoch e(p);
    std::vector<int> log;
    std::vector<Counted> objs(8);
    std::vector<mmu::hpa_t> pages;
    for (unsigned i = 0; i < 8; i++) {
      hvtest::HostCpu as(i % 4);
      objs[i].id = static_cast<int>(i);
      objs[i].log = &log;
      e.retire(&objs[i].cb, counted_fn);
      const mmu::hpa_t pg = p.alloc_page();
      pages.push_back(pg);
      REQUIRE(e.retire_page(pg));
    }
    REQUIRE(e.pending() == 8);
    REQUIRE(e.pending_pages() == 8);
    {
      hvtest::HostCpu as(2);  // any CPU may call it
      e.barrier();
    }
    REQUIRE(log.size() == 8);
    REQUIRE(e.pending() == 0);
    REQUIRE(e.pending_pages() == 0);
    for (mmu::hpa_t pg : pages) REQUIRE_FALSE(p.is_live(pg));
    e.barrier();  // nothing left: returns at once
  }
  REQUIRE(p.live_pages() == 0);  // tracking pages given back too
  REQUIRE(p.errors() == 0);
}

TEST_CASE("epoch: synchronize waits out the epoch and works from any registered CPU", "[epoch]") {
  hvtest::HostPlatform p(4);
  mmu::Epoch e(p);
  const uint64_t before = e.current_epoch();
  {
    hvtest::HostCpu as(3);
    e.synchronize();
  }
  REQUIRE(e.current_epoch() >= before + 2);
  // A reader on another CPU that is outside its section does not hold it up.
  read_lock_as(e, 1);
  read_unlock_as(e, 1);
  e.synchronize();
  REQUIRE(e.current_epoch() >= before + 4);
}

TEST_CASE("epoch: offline or idle CPUs block nothing; their callbacks are run by others",
          "[epoch]") {
  hvtest::HostPlatform p(4);
  mmu::Epoch e(p);
  std::vector<int> log;
  std::vector<Counted> objs(3);
  for (int i = 0; i < 3; i++) {
    objs[i].id = i;
    objs[i].log = &log;
  }
  mmu::hpa_t pg = p.alloc_page();
  {
    // CPU 3 retires something, then goes idle: it will not poll for a while.
    hvtest::HostCpu as(3);
    e.retire(&objs[0].cb, counted_fn);
    REQUIRE(e.retire_page(pg));
    e.set_online(false);
    REQUIRE_FALSE(e.is_online(3));
  }
  {
    hvtest::HostCpu as(2);  // CPU 2 idles without ever reading
    e.set_online(false);
  }
  e.retire(&objs[1].cb, counted_fn);
  // CPU 0 alone drives the grace period and reclaims CPU 3's work (its page batch included).
  unsigned ran = 0;
  for (int i = 0; i < 3; i++) ran += e.poll(100);
  REQUIRE(ran == 3);
  REQUIRE(log.size() == 2);
  REQUIRE_FALSE(p.is_live(pg));
  REQUIRE(e.pending() == 0);
  REQUIRE(e.pending_pages() == 0);
  {
    // Coming back online: its own callbacks are its own job again.
    hvtest::HostCpu as(3);
    e.set_online(true);
    e.retire(&objs[2].cb, counted_fn);
  }
  for (int i = 0; i < 3; i++) REQUIRE(e.poll(100) == 0);
  {
    hvtest::HostCpu as(3);
    REQUIRE(e.poll(100) == 1);
  }
}

TEST_CASE("epoch: retire_page keeps pages until the grace period, in batches", "[epoch]") {
  hvtest::HostPlatform p(2);
  {
    mmu::Epoch e(p);
    const unsigned kPages = mmu::Epoch::kPagesPerBatch * 2 + 10;  // three batches
    std::vector<mmu::hpa_t> pages;
    for (unsigned i = 0; i < kPages; i++) pages.push_back(p.alloc_page());
    read_lock_as(e, 1);
    for (mmu::hpa_t pg : pages) REQUIRE(e.retire_page(pg));
    REQUIRE(e.pending_pages() == kPages);
    REQUIRE(e.pending() == 2);  // two full batches sealed, the third still open
    for (int i = 0; i < 5; i++) REQUIRE(e.poll(100) == 0);
    for (mmu::hpa_t pg : pages) REQUIRE(p.is_live(pg));  // the reader may still walk them
    read_unlock_as(e, 1);
    unsigned ran = 0;
    for (int i = 0; i < 4; i++) ran += e.poll(kPages);  // the budget counts pages
    REQUIRE(ran == kPages);  // poll sealed the partly filled batch, too
    REQUIRE(e.pending() == 0);
    for (mmu::hpa_t pg : pages) REQUIRE_FALSE(p.is_live(pg));
    REQUIRE(e.pending_pages() == 0);
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.check_quarantine() == 0);
  REQUIRE(p.errors() == 0);
}

TEST_CASE("epoch: retire_page reports running out of tracking memory", "[epoch]") {
  hvtest::HostPlatform p(2);
  {
    mmu::Epoch e(p);
    mmu::hpa_t a = p.alloc_page(), b = p.alloc_page();
    p.set_page_limit(p.live_pages());  // no more pages: no tracking page either
    REQUIRE_FALSE(e.retire_page(a));
    REQUIRE(p.is_live(a));  // still the caller's
    REQUIRE(e.pending_pages() == 0);
    p.set_page_limit(0);
    REQUIRE(e.retire_page(a));
    // The tracking page is recycled: once the first batch is done, retiring needs no memory.
    e.barrier();
    p.set_page_limit(p.live_pages());
    REQUIRE(e.retire_page(b));
    e.barrier();
    REQUIRE_FALSE(p.is_live(b));
    p.set_page_limit(0);
  }
  REQUIRE(p.live_pages() == 0);
}

TEST_CASE("epoch: callbacks may retire more work; destruction drains it all", "[epoch]") {
  hvtest::HostPlatform p(2);
  static std::vector<int>* s_log;
  std::vector<int> log;
  s_log = &log;
  struct Chained {
    mmu::EpochCallback cb;
    mmu::Epoch* e;
    Counted second;
  };
  Chained ch;
  ch.second.id = 2;
  ch.second.log = &log;
  {
    mmu::Epoch e(p);
    ch.e = &e;
    e.retire(&ch.cb, [](mmu::EpochCallback* cb) {
      auto* self = reinterpret_cast<Chained*>(cb);
      s_log->push_back(1);
      self->e->retire(&self->second.cb, counted_fn);
    });
    e.barrier();
    REQUIRE(log == std::vector<int>{1});
    REQUIRE(e.pending() == 1);
  }  // ~Epoch runs what is left
  REQUIRE(log == std::vector<int>{1, 2});
}

TEST_CASE("epoch: poll's budget counts pages and frees a batch in part", "[epoch]") {
  hvtest::HostPlatform p(2);
  {
    mmu::Epoch e(p);
    const unsigned kPages = mmu::Epoch::kPagesPerBatch;  // exactly one full, sealed batch
    std::vector<mmu::hpa_t> pages;
    for (unsigned i = 0; i < kPages; i++) pages.push_back(p.alloc_page());
    for (mmu::hpa_t pg : pages) REQUIRE(e.retire_page(pg));
    REQUIRE(e.pending() == 1);
    // Each poll frees exactly `budget` pages once the batch is ready (the first poll advances
    // the epoch twice itself, no reader holds it back), and the rest stays queued.
    REQUIRE(e.poll(10) == 10);
    REQUIRE(e.pending_pages() == kPages - 10);
    REQUIRE(e.pending() == 1);
    REQUIRE(e.poll(1) == 1);
    REQUIRE(e.pending_pages() == kPages - 11);
    unsigned freed = 11;
    while (e.pending_pages() != 0) {
      const unsigned n = e.poll(64);
      REQUIRE(n >= 1);
      REQUIRE(n <= 64);
      freed += n;
    }
    REQUIRE(freed == kPages);
    REQUIRE(e.pending() == 0);
    for (mmu::hpa_t pg : pages) REQUIRE_FALSE(p.is_live(pg));
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.errors() == 0);
}

TEST_CASE("epoch: poll keeps the page batch open until the epoch moves", "[epoch]") {
  hvtest::HostPlatform p(2);
  {
    mmu::Epoch e(p);
    const uint64_t base = p.live_pages();
    std::vector<mmu::hpa_t> pages;
    for (int i = 0; i < 8; i++) pages.push_back(p.alloc_page());
    // A reader pinned at the current epoch lets G move one step, not two: that keeps the
    // epoch still once it has moved, so that we can see when poll() closes the batch.
    read_lock_as(e, 1);
    const uint64_t g0 = e.current_epoch();
    REQUIRE(e.retire_page(pages[0]));
    const uint64_t with_tracking = p.live_pages();
    REQUIRE(with_tracking == base + 8 + 1);  // one tracking page
    REQUIRE(e.poll(100) == 0);               // same epoch: stays open (and nudges G)
    REQUIRE(e.pending() == 0);
    REQUIRE(e.current_epoch() == g0 + 1);
    REQUIRE(e.retire_page(pages[1]));  // joins the open batch: no new tracking page
    REQUIRE(p.live_pages() == with_tracking);
    REQUIRE(e.poll(100) == 0);  // the epoch moved since the first page: now it is closed
    REQUIRE(e.pending() == 1);
    REQUIRE(e.current_epoch() == g0 + 1);  // the reader holds it there
    for (int i = 2; i < 8; i++) REQUIRE(e.retire_page(pages[i]));  // a new batch
    REQUIRE(e.poll(100) == 0);
    REQUIRE(e.pending() == 1);  // opened at g0 + 1, which is still current
    read_unlock_as(e, 1);
    unsigned ran = 0;
    for (int i = 0; i < 6; i++) ran += e.poll(100);
    REQUIRE(ran == 8);
    REQUIRE(e.pending_pages() == 0);
    for (mmu::hpa_t pg : pages) REQUIRE_FALSE(p.is_live(pg));
    // Tracking pages are kept for reuse, a few per CPU, not given back on every batch.
    REQUIRE(p.live_pages() >= base + 1);
    REQUIRE(p.live_pages() <= base + 3);
  }
  REQUIRE(p.live_pages() == 0);
}

TEST_CASE("epoch: steady retiring reuses a few tracking pages", "[epoch]") {
  hvtest::HostPlatform p(2);
  {
    mmu::Epoch e(p);
    // Warm up, then count allocations: every retire_page() of the loop must reuse a
    // recycled tracking page (the loop's pages are allocated by us and not counted).
    std::vector<mmu::hpa_t> pages;
    for (int i = 0; i < 400; i++) pages.push_back(p.alloc_page());
    for (int i = 0; i < 40; i++) {
      REQUIRE(e.retire_page(pages[i]));
      e.poll(100);
    }
    const uint64_t allocs = p.pages_allocated_total();
    for (int i = 40; i < 400; i++) {
      REQUIRE(e.retire_page(pages[i]));
      e.poll(100);
    }
    REQUIRE(p.pages_allocated_total() == allocs);
    e.barrier();
    REQUIRE(e.pending_pages() == 0);
  }
  REQUIRE(p.live_pages() == 0);
}

TEST_CASE("epoch: pages retired by an offline CPU do not wait for it", "[epoch]") {
  hvtest::HostPlatform p(2);
  {
    mmu::Epoch e(p);
    const mmu::hpa_t a = p.alloc_page(), b = p.alloc_page();
    {
      hvtest::HostCpu as(1);
      e.set_online(false);
      REQUIRE(e.retire_page(a));  // e.g. a teardown step run from idle
      REQUIRE(e.retire_page(b));
      REQUIRE(e.pending() == 2);  // each closed at once: nobody would close it later
    }
    // CPU 0 alone reclaims them; CPU 1 never polls.
    unsigned ran = 0;
    for (int i = 0; i < 4; i++) ran += e.poll(100);
    REQUIRE(ran == 2);
    REQUIRE_FALSE(p.is_live(a));
    REQUIRE_FALSE(p.is_live(b));
    REQUIRE(e.pending_pages() == 0);
    hvtest::HostCpu as(1);
    e.set_online(true);
  }
  REQUIRE(p.live_pages() == 0);
}

TEST_CASE("epoch: with asymmetric fences only an advance that may succeed pays the heavy fence",
          "[epoch]") {
  // Readers pin with a compiler barrier only; try_advance() makes every CPU fence
  // (membarrier(2) here) before the scan that decides. A stale reader that is already visible
  // refuses the advance before that fence: a long section must not turn every quiescent()
  // into a membarrier() call.
  REQUIRE(hvtest::HostPlatform::membarrier_available());
  hvtest::HostPlatform p(2, hvtest::HostPlatform::Fences::asymmetric);
  REQUIRE(p.asymmetric_fences());
  mmu::Epoch e(p);
  const uint64_t g0 = e.current_epoch();
  // Sections fence nothing heavy, however many.
  for (int i = 0; i < 100; i++) {
    read_lock_as(e, 1);
    read_unlock_as(e, 1);
  }
  REQUIRE(p.heavy_fences() == 0);
  // A grace period: each advance that succeeds paid one heavy fence.
  e.synchronize();
  const uint64_t advances = e.current_epoch() - g0;
  REQUIRE(advances >= 1);
  REQUIRE(p.heavy_fences() >= advances);
  // CPU 1 reads from the current epoch: the next advance may succeed (it is pinned at g),
  // the one after sees it stale before fencing.
  read_lock_as(e, 1);
  Counted c;
  std::vector<int> log;
  c.id = 1;
  c.log = &log;
  e.retire(&c.cb, counted_fn);
  const uint64_t before = p.heavy_fences();
  for (int i = 0; i < 50; i++) e.quiescent();
  REQUIRE(e.current_epoch() == g0 + advances + 1);  // one step, then held by CPU 1
  REQUIRE(p.heavy_fences() == before + 1);          // the 49 refusals fenced nothing
  REQUIRE(log.empty());
  read_unlock_as(e, 1);
  unsigned ran = 0;
  for (int i = 0; i < 3 && ran == 0; i++) ran += e.poll(100);
  REQUIRE(ran == 1);
}

TEST_CASE("epoch: with symmetric fences nothing calls the heavy fence", "[epoch]") {
  hvtest::HostPlatform p(2, hvtest::HostPlatform::Fences::symmetric);
  REQUIRE_FALSE(p.asymmetric_fences());
  mmu::Epoch e(p);
  read_lock_as(e, 1);
  read_unlock_as(e, 1);
  e.synchronize();
  REQUIRE(p.heavy_fences() == 0);
}
