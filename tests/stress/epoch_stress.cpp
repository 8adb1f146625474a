// Real-thread stress of mmu/epoch.h.
//
// Readers enter read-side sections, load a published object (acquire) and check every word of
// its payload. Writers publish replacements (release) and retire the old objects, through
// retire() (a callback that frees the object's page) or retire_page(); a synchronizer replaces
// objects too but frees them itself after synchronize(), and calls barrier(). Freed pages are
// poisoned by the host platform, so a reader that still sees an object after its grace period
// ended reads poison and counts a failure; under ThreadSanitizer the free (the poisoning memset)
// would also race with the reader's plain loads and be reported.
//
// Every thread is a registered CPU. They stop at different times (random operation counts),
// to show that no thread depends on another one to keep polling.
//
// What this test cannot show: the store->load ordering of the scheme. ThreadSanitizer does not
// model store buffering, so it would not report a missing seq_cst fence (in read_lock(),
// stamp() or try_advance()), and these machines have too little real parallelism for the
// window to open by chance. The ordering argument, with the conditions it depends on, is
// written down at the top of mmu/epoch.cpp; the unit test "a reader that pinned a stale epoch"
// replays its key interleaving deterministically.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "mmu/epoch.h"
#include "tests/host/host_platform.h"
#include "tests/stress/stress_seed.h"

namespace {

constexpr unsigned kSlots = 8;
constexpr unsigned kPayload = 64;  // words checked by readers
constexpr uint64_t kMagic = 0x0B1EC7AB1E5EEDull;

// One object per page (the page is what gets poisoned on free). The EpochCallback sits in the
// object, which is allowed because readers never read its bytes: they read magic/serial/payload.
struct Obj {
  mmu::EpochCallback cb;
  hvtest::HostPlatform* platform;
  uint64_t magic;
  uint64_t serial;
  uint64_t payload[kPayload];
};
static_assert(sizeof(Obj) <= mmu::kPageSize);

uint64_t payload_word(uint64_t serial, unsigned i) { return serial * 0x9E3779B97F4A7C15ull + i; }

struct World {
  explicit World(unsigned cpus) : platform(cpus), epoch_storage(new mmu::Epoch(platform)),
                                  epoch(*epoch_storage) {}
  hvtest::HostPlatform platform;
  std::unique_ptr<mmu::Epoch> epoch_storage;
  mmu::Epoch& epoch;
  mmu::Atomic<Obj*> slots[kSlots];
  mmu::Atomic<uint64_t> next_serial{1};
  // Counters.
  mmu::Atomic<uint64_t> reads{0}, bad_reads{0}, publishes{0}, retired_cb{0}, retired_page{0},
      freed_cb{0}, sync_frees{0}, syncs{0}, barriers{0}, polled{0}, retire_page_failed{0};
};

Obj* make_obj(World& w) {
  const mmu::hpa_t pa = w.platform.alloc_page();
  if (pa == 0) {  // no page limit is set: cannot happen (and Catch2 is not thread-safe)
    std::fprintf(stderr, "epoch stress: out of pages\n");
    std::abort();
  }
  auto* o = new (w.platform.phys_to_virt(pa)) Obj;
  o->platform = &w.platform;
  o->magic = kMagic;
  o->serial = w.next_serial.fetch_add(1, mmu::Order::relaxed);
  for (unsigned i = 0; i < kPayload; i++) o->payload[i] = payload_word(o->serial, i);
  return o;
}

// Retire callback: the page goes back to the platform, which poisons it.
World* g_world = nullptr;
void free_obj(mmu::EpochCallback* cb) {
  auto* o = reinterpret_cast<Obj*>(cb);
  hvtest::HostPlatform* p = o->platform;
  g_world->freed_cb.fetch_add(1, mmu::Order::relaxed);
  p->free_page(p->virt_to_phys(o));
}

// Publish a fresh object in `slot` and return the one it replaced. Release: the new object's
// contents are visible to a reader whose acquire load in check_slot() sees the pointer.
Obj* replace(World& w, unsigned slot) {
  Obj* fresh = make_obj(w);
  Obj* old = w.slots[slot].exchange(fresh, mmu::Order::acq_rel);
  w.publishes.fetch_add(1, mmu::Order::relaxed);
  return old;
}

bool check_slot(World& w, unsigned slot) {
  // Acquire: pairs with the release in replace().
  const Obj* o = w.slots[slot].load(mmu::Order::acquire);
  bool ok = o->magic == kMagic;
  const uint64_t serial = o->serial;
  for (unsigned i = 0; ok && i < kPayload; i++) ok = o->payload[i] == payload_word(serial, i);
  return ok;
}

void reader(World& w, unsigned cpu, uint64_t seed, uint64_t ops) {
  hvtest::HostCpu as(cpu);
  hvtest::SplitMix rng(seed);
  for (uint64_t i = 0; i < ops; i++) {
    w.epoch.read_lock();
    const unsigned n = 1 + static_cast<unsigned>(rng.below(4));
    for (unsigned k = 0; k < n; k++) {
      const bool nested = rng.below(8) == 0;  // a nested section: same protection
      if (nested) w.epoch.read_lock();
      if (!check_slot(w, static_cast<unsigned>(rng.below(kSlots))))
        w.bad_reads.fetch_add(1, mmu::Order::relaxed);
      w.reads.fetch_add(1, mmu::Order::relaxed);
      if (nested) w.epoch.read_unlock();
    }
    w.epoch.read_unlock();
    // The kernel's safe points: a quiescent report, sometimes a bounded poll.
    w.epoch.quiescent();
    if (rng.below(16) == 0) w.polled.fetch_add(w.epoch.poll(4), mmu::Order::relaxed);
    if (rng.below(1024) == 0) {
      // Go idle for a moment: nobody has to wait for us, our leftovers are others' job.
      w.epoch.set_online(false);
      std::this_thread::yield();
      w.epoch.set_online(true);
    }
  }
}

void writer(World& w, unsigned cpu, uint64_t seed, uint64_t ops) {
  hvtest::HostCpu as(cpu);
  hvtest::SplitMix rng(seed);
  for (uint64_t i = 0; i < ops; i++) {
    Obj* old = replace(w, static_cast<unsigned>(rng.below(kSlots)));
    // Retire inside a read-side section now and then, as the MMU's zap paths do.
    const bool in_section = rng.below(4) == 0;
    if (in_section) w.epoch.read_lock();
    if (rng.below(2) == 0) {
      w.epoch.retire(&old->cb, free_obj);
      w.retired_cb.fetch_add(1, mmu::Order::relaxed);
    } else if (w.epoch.retire_page(w.platform.virt_to_phys(old))) {
      w.retired_page.fetch_add(1, mmu::Order::relaxed);
    } else {
      // No page limit is set, so a tracking page is always available; keep the page rather
      // than leak it, and let the test fail on the counter.
      w.retire_page_failed.fetch_add(1, mmu::Order::relaxed);
      if (in_section) w.epoch.read_unlock();
      w.epoch.synchronize();
      w.platform.free_page(w.platform.virt_to_phys(old));
      continue;
    }
    if (in_section) w.epoch.read_unlock();
    w.epoch.quiescent();
    w.polled.fetch_add(w.epoch.poll(static_cast<unsigned>(1 + rng.below(8))),
                       mmu::Order::relaxed);
  }
}

void synchronizer(World& w, unsigned cpu, uint64_t seed, uint64_t ops) {
  hvtest::HostCpu as(cpu);
  hvtest::SplitMix rng(seed);
  for (uint64_t i = 0; i < ops; i++) {
    if (rng.below(4) == 0) {
      w.epoch.barrier();
      w.barriers.fetch_add(1, mmu::Order::relaxed);
    } else {
      // The classic synchronous pattern: unpublish, wait a grace period, free directly.
      Obj* old = replace(w, static_cast<unsigned>(rng.below(kSlots)));
      w.epoch.synchronize();
      w.syncs.fetch_add(1, mmu::Order::relaxed);
      w.platform.free_page(w.platform.virt_to_phys(old));
      w.sync_frees.fetch_add(1, mmu::Order::relaxed);
    }
  }
}

uint64_t load(const mmu::Atomic<uint64_t>& a) { return a.load(mmu::Order::relaxed); }

}  // namespace

TEST_CASE("epoch stress: readers never see a reclaimed object", "[epoch][concurrency]") {
  const uint64_t seed = hvtest::stress_seed("epoch-stress");
  hvtest::SplitMix rng(seed);
  constexpr unsigned kCpus = 5;
  auto w = std::make_unique<World>(kCpus);
  g_world = w.get();
  for (unsigned s = 0; s < kSlots; s++) w->slots[s].store(make_obj(*w), mmu::Order::release);

  // Operation counts differ per thread, so threads finish at different times.
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> ts;
  ts.emplace_back(reader, std::ref(*w), 1u, rng.next(), 80000 + rng.below(80000));
  ts.emplace_back(reader, std::ref(*w), 2u, rng.next(), 80000 + rng.below(80000));
  ts.emplace_back(writer, std::ref(*w), 3u, rng.next(), 15000 + rng.below(15000));
  ts.emplace_back(writer, std::ref(*w), 4u, rng.next(), 15000 + rng.below(15000));
  ts.emplace_back(synchronizer, std::ref(*w), 0u, rng.next(), 400 + rng.below(800));
  for (auto& t : ts) t.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // Everyone is gone: reclaim the rest and the still published objects.
  w->epoch.barrier();
  CHECK(w->epoch.pending() == 0);
  CHECK(w->epoch.pending_pages() == 0);
  std::printf(
      "[epoch-stress] %.2fs: %llu reads (%llu bad), %llu publishes, %llu retire(), %llu "
      "retire_page(), %llu units run by poll (callbacks and batch pages), %llu synchronize(), "
      "%llu barrier(), final epoch %llu\n",
      secs, (unsigned long long)load(w->reads), (unsigned long long)load(w->bad_reads),
      (unsigned long long)load(w->publishes), (unsigned long long)load(w->retired_cb),
      (unsigned long long)load(w->retired_page), (unsigned long long)load(w->polled),
      (unsigned long long)load(w->syncs), (unsigned long long)load(w->barriers),
      (unsigned long long)w->epoch.current_epoch());
  CHECK(load(w->bad_reads) == 0);
  CHECK(load(w->freed_cb) == load(w->retired_cb));
  CHECK(load(w->reads) > 0);
  CHECK(load(w->syncs) > 0);
  for (unsigned s = 0; s < kSlots; s++) {
    Obj* o = w->slots[s].load(mmu::Order::relaxed);
    w->platform.free_page(w->platform.virt_to_phys(o));
  }
  CHECK(load(w->retire_page_failed) == 0);
  // Destroy the epoch (it gives back its tracking pages) before checking the accounting.
  w->epoch_storage.reset();
  hvtest::HostPlatform& p = w->platform;
  CHECK(p.live_pages() == 0);
  CHECK(p.check_quarantine() == 0);
  CHECK(p.errors() == 0);
  g_world = nullptr;
}
