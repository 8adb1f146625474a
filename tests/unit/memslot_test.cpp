// Memslot sets: validation, lookup, copy-on-write builders, page accounting, and lock-free
// readers racing a writer that keeps replacing the sets.
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mmu/memslot.h"
#include "progress_wait.h"
#include "tests/host/host_platform.h"
#include "tests/stress/stress_seed.h"

using mmu::Memslot;
using mmu::MemslotError;
using mmu::MemslotOp;
using mmu::Memslots;
using mmu::MemslotSet;

namespace {

// Test convention: a slot's backing is a function of its id, so a reader can tell a torn or
// stale slot from a real one.
mmu::hpa_t backing_for(uint32_t id) { return (uint64_t{id} + 1) << 32; }

Memslot slot(uint32_t id, mmu::gfn_t base, uint64_t npages, uint32_t as_id = 0) {
  Memslot s;
  s.id = id;
  s.as_id = as_id;
  s.base_gfn = base;
  s.npages = npages;
  s.backing_hpa = backing_for(id);
  s.max_level = 3;
  return s;
}

// Fixture: a platform, an epoch, the VM's memslots; apply() = prepare + publish + retire.
struct Vm {
  explicit Vm(unsigned cpus = 2, mmu::MemslotConfig cfg = {})
      : platform(cpus), epoch(new mmu::Epoch(platform)), slots(new Memslots(platform, *epoch, cfg)) {}
  ~Vm() {
    slots.reset();
    epoch.reset();
  }

  MemslotError apply(const MemslotOp& op) {
    mmu::SpinLockGuard g(slots->update_lock());
    const MemslotSet* next = nullptr;
    const MemslotError e = slots->prepare(op, next);
    if (e != MemslotError::ok) {
      REQUIRE(next == nullptr);  // untouched on error
      return e;
    }
    slots->retire(slots->publish(next));
    return e;
  }
  const MemslotSet* set(uint32_t as_id) {
    mmu::SpinLockGuard g(slots->update_lock());
    return slots->active_locked(as_id);
  }

  hvtest::HostPlatform platform;
  std::unique_ptr<mmu::Epoch> epoch;
  std::unique_ptr<Memslots> slots;
};

const Memslot* brute_find(const MemslotSet* set, mmu::gfn_t gfn) {
  if (set == nullptr) return nullptr;
  const Memslot* hit = nullptr;
  for (const Memslot& s : *set) {
    if (gfn >= s.base_gfn && gfn < s.base_gfn + s.npages) {
      if (hit != nullptr) return reinterpret_cast<const Memslot*>(1);  // two hits: overlap!
      hit = &s;
    }
  }
  return hit;
}

}  // namespace

TEST_CASE("memslot: every error has its own message", "[memslot]") {
  std::vector<std::string> seen;
  for (int e = 0; e <= static_cast<int>(MemslotError::unsupported); e++) {
    const char* msg = mmu::to_string(static_cast<MemslotError>(e));
    REQUIRE(msg != nullptr);
    REQUIRE(std::strstr(msg, "unknown memslot error") == nullptr);
    for (const auto& s : seen) REQUIRE(s != msg);
    seen.emplace_back(msg);
  }
  REQUIRE(std::string(mmu::to_string(static_cast<MemslotError>(200))) == "unknown memslot error");
}

TEST_CASE("memslot: create validates its input", "[memslot]") {
  mmu::MemslotConfig cfg;
  cfg.maxphyaddr = 40;  // gfn limit 2^28
  Vm vm(2, cfg);
  const uint64_t pages_before = vm.platform.live_pages();
  REQUIRE(vm.apply(MemslotOp::create(slot(1, 0x100, 0x100))) == MemslotError::ok);
  const uint64_t pages_one_set = vm.platform.live_pages();

  Memslot s = slot(2, 0x1000, 0x10);
  SECTION("zero size") {
    s.npages = 0;
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::zero_size);
  }
  SECTION("misaligned backing") {
    s.backing_hpa += 0x800;
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::misaligned);
  }
  SECTION("gfn range wraps") {
    s.base_gfn = ~uint64_t{0} - 4;
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::gfn_wraps);
  }
  SECTION("gfn range beyond MAXPHYADDR") {
    s.base_gfn = (uint64_t{1} << 28) - 8;  // ends 8 pages past the limit
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::too_large);
    s.base_gfn = (uint64_t{1} << 28) - 0x10;  // ends exactly at the limit: fine
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::ok);
  }
  SECTION("backing beyond MAXPHYADDR") {
    s.backing_hpa = (uint64_t{1} << 40) - 0x8000;  // 8 pages left, 16 needed
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::too_large);
  }
  SECTION("unknown flags") {
    s.flags = 0x10;
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::bad_flags);
  }
  SECTION("dirty-log flag without the MMU's log, or with read-only") {
    s.flags = Memslot::kDirtyLog;  // the memslot layer alone has no log to give it
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::bad_flags);
    s.flags = Memslot::kDirtyLog | Memslot::kReadOnly;
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::bad_flags);
    s.flags = Memslot::kReadOnly;
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::ok);
  }
  SECTION("bad address space") {
    s.as_id = 2;
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::bad_address_space);
    REQUIRE(vm.apply(MemslotOp::remove(7, 1)) == MemslotError::bad_address_space);
  }
  SECTION("bad max_level") {
    s.max_level = 0;
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::bad_level);
    s.max_level = 4;
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::bad_level);
  }
  SECTION("duplicate id") {
    s.id = 1;
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::duplicate_id);
    s.as_id = 1;  // ids are per address space
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::ok);
  }
  SECTION("overlap, in every shape; adjacency is fine") {
    // Existing: [0x100, 0x200).
    const mmu::gfn_t shapes[][2] = {{0x100, 0x100}, {0x80, 0x81},  {0x1ff, 0x10},
                                    {0x150, 0x10},  {0x0, 0x1000}, {0x180, 0x100}};
    for (const auto& sh : shapes) {
      s.base_gfn = sh[0];
      s.npages = sh[1];
      INFO("base " << sh[0] << " npages " << sh[1]);
      REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::overlap);
    }
    s.base_gfn = 0x80;
    s.npages = 0x80;  // ends where the existing one starts
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::ok);
    s.id = 3;
    s.base_gfn = 0x200;  // starts where it ends
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::ok);
  }
  SECTION("too many") {
    for (uint32_t i = 2; i <= MemslotSet::kMaxMemslots; i++)
      REQUIRE(vm.apply(MemslotOp::create(slot(i, 0x1000 + 0x10 * i, 0x10))) == MemslotError::ok);
    REQUIRE(vm.set(0)->size() == MemslotSet::kMaxMemslots);
    REQUIRE(vm.apply(MemslotOp::create(slot(100, 0x100000, 1))) == MemslotError::too_many);
  }
  SECTION("out of memory") {
    vm.platform.set_page_limit(vm.platform.live_pages());
    REQUIRE(vm.apply(MemslotOp::create(s)) == MemslotError::out_of_memory);
    REQUIRE(vm.apply(MemslotOp::remove(0, 1)) == MemslotError::out_of_memory);
    REQUIRE(vm.apply(MemslotOp::move(0, 1, 0x5000)) == MemslotError::out_of_memory);
    REQUIRE(vm.apply(MemslotOp::set_flags(0, 1, 0)) == MemslotError::out_of_memory);
    vm.platform.set_page_limit(0);
    REQUIRE(vm.set(0)->size() == 1);  // nothing changed
  }
  // Failures allocate nothing; a success replaced a set, and the old one went back after its
  // grace period: one page per address space that has slots is all that is left.
  vm.epoch->barrier();
  const uint64_t sets = (vm.set(0) != nullptr) + (vm.set(1) != nullptr);
  REQUIRE(vm.platform.live_pages() - pages_before == sets);
  REQUIRE(pages_one_set - pages_before == 1);
  REQUIRE(vm.set(0)->check_invariants(cfg));
}

TEST_CASE("memslot: remove, move and set_flags of a missing slot", "[memslot]") {
  Vm vm;
  REQUIRE(vm.apply(MemslotOp::remove(0, 1)) == MemslotError::no_such_slot);  // empty space
  REQUIRE(vm.apply(MemslotOp::create(slot(1, 0x100, 0x10))) == MemslotError::ok);
  REQUIRE(vm.apply(MemslotOp::remove(0, 2)) == MemslotError::no_such_slot);
  REQUIRE(vm.apply(MemslotOp::move(0, 2, 0x400)) == MemslotError::no_such_slot);
  REQUIRE(vm.apply(MemslotOp::set_flags(0, 2, 0)) == MemslotError::no_such_slot);
  REQUIRE(vm.apply(MemslotOp::remove(1, 1)) == MemslotError::no_such_slot);  // other space
  REQUIRE(vm.apply(MemslotOp::set_flags(0, 1, 0x40)) == MemslotError::bad_flags);
  REQUIRE(vm.apply(MemslotOp::set_flags(0, 1, Memslot::kDirtyLog)) == MemslotError::bad_flags);
}

TEST_CASE("memslot: move, remove and set_flags build new sets, old ones stay intact",
          "[memslot]") {
  Vm vm;
  REQUIRE(vm.apply(MemslotOp::create(slot(1, 0x100, 0x10))) == MemslotError::ok);
  REQUIRE(vm.apply(MemslotOp::create(slot(2, 0x200, 0x20))) == MemslotError::ok);
  REQUIRE(vm.apply(MemslotOp::create(slot(3, 0x300, 0x30))) == MemslotError::ok);
  const MemslotSet* before = vm.set(0);
  REQUIRE(before->generation() == 3);

  mmu::SpinLockGuard g(vm.slots->update_lock());
  const MemslotSet* moved = nullptr;
  // Move slot 1 past slot 3: the order changes, the backing stays.
  REQUIRE(vm.slots->prepare(MemslotOp::move(0, 1, 0x1000), moved) == MemslotError::ok);
  REQUIRE(moved->generation() == 4);
  REQUIRE(moved->size() == 3);
  REQUIRE(moved->at(0).id == 2);
  REQUIRE(moved->at(2).id == 1);
  const Memslot* m = moved->find(0x1005);
  REQUIRE(m != nullptr);
  REQUIRE(m->id == 1);
  REQUIRE(m->npages == 0x10);
  REQUIRE(m->backing_hpa == backing_for(1));
  REQUIRE(m->gfn_to_hpa(0x1005) == backing_for(1) + 5 * mmu::kPageSize);
  REQUIRE(moved->find(0x105) == nullptr);
  // The published set is untouched until publish().
  REQUIRE(vm.slots->active_locked(0) == before);
  REQUIRE(before->find(0x105)->id == 1);
  REQUIRE(before->find(0x1005) == nullptr);

  const MemslotSet* old = vm.slots->publish(moved);
  REQUIRE(old == before);
  REQUIRE(vm.slots->active_locked(0) == moved);
  REQUIRE(old->find(0x105)->id == 1);  // still readable until retired
  vm.slots->retire(old);

  // A move may overlap the slot's own old range, not another's.
  const MemslotSet* next = nullptr;
  REQUIRE(vm.slots->prepare(MemslotOp::move(0, 2, 0x208), next) == MemslotError::ok);
  vm.slots->retire(vm.slots->publish(next));
  REQUIRE(vm.slots->prepare(MemslotOp::move(0, 2, 0x2f0), next) == MemslotError::overlap);
  REQUIRE(vm.slots->prepare(MemslotOp::move(0, 2, ~uint64_t{0} - 1), next) ==
          MemslotError::gfn_wraps);

  REQUIRE(vm.slots->prepare(MemslotOp::set_flags(0, 3, Memslot::kReadOnly), next) ==
          MemslotError::ok);
  REQUIRE(next->find_id(3)->read_only());
  REQUIRE_FALSE(vm.slots->active_locked(0)->find_id(3)->read_only());
  REQUIRE(next->find_id(3)->base_gfn == 0x300);
  vm.slots->retire(vm.slots->publish(next));

  REQUIRE(vm.slots->prepare(MemslotOp::remove(0, 2), next) == MemslotError::ok);
  REQUIRE(next->size() == 2);
  REQUIRE(next->find_id(2) == nullptr);
  REQUIRE(next->find(0x210) == nullptr);
  // Not published after all: discard it.
  vm.slots->discard(next);
  REQUIRE(vm.slots->active_locked(0)->find_id(2) != nullptr);
  REQUIRE(vm.slots->active_locked(0)->check_invariants(vm.slots->config()));
}

TEST_CASE("memslot: address spaces are independent", "[memslot]") {
  Vm vm;
  REQUIRE(vm.apply(MemslotOp::create(slot(1, 0x100, 0x10, 0))) == MemslotError::ok);
  REQUIRE(vm.apply(MemslotOp::create(slot(1, 0x100, 0x10, 1))) == MemslotError::ok);
  REQUIRE(vm.apply(MemslotOp::move(1, 1, 0x800)) == MemslotError::ok);
  mmu::EpochReadGuard r(*vm.epoch);
  REQUIRE(vm.slots->find(0, 0x105) != nullptr);
  REQUIRE(vm.slots->find(1, 0x105) == nullptr);
  REQUIRE(vm.slots->find(1, 0x805) != nullptr);
  REQUIRE(vm.slots->find(2, 0x105) == nullptr);  // no such space: no slot, no crash
  REQUIRE(vm.slots->active(1)->as_id() == 1);
}

TEST_CASE("memslot: lookup agrees with a brute-force scan on random sets", "[memslot]") {
  const uint64_t seed = hvtest::stress_seed("memslot-lookup");
  hvtest::SplitMix rng(seed);
  Vm vm;
  uint64_t lookups = 0, hits = 0, ok_ops = 0;
  for (int round = 0; round < 300; round++) {
    // A random change, valid or not.
    const uint32_t id = static_cast<uint32_t>(rng.below(80));
    switch (rng.below(4)) {
      case 0:
      case 1: {
        const MemslotError e = vm.apply(MemslotOp::create(
            slot(id, rng.below(1 << 14), 1 + rng.below(rng.below(2) ? 8 : 700))));
        ok_ops += e == MemslotError::ok;
        break;
      }
      case 2: ok_ops += vm.apply(MemslotOp::remove(0, id)) == MemslotError::ok; break;
      default: ok_ops += vm.apply(MemslotOp::move(0, id, rng.below(1 << 14))) == MemslotError::ok;
    }
    const MemslotSet* set = vm.set(0);
    if (set == nullptr) continue;
    REQUIRE(set->check_invariants(vm.slots->config()));
    // Probe random gfns and every slot's edges.
    std::vector<mmu::gfn_t> probes;
    for (int i = 0; i < 64; i++) probes.push_back(rng.below((1 << 14) + 800));
    for (const Memslot& s : *set) {
      probes.push_back(s.base_gfn);
      probes.push_back(s.base_gfn - 1);
      probes.push_back(s.end_gfn() - 1);
      probes.push_back(s.end_gfn());
    }
    for (mmu::gfn_t gfn : probes) {
      const Memslot* want = brute_find(set, gfn);
      REQUIRE(want != reinterpret_cast<const Memslot*>(1));
      REQUIRE(set->find(gfn) == want);
      lookups++;
      hits += want != nullptr;
    }
    for (const Memslot& s : *set) REQUIRE(set->find_id(s.id) == &s);
    vm.epoch->poll(16);
  }
  std::printf("[memslot-lookup] %llu successful changes, %llu lookups, %llu hits\n",
              (unsigned long long)ok_ops, (unsigned long long)lookups,
              (unsigned long long)hits);
  REQUIRE(ok_ops > 50);
  REQUIRE(hits > 0);
  REQUIRE(hits < lookups);
}

TEST_CASE("memslot: max_mapping_level respects slot edges and backing congruence", "[memslot]") {
  Memslot s;
  s.base_gfn = 0x200;        // 2 MiB aligned
  s.npages = 0x400 + 0x10;   // two 2M pages and a bit
  s.backing_hpa = 0x40000000;  // 1 GiB aligned: congruent mod 2M, not mod 1G
  s.max_level = 3;
  REQUIRE(s.max_mapping_level(0x200) == 2);
  REQUIRE(s.max_mapping_level(0x5ff) == 2);
  REQUIRE(s.max_mapping_level(0x600) == 1);  // the tail 2M page is not wholly inside
  s.max_level = 1;
  REQUIRE(s.max_mapping_level(0x200) == 1);  // the backing allows no more
  s.max_level = 2;
  s.backing_hpa += mmu::kPageSize;  // no longer congruent
  REQUIRE(s.max_mapping_level(0x200) == 1);
  s.base_gfn = 0;
  s.npages = uint64_t{1} << 19;  // 2 GiB from gfn 0, backing at 1 GiB
  s.backing_hpa = uint64_t{1} << 30;
  s.max_level = 3;
  REQUIRE(s.max_mapping_level(0x40000) == 3);
  s.backing_hpa += uint64_t{1} << 21;  // congruent mod 2M only
  REQUIRE(s.max_mapping_level(0x40000) == 2);
}

TEST_CASE("memslot: every page goes back", "[memslot]") {
  hvtest::HostPlatform platform(2);
  {
    mmu::Epoch epoch(platform);
    Memslots slots(platform, epoch);
    for (uint32_t i = 0; i < 20; i++) {
      mmu::SpinLockGuard g(slots.update_lock());
      const MemslotSet* next = nullptr;
      REQUIRE(slots.prepare(MemslotOp::create(slot(i, 0x100 * i, 0x10, i % 2)), next) ==
              MemslotError::ok);
      slots.retire(slots.publish(next));
    }
    REQUIRE(platform.live_pages() > 2);
    epoch.barrier();
    REQUIRE(platform.live_pages() == 2);  // one set per address space
  }
  REQUIRE(platform.live_pages() == 0);
  REQUIRE(platform.check_quarantine() == 0);
  REQUIRE(platform.errors() == 0);
}

// Readers look gfns up lock-free while a writer replaces the sets as fast as it can. A reader
// checks that the set it sees is whole (sorted, non-overlapping, fields valid, generations
// never going back) and that each slot is one that was really created (backing matches id).
// A set freed too early has been poisoned by the host platform and fails those checks.
TEST_CASE("memslot: lock-free readers versus a writer replacing sets",
          "[memslot][concurrency]") {
  const uint64_t seed = hvtest::stress_seed("memslot-concurrency");
  constexpr unsigned kCpus = 4;
  hvtest::HostPlatform platform(kCpus);
  mmu::Atomic<uint64_t> bad{0}, lookups{0}, hits{0}, changes{0};
  {
    mmu::Epoch epoch(platform);
    Memslots slots(platform, epoch);
    mmu::Atomic<int> stop{0};

    auto reader = [&](unsigned cpu) {
      hvtest::HostCpu as(cpu);
      hvtest::SplitMix rng(seed + cpu);
      uint64_t last_gen[Memslots::kAddressSpaces] = {0, 0};
      while (!stop.load(mmu::Order::relaxed)) {
        [&] {
          mmu::EpochReadGuard g(epoch);
          const uint32_t as_id = static_cast<uint32_t>(rng.below(2));
          const MemslotSet* set = slots.active(as_id);
          if (set == nullptr) return;
          if (!set->check_invariants(slots.config()) || set->as_id() != as_id ||
              set->generation() < last_gen[as_id]) {
            bad.fetch_add(1, mmu::Order::relaxed);
            return;
          }
          last_gen[as_id] = set->generation();
          for (int i = 0; i < 16; i++) {
            const mmu::gfn_t gfn = rng.below(1 << 12);
            const Memslot* s = set->find(gfn);
            lookups.fetch_add(1, mmu::Order::relaxed);
            if (s != brute_find(set, gfn)) bad.fetch_add(1, mmu::Order::relaxed);
            if (s == nullptr) continue;
            hits.fetch_add(1, mmu::Order::relaxed);
            if (!s->contains(gfn) || s->backing_hpa != backing_for(s->id))
              bad.fetch_add(1, mmu::Order::relaxed);
          }
        }();
        epoch.quiescent();
        if (rng.below(8) == 0) epoch.poll(4);
      }
    };
    std::vector<std::thread> readers;
    for (unsigned cpu = 1; cpu < kCpus; cpu++) readers.emplace_back(reader, cpu);

    bool starved = false;  // the readers did no lookups within kProgressGiveUp
    {
      hvtest::HostCpu as(0);
      hvtest::SplitMix rng(seed);
      for (int i = 0; i < 20000; i++) {
        // A loaded host may give the readers no core before the changes end: every 1024, wait for 256 lookups.
        if (i % 1024 == 1023) {
          const uint64_t l0 = lookups.load(mmu::Order::relaxed);
          if (!hvtest::wait_for_progress([&] { return lookups.load(mmu::Order::relaxed) >= l0 + 256; })) {
            starved = true;
            break;
          }
        }
        const uint32_t as_id = static_cast<uint32_t>(rng.below(2));
        const uint32_t id = static_cast<uint32_t>(rng.below(48));
        MemslotOp op;
        switch (rng.below(5)) {
          case 0:
          case 1: op = MemslotOp::create(slot(id, rng.below(1 << 12), 1 + rng.below(128), as_id)); break;
          case 2: op = MemslotOp::remove(as_id, id); break;
          case 3: op = MemslotOp::move(as_id, id, rng.below(1 << 12)); break;
          default: op = MemslotOp::set_flags(as_id, id, rng.below(2) ? Memslot::kReadOnly : 0);
        }
        mmu::SpinLockGuard g(slots.update_lock());
        const MemslotSet* next = nullptr;
        if (slots.prepare(op, next) == MemslotError::ok) {
          slots.retire(slots.publish(next));
          changes.fetch_add(1, mmu::Order::relaxed);
        }
        epoch.poll(8);
      }
    }
    stop.store(1, mmu::Order::relaxed);
    for (auto& t : readers) t.join();
    if (starved) FAIL_CHECK("the readers did no lookups for 30 s while the writer waited for them");
    epoch.barrier();
    REQUIRE(platform.live_pages() <= 2);
  }
  std::printf("[memslot-concurrency] %llu set changes, %llu lookups (%llu hits), %llu bad\n",
              (unsigned long long)changes.load(mmu::Order::relaxed),
              (unsigned long long)lookups.load(mmu::Order::relaxed),
              (unsigned long long)hits.load(mmu::Order::relaxed),
              (unsigned long long)bad.load(mmu::Order::relaxed));
  CHECK(bad.load(mmu::Order::relaxed) == 0);
  CHECK(hits.load(mmu::Order::relaxed) > 0);
  CHECK(changes.load(mmu::Order::relaxed) > 1000);
  CHECK(platform.live_pages() == 0);
  CHECK(platform.check_quarantine() == 0);
  CHECK(platform.errors() == 0);
}
