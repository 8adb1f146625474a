// Pre-fault (Mmu::prefault) and fault-around (MmuConfig::fault_around): levels chosen, bounded
// work and resume, read-only slots, holes, races with invalidations (single-threaded, then real
// threads under the "[concurrency]" tag), fault-around counts and boundaries.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/host/mmu_fixture.h"
#include "tests/host/tree_census.h"
#include "tests/stress/stress_seed.h"

using namespace mmu;
using hvtest::HostPlatform;
using hvtest::kGiB;
using hvtest::kPagesPer1G;
using hvtest::kPagesPer2M;
using hvtest::TestVcpu;
using hvtest::TestVm;

namespace {
constexpr unsigned kR = spte::kAccRead, kW = spte::kAccWrite;

// Prefault [start, end) to the end, reloading the root when asked; returns the calls made.
unsigned prefault_all(TestVm& vm, VcpuMmu& v, gfn_t start, gfn_t end, unsigned budget,
                      PrefaultResult* total = nullptr) {
  unsigned calls = 0;
  gfn_t next = start;
  while (next < end) {
    REQUIRE(calls < 1000000);
    vm.mmu.vcpu_load_root(v);
    const PrefaultResult r = vm.mmu.prefault(v, next, end, budget);
    calls++;
    REQUIRE(r.units <= budget);
    REQUIRE(r.next >= next);
    REQUIRE(r.next <= end);
    REQUIRE((r.status == FaultOutcome::fixed || r.status == FaultOutcome::retry));
    if (total) {
      total->installed += r.installed;
      total->present += r.present;
    }
    next = r.next;
  }
  return calls;
}

uint64_t leaves_at(TestVm& vm, int level) {
  uint64_t out[4];
  vm.mmu.count_leaves(0, out);
  return out[level];
}

// The entry mapping `g` at `level` in the vCPU's root (the tables must exist).
spte_t* entry_of(HostPlatform& p, Root* root, gfn_t g, int level) {
  spte_t* t = root->table;
  for (int l = root->level; l > level; l--)
    t = static_cast<spte_t*>(p.phys_to_virt(spte::pfn_addr(t[spte::index_of(g, l)])));
  return &t[spte::index_of(g, level)];
}
}  // namespace

TEST_CASE("prefault: each part at the largest level the slot allows", "[prefault]") {
  HostPlatform p;
  {
    TestVm vm(p);
    TestVcpu v(vm);
    // 1 GiB + 2 MiB + 5 pages, guest and backing 1 GiB aligned: one 1 GiB leaf, one 2 MiB
    // leaf, five 4 KiB leaves.
    const uint64_t n = kPagesPer1G + kPagesPer2M + 5;
    REQUIRE(vm.add_slot(1, kPagesPer1G, n, 4 * kGiB, 3) == MemslotError::ok);
    PrefaultResult total;
    prefault_all(vm, v, kPagesPer1G, kPagesPer1G + n, 1000, &total);
    REQUIRE(total.installed == 7);
    REQUIRE(leaves_at(vm, 3) == 1);
    REQUIRE(leaves_at(vm, 2) == 1);
    REQUIRE(leaves_at(vm, 1) == 5);
    auto [s, level] = vm.leaf(v, kPagesPer1G + kPagesPer1G + kPagesPer2M + 4);
    REQUIRE(level == 1);
    REQUIRE(spte::pfn_addr(s) == 4 * kGiB + (kPagesPer1G + kPagesPer2M + 4) * 4096);
    REQUIRE((s & spte::kWrite) != 0);
    REQUIRE(vm.mmu.stats().prefault_leaves == 7);
    // Everything is there now: a second pass only finds leaves; no fault counted by either.
    PrefaultResult again;
    prefault_all(vm, v, kPagesPer1G, kPagesPer1G + n, 1000, &again);
    REQUIRE(again.installed == 0);
    REQUIRE(again.present == 7);
    REQUIRE(vm.mmu.stats().faults[int(FaultOutcome::fixed)] == 0);
    REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.errors() == 0);
}

TEST_CASE("prefault: the slot's max level, its alignment and the per-VM maximum cap the level", "[prefault]") {
  HostPlatform p;
  {
    TestVm vm(p);
    TestVcpu v(vm);
    REQUIRE(vm.add_slot(1, 0, 4 * kPagesPer2M, kGiB, 2) == MemslotError::ok);  // 2 MiB at most
    // Backing 4 KiB off a 2 MiB boundary: no huge leaf can map it.
    REQUIRE(vm.add_slot(2, 8 * kPagesPer2M, kPagesPer2M, 2 * kGiB + 4096, 3) == MemslotError::ok);
    prefault_all(vm, v, 0, 4 * kPagesPer2M, 64);
    REQUIRE(leaves_at(vm, 2) == 4);
    prefault_all(vm, v, 8 * kPagesPer2M, 9 * kPagesPer2M, 64);
    REQUIRE(leaves_at(vm, 1) == kPagesPer2M);
    // The per-VM maximum lowered to 4 KiB: new leaves are 4 KiB; the existing 2 MiB leaves are
    // left alone (pre-fault never splits; the range is mapped already).
    vm.mmu.set_max_level(1);
    REQUIRE(vm.add_slot(3, 16 * kPagesPer2M, kPagesPer2M, 3 * kGiB, 3) == MemslotError::ok);
    prefault_all(vm, v, 16 * kPagesPer2M, 16 * kPagesPer2M + 100, 64);
    REQUIRE(leaves_at(vm, 1) == kPagesPer2M + 100);
    PrefaultResult again;
    prefault_all(vm, v, 0, 4 * kPagesPer2M, 64, &again);
    REQUIRE(again.installed == 0);
    REQUIRE(leaves_at(vm, 2) == 4);
    REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
  }
  REQUIRE(p.live_pages() == 0);
}

TEST_CASE("prefault: bounded work per call, resumed where it stopped", "[prefault]") {
  HostPlatform p;
  {
    TestVm vm(p);
    TestVcpu v(vm);
    REQUIRE(vm.add_slot(1, 0x1000, 1000, 0x4000'0000, 1) == MemslotError::ok);
    REQUIRE(vm.mmu.vcpu_load_root(v) != 0);
    // A budget of 7 units: 7 leaves per call, the call says where to go on.
    PrefaultResult r = vm.mmu.prefault(v, 0x1000, 0x1000 + 1000, 7);
    REQUIRE(r.status == FaultOutcome::fixed);
    REQUIRE(r.units == 7);
    REQUIRE(r.installed == 7);
    REQUIRE(r.next == 0x1000 + 7);
    REQUIRE(leaves_at(vm, 1) == 7);
    REQUIRE(vm.leaf(v, 0x1000 + 7).second == 0);  // not beyond where it said it stopped
    const unsigned calls = prefault_all(vm, v, r.next, 0x1000 + 1000, 7);
    REQUIRE(calls == (1000 - 7 + 6) / 7);
    REQUIRE(leaves_at(vm, 1) == 1000);
    // A budget of 0 still makes progress (one unit).
    REQUIRE(vm.mmu.prefault(v, 0x1000, 0x1001, 0).units == 1);
    // More than one batch of the lock per call: the budget, not the batch, ends the call.
    vm.mmu.zap_range(0, 0, 1 << 20);
    r = vm.mmu.prefault(v, 0x1000, 0x1000 + 1000, 3 * Mmu::kPrefaultBatch + 5);
    REQUIRE(r.installed == 3 * Mmu::kPrefaultBatch + 5);
    REQUIRE(r.next == 0x1000 + 3 * Mmu::kPrefaultBatch + 5);
  }
  REQUIRE(p.live_pages() == 0);
}

TEST_CASE("prefault: read-only slots, holes, bad ranges, existing write protection stays", "[prefault]") {
  HostPlatform p;
  {
    TestVm vm(p);
    TestVcpu v(vm);
    REQUIRE(vm.add_slot(1, 0, kPagesPer2M, kGiB, 2, Memslot::kReadOnly) == MemslotError::ok);
    REQUIRE(vm.add_slot(2, 3 * kPagesPer2M, 10, 2 * kGiB, 1) == MemslotError::ok);
    PrefaultResult total;
    // [0, 4 MiB + 64 pages): slot 1, a hole of 2 MiB + ..., slot 2 (10 pages), a hole.
    prefault_all(vm, v, 0, 4 * kPagesPer2M + 64, 4, &total);
    REQUIRE(total.installed == 1 + 10);
    auto [ro, lvl] = vm.leaf(v, 5);
    REQUIRE(lvl == 2);
    REQUIRE((ro & spte::kWrite) == 0);
    REQUIRE(vm.leaf(v, kPagesPer2M + 3).second == 0);      // hole: nothing mapped
    REQUIRE(vm.leaf(v, 3 * kPagesPer2M + 10).second == 0);  // past slot 2
    REQUIRE(vm.mmu.map(v, 5, kW) == FaultOutcome::write_protected);
    // An existing leaf whose W was taken away (as dirty logging will do) is not made writable.
    vm.mmu.zap_range(0, 3 * kPagesPer2M, 3 * kPagesPer2M + 10);
    REQUIRE(vm.fault(v, 3 * kPagesPer2M + 2, kR | kW) == FaultOutcome::fixed);
    __atomic_fetch_and(entry_of(p, v.root(), 3 * kPagesPer2M + 2, 1), ~spte::kWrite, __ATOMIC_RELAXED);
    PrefaultResult r2;
    prefault_all(vm, v, 3 * kPagesPer2M, 3 * kPagesPer2M + 10, 100, &r2);
    REQUIRE(r2.present == 1);
    REQUIRE(r2.installed == 9);
    REQUIRE((vm.leaf(v, 3 * kPagesPer2M + 2).first & spte::kWrite) == 0);
    REQUIRE((vm.leaf(v, 3 * kPagesPer2M + 3).first & spte::kWrite) != 0);
    // Bad ranges: nothing done.
    const gfn_t limit = gfn_t{1} << (46 - 12);
    REQUIRE(vm.mmu.prefault(v, limit - 1, limit + 1, 10).status == FaultOutcome::bad_gfn);
    REQUIRE(vm.mmu.prefault(v, 10, 5, 10).status == FaultOutcome::bad_gfn);
    const PrefaultResult empty = vm.mmu.prefault(v, 7, 7, 10);
    REQUIRE((empty.status == FaultOutcome::fixed && empty.next == 7 && empty.units == 0));
    // No slot at all above: done in one unit.
    const PrefaultResult none = vm.mmu.prefault(v, 1 << 20, 1 << 21, 10);
    REQUIRE((none.next == (1 << 21) && none.units == 1 && none.installed == 0));
    REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
  }
  REQUIRE(p.live_pages() == 0);
}

TEST_CASE("prefault: an invalidation in flight, a fast zap, out of memory", "[prefault]") {
  HostPlatform p;
  {
    TestVm vm(p);
    TestVcpu v(vm);
    REQUIRE(vm.add_slot(1, 0, 256, kGiB, 1) == MemslotError::ok);
    REQUIRE(vm.mmu.vcpu_load_root(v) != 0);
    // An invalidation covering [100, 120): the batches that reach into it retry, the range
    // stays unmapped while it is in flight, the rest before it is mapped.
    vm.mmu.invalidate_begin(0, 100, 120);
    PrefaultResult r = vm.mmu.prefault(v, 0, 256, 200);
    // Batches [0, 96) went through; [96, 128) retried until the budget left only room for a
    // batch [96, 100) that no longer reaches into the invalidation.
    REQUIRE(r.next == 100);
    REQUIRE(r.units == 200);
    REQUIRE(r.installed == 100);
    // Starting inside it: every batch retries, nothing is done, the call says so.
    PrefaultResult blocked = vm.mmu.prefault(v, 100, 256, 50);
    REQUIRE(blocked.status == FaultOutcome::retry);
    REQUIRE(blocked.next == 100);
    REQUIRE(blocked.units == 50);
    REQUIRE(blocked.installed == 0);
    for (gfn_t g = 100; g < 120; g++) REQUIRE(vm.leaf(v, g).second == 0);
    vm.mmu.invalidate_end();
    // The sequence moved: a call resumes with a new snapshot.
    prefault_all(vm, v, r.next, 256, 200);
    REQUIRE(leaves_at(vm, 1) == 256);
    // A fast zap: the vCPU's root is invalid until it reloads.
    vm.mmu.invalidate_all_roots();
    r = vm.mmu.prefault(v, 0, 256, 200);
    REQUIRE(r.status == FaultOutcome::retry);
    REQUIRE(r.installed == 0);
    REQUIRE(vm.mmu.vcpu_load_root(v) != 0);
    r = vm.mmu.prefault(v, 0, 256, 1000);
    REQUIRE((r.status == FaultOutcome::fixed && r.next == 256 && r.installed == 256));
    // No page for a table: out_of_memory, nothing mapped, resumable when pages come back.
    TestVcpu w(vm);
    REQUIRE(vm.add_slot(2, kPagesPer1G, 64, 2 * kGiB, 1) == MemslotError::ok);
    vm.mmu.zap_range(0, 0, 1 << 20);
    vm.mmu.run_deferred_work(1 << 20);
    REQUIRE(vm.mmu.vcpu_load_root(w) != 0);
    p.set_page_limit(p.live_pages());
    r = vm.mmu.prefault(w, kPagesPer1G, kPagesPer1G + 64, 100);
    p.set_page_limit(0);
    if (r.status == FaultOutcome::out_of_memory) {
      REQUIRE(r.next == kPagesPer1G);
      REQUIRE(r.installed == 0);
    } else {
      REQUIRE(r.status == FaultOutcome::fixed);  // the vCPU's page cache had enough
    }
    prefault_all(vm, w, r.next, kPagesPer1G + 64, 100);
    REQUIRE(vm.leaf(w, kPagesPer1G + 63).second == 1);
    REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
  }
  REQUIRE(p.live_pages() == 0);
}

TEST_CASE("prefault: out of memory is reported when no page can be had", "[prefault]") {
  HostPlatform p;
  {
    MmuConfig cfg;
    TestVm vm(p, cfg);
    TestVcpu v(vm);
    REQUIRE(vm.add_slot(1, kPagesPer1G, 64, 2 * kGiB, 1) == MemslotError::ok);
    REQUIRE(vm.mmu.vcpu_load_root(v) != 0);
    // The root holds only its top table; the walk to a 4 KiB leaf needs three more, and the
    // vCPU's cache is empty: with no page at all, nothing can be done.
    p.set_page_limit(p.live_pages());
    const PrefaultResult r = vm.mmu.prefault(v, kPagesPer1G, kPagesPer1G + 64, 100);
    p.set_page_limit(0);
    REQUIRE(r.status == FaultOutcome::out_of_memory);
    REQUIRE(r.next == kPagesPer1G);
    REQUIRE(r.installed == 0);
    REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
  }
  REQUIRE(p.live_pages() == 0);
}

TEST_CASE("fault-around: counts, window, slot and table boundaries, permissions", "[prefault][fault-around]") {
  HostPlatform p;
  {
    MmuConfig cfg;
    cfg.fault_around = 7;  // a window of 8 pages
    TestVm vm(p, cfg);
    TestVcpu v(vm);
    // 4 KiB-only slot starting at gfn 0x105 (not window-aligned), 0x40 pages.
    REQUIRE(vm.add_slot(1, 0x105, 0x40, kGiB, 1) == MemslotError::ok);
    REQUIRE(vm.fault(v, 0x10a, kR) == FaultOutcome::fixed);
    // Window [0x108, 0x110): all 8 mapped (the fault + 7).
    for (gfn_t g = 0x108; g < 0x110; g++) {
      auto [s, l] = vm.leaf(v, g);
      REQUIRE(l == 1);
      REQUIRE(spte::pfn_addr(s) == kGiB + (g - 0x105) * 4096);
      REQUIRE((s & spte::kWrite) != 0);
      REQUIRE((s & spte::kAccessed) == 0);
    }
    REQUIRE(vm.leaf(v, 0x107).second == 0);
    REQUIRE(vm.leaf(v, 0x110).second == 0);
    MmuStats st = vm.mmu.stats();
    REQUIRE(st.fault_around_leaves == 7);
    REQUIRE(st.leaves[1] == 8);
    REQUIRE(st.faults[int(FaultOutcome::fixed)] == 1);
    // The slot's first window [0x100, 0x108) starts before the slot: only 0x105..0x107.
    REQUIRE(vm.fault(v, 0x106, kR) == FaultOutcome::fixed);
    REQUIRE(vm.leaf(v, 0x104).second == 0);
    REQUIRE(vm.leaf(v, 0x105).second == 1);
    REQUIRE(vm.leaf(v, 0x107).second == 1);
    REQUIRE(vm.mmu.stats().fault_around_leaves == 7 + 2);
    // Its last window [0x140, 0x148) ends after it (slot end 0x145): 0x140..0x144, nothing
    // over the unbacked gfns after it.
    REQUIRE(vm.fault(v, 0x144, kR) == FaultOutcome::fixed);
    REQUIRE(vm.leaf(v, 0x140).second == 1);
    REQUIRE(vm.leaf(v, 0x145).second == 0);
    REQUIRE(vm.mmu.stats().fault_around_leaves == 9 + 4);
    // Existing leaves are neither counted nor overwritten: zap two of a window, fault one.
    vm.mmu.zap_range(0, 0x10b, 0x10d);
    REQUIRE(vm.fault(v, 0x10b, kR) == FaultOutcome::fixed);
    REQUIRE(vm.leaf(v, 0x10c).second == 1);
    REQUIRE(vm.mmu.stats().fault_around_leaves == 13 + 1);
    // A spurious fault installs nothing.
    REQUIRE(vm.fault(v, 0x10b, kR) == FaultOutcome::spurious);
    REQUIRE(vm.mmu.stats().fault_around_leaves == 14);
    REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.errors() == 0);
}

TEST_CASE("fault-around: read-only slots, huge leaves, in-flight invalidations, N up to a table", "[prefault][fault-around]") {
  HostPlatform p;
  {
    MmuConfig cfg;
    cfg.fault_around = 20;  // a window of 32, at most 20 neighbours
    TestVm vm(p, cfg);
    TestVcpu v(vm);
    REQUIRE(vm.add_slot(1, 0, 64, kGiB, 1, Memslot::kReadOnly) == MemslotError::ok);
    REQUIRE(vm.fault(v, 0, kR) == FaultOutcome::fixed);
    REQUIRE(vm.mmu.stats().fault_around_leaves == 20);
    REQUIRE(vm.leaf(v, 20).second == 1);
    REQUIRE(vm.leaf(v, 21).second == 0);  // at most N
    REQUIRE((vm.leaf(v, 20).first & spte::kWrite) == 0);
    REQUIRE(vm.mmu.map(v, 20, kW) == FaultOutcome::write_protected);
    // A 2 MiB leaf alone in its slot: no neighbour to install.
    REQUIRE(vm.add_slot(2, kPagesPer2M, kPagesPer2M, 2 * kGiB, 2) == MemslotError::ok);
    REQUIRE(vm.fault(v, kPagesPer2M + 3, kR) == FaultOutcome::fixed);
    REQUIRE(vm.leaf(v, kPagesPer2M + 3).second == 2);
    REQUIRE(vm.mmu.stats().fault_around_leaves == 20);
    // 2 MiB leaves with room around: neighbours of the same size, whole 2 MiB frames inside the
    // slot only (frames 16-20; the slot's last 100 pages are no whole frame). Without
    // fault-around the same fault maps its own frame only.
    REQUIRE(vm.add_slot(4, 16 * kPagesPer2M, 5 * kPagesPer2M + 100, 4 * kGiB, 2) == MemslotError::ok);
    {
      MmuConfig one;
      one.fault_around = 0;
      TestVm lone(p, one);  // the same slot without fault-around: one 2 MiB leaf per fault
      TestVcpu lv(lone);
      REQUIRE(lone.add_slot(4, 16 * kPagesPer2M, 5 * kPagesPer2M + 100, 4 * kGiB, 2) == MemslotError::ok);
      REQUIRE(lone.fault(lv, 17 * kPagesPer2M + 3, kR) == FaultOutcome::fixed);
      REQUIRE(lone.mmu.stats().leaves[2] == 1);
      REQUIRE(lone.mmu.stats().fault_around_leaves == 0);
    }
    REQUIRE(vm.fault(v, 19 * kPagesPer2M + 9, kR) == FaultOutcome::fixed);  // frame 19 and 3 neighbours
    REQUIRE(vm.mmu.stats().fault_around_leaves == 24);
    REQUIRE(vm.mmu.stats().leaves[2] == 1 + 1 + 4);  // slot 2's; frame 19; frames 16, 17, 18, 20
    REQUIRE(vm.fault(v, 17 * kPagesPer2M + 3, kR) == FaultOutcome::spurious);  // mapped around
    for (unsigned f = 16; f <= 20; f++) {
      const auto [leaf, level] = vm.leaf(v, f * kPagesPer2M + 1);
      REQUIRE(level == 2);
      REQUIRE(spte::pfn_addr(leaf) == 4 * kGiB + (f - 16) * kPagesPer2M * 4096);
    }
    REQUIRE(vm.leaf(v, 21 * kPagesPer2M + 3).second == 0);  // the partial frame: nothing
    // 4 KiB leaves because the backing is misaligned in a slot that allows 2 MiB: fault-around.
    REQUIRE(vm.add_slot(3, 4 * kPagesPer2M, kPagesPer2M, 3 * kGiB + 4096, 2) == MemslotError::ok);
    REQUIRE(vm.fault(v, 4 * kPagesPer2M + 40, kR | kW) == FaultOutcome::fixed);
    REQUIRE(vm.mmu.stats().fault_around_leaves == 44);
    REQUIRE(vm.leaf(v, 4 * kPagesPer2M + 32).second == 1);
    // An invalidation in flight over a neighbour (not over the gfn): no neighbour at all.
    vm.mmu.invalidate_begin(0, 4 * kPagesPer2M + 70, 4 * kPagesPer2M + 71);
    REQUIRE(vm.mmu.map(v, 4 * kPagesPer2M + 64, kR) == FaultOutcome::fixed);
    vm.mmu.invalidate_end();
    REQUIRE(vm.mmu.stats().fault_around_leaves == 44);
    REQUIRE(vm.leaf(v, 4 * kPagesPer2M + 65).second == 0);
    REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
  }
  {
    MmuConfig cfg;
    cfg.fault_around = MmuConfig::kMaxFaultAround;  // the whole table
    TestVm vm(p, cfg);
    TestVcpu v(vm);
    REQUIRE(vm.add_slot(1, 0, 3 * kPagesPer2M, kGiB + 4096, 1) == MemslotError::ok);
    REQUIRE(vm.fault(v, kPagesPer2M + 300, kR) == FaultOutcome::fixed);
    REQUIRE(vm.mmu.stats().leaves[1] == kPagesPer2M);  // exactly its table, not the next one
    REQUIRE(vm.leaf(v, kPagesPer2M - 1).second == 0);
    REQUIRE(vm.leaf(v, 2 * kPagesPer2M).second == 0);
    // Pre-fault does not fault around (it maps what it is asked for).
    REQUIRE(vm.mmu.vcpu_load_root(v) != 0);
    const PrefaultResult r = vm.mmu.prefault(v, 0, 1, 10);
    REQUIRE(r.installed == 1);
    REQUIRE(vm.mmu.stats().leaves[1] == kPagesPer2M + 1);
  }
  REQUIRE(p.live_pages() == 0);
}

// Real threads: a vCPU pre-faulting and faulting (with fault-around) while another thread
// moves, deletes, re-creates and write-protects the slots, zaps ranges and fast-zaps. After each
// change the changer checks, through its own reference to the current root, that no leaf maps
// what the change took away (no stale leaf: the change won), and at the end the whole tree is
// checked against the slots and the counters against a census.
TEST_CASE("prefault: races with zaps and memslot changes under real threads", "[prefault][concurrency]") {
  const uint64_t seed = hvtest::stress_seed("prefault-race");
  HostPlatform p;
  {
    MmuConfig cfg;
    cfg.fault_around = 15;
    TestVm vm(p, cfg);
    // Slot 1 (2 MiB leaves, 4 KiB tail) moves between two homes; slot 2 (4 KiB only) is
    // deleted and re-created, and flips read-only.
    constexpr uint64_t kN1 = 4 * kPagesPer2M + 37, kN2 = 1024;
    constexpr gfn_t kHomeA = 0, kHomeB = 64 * kPagesPer2M, kBase2 = 32 * kPagesPer2M;
    REQUIRE(vm.add_slot(1, kHomeA, kN1, kGiB, 2) == MemslotError::ok);
    REQUIRE(vm.add_slot(2, kBase2, kN2, 2 * kGiB, 1) == MemslotError::ok);
    // Widen the window that matters: a change's flush runs after its zap and before the
    // sequence moves (invalidate_end), with the MMU lock free. A pre-fault that looked the slot
    // up before the change and takes the lock in that window must retry, not install from its
    // old snapshot; sleeping there (on the changer's thread only) makes that interleaving common.
    const std::thread::id changer = std::this_thread::get_id();
    p.set_flush_hook([changer](uint64_t) {
      if (std::this_thread::get_id() == changer) std::this_thread::sleep_for(std::chrono::microseconds(30));
    });
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> installed{0}, retries{0}, faults{0};
    std::atomic<gfn_t> base1{kHomeA};

    // Owned by the thread while it runs; kept by the main thread after the join, so that its
    // root keeps a reference for the quiescent checks (a root whose last reference is dropped
    // waits for its teardown where the census does not see it: mmu.h, count_leaves).
    TestVcpu v(vm);
    std::thread vcpu([&] {
      hvtest::HostCpu cpu(1);
      hvtest::SplitMix rng(seed);
      while (!stop.load(std::memory_order_relaxed)) {
        vm.mmu.run_deferred_work(256);
        if (vm.mmu.vcpu_load_root(v) == 0) continue;
        const bool one = rng.below(2) == 0;
        const gfn_t base = one ? base1.load(std::memory_order_relaxed) : kBase2;
        const uint64_t n = one ? kN1 : kN2;
        if (rng.below(3) == 0) {
          const FaultOutcome o = vm.mmu.map(v, base + rng.below(n), kR);
          if (o == FaultOutcome::retry) retries++;
          faults++;
        } else {
          const gfn_t a = base + rng.below(n);
          const PrefaultResult r = vm.mmu.prefault(v, a, a + 1 + rng.below(rng.below(4) ? 40 : 600), 1 + unsigned(rng.below(100)));
          installed += r.installed;
          if (r.status == FaultOutcome::retry) retries++;
        }
        std::this_thread::yield();
      }
    });

    hvtest::SplitMix rng(seed ^ 0x5555);
    TestVcpu checker(vm);
    uint64_t changes = 0, stale = 0, checks = 0;
    // No leaf of the current root in [a, b) (sampled), or none with W.
    auto expect_none = [&](gfn_t a, gfn_t b, bool only_writable) {
      vm.mmu.vcpu_load_root(checker);
      for (gfn_t g = a; g < b; g += 1 + rng.below(17)) {
        spte_t s;
        int level;
        checks++;
        if (vm.mmu.lookup(checker.root(), g, &s, &level) && (!only_writable || (s & spte::kWrite))) stale++;
      }
    };
    const auto t0 = std::chrono::steady_clock::now();
    bool slot2 = true, ro2 = false;
    // Run until both sides did what the test is about (on a loaded machine the vCPU thread may
    // get little CPU time early on), with a generous cap that only a hang reaches.
    while (changes < 300 || installed.load(std::memory_order_relaxed) == 0 ||
           std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(1200)) {
      if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(60)) break;
      const uint64_t op = rng.below(5);
      if (op == 0) {
        const gfn_t from = base1.load(), to = from == kHomeA ? kHomeB : kHomeA;
        REQUIRE(vm.mmu.update_memslot(MemslotOp::move(0, 1, to)) == MemslotError::ok);
        base1 = to;
        expect_none(from, from + kN1, false);
      } else if (op == 1) {
        if (slot2) {
          REQUIRE(vm.mmu.update_memslot(MemslotOp::remove(0, 2)) == MemslotError::ok);
          expect_none(kBase2, kBase2 + kN2, false);
        } else {
          REQUIRE(vm.add_slot(2, kBase2, kN2, 2 * kGiB, 1, ro2 ? Memslot::kReadOnly : 0) == MemslotError::ok);
        }
        slot2 = !slot2;
      } else if (op == 2 && slot2) {
        ro2 = !ro2;
        REQUIRE(vm.mmu.update_memslot(MemslotOp::set_flags(0, 2, ro2 ? Memslot::kReadOnly : 0)) == MemslotError::ok);
        if (ro2) expect_none(kBase2, kBase2 + kN2, true);
      } else if (op == 3) {
        vm.mmu.invalidate_all_roots();
      } else {
        const gfn_t a = base1.load() + rng.below(kN1);
        vm.mmu.zap_range(0, a, a + 1 + rng.below(2 * kPagesPer2M));
      }
      changes++;
      vm.mmu.run_deferred_work(1024);
      std::this_thread::yield();
    }
    stop = true;
    vcpu.join();
    p.set_flush_hook({});
    std::printf("[prefault-race] seed %llu: %llu changes, %llu leaves pre-faulted, %llu faults (%llu leaves around them), "
                "%llu retries, %llu samples checked, %llu stale\n",
                (unsigned long long)seed, (unsigned long long)changes, (unsigned long long)installed.load(),
                (unsigned long long)faults.load(), (unsigned long long)vm.mmu.stats().fault_around_leaves,
                (unsigned long long)retries.load(), (unsigned long long)checks, (unsigned long long)stale);
    REQUIRE(stale == 0);
    REQUIRE(installed.load() > 0);
    REQUIRE(changes >= 300);
    // Quiescent: the trees against the slots, the counters against a census.
    REQUIRE(vm.check_all_roots(vm.slot_refs()).empty());
    REQUIRE(hvtest::census(p, vm.mmu).compare(vm.mmu.stats()) == "");
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.check_quarantine() == 0);
  REQUIRE(p.errors() == 0);
}
