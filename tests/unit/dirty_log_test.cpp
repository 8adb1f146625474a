// Dirty logging (mmu/dirty_log.h): harvest semantics per mechanism, errors, the eager split at
// the start and huge leaves after the stop, and the hooks that keep D bits that leave the tree.
#include <catch2/catch.hpp>

#include <set>
#include <vector>

#include "tests/host/dirty_cpu.h"
#include "tests/host/mmu_fixture.h"

using namespace mmu;
using hvtest::DirtyCpu;
using hvtest::HostPlatform;
using hvtest::kGiB;
using hvtest::kPagesPer2M;
using hvtest::PmlLog;
using hvtest::TestVm;
using hvtest::TlbGeneration;

namespace {

constexpr gfn_t kBase = 4 * kPagesPer2M;  // 2 MiB aligned
constexpr uint64_t kPages = 2 * kPagesPer2M;  // two 2 MiB frames
constexpr hpa_t kBacking = 8 * kGiB;
constexpr uint32_t kSlot = 1;

MmuConfig ad_config() {
  MmuConfig c;
  c.ept_ad = true;
  return c;
}

// A VM with one writable 4 MiB slot that may use 2 MiB leaves, a vCPU, a TLB model.
struct Fixture {
  HostPlatform p;
  TestVm vm;
  VcpuMmu v;
  TlbGeneration tlb;
  PmlLog pml;
  explicit Fixture(MmuConfig cfg = ad_config()) : vm(p, cfg) {
    REQUIRE(vm.add_slot(kSlot, kBase, kPages, kBacking, 2) == MemslotError::ok);
    vm.mmu.vcpu_init(v, 0);
    p.set_flush_hook([this](uint64_t) { tlb.flush(); });
    p.set_drain_hook([this](uint64_t) { pml.drain(vm.mmu); });
  }
  ~Fixture() {
    p.set_flush_hook({});
    p.set_drain_hook({});
    vm.mmu.vcpu_release(v);
  }
  // Harvest into a fresh bitmap; the set of pages it reported.
  std::set<uint64_t> harvest(uint64_t* count = nullptr) {
    std::vector<uint64_t> bm(Mmu::dirty_log_words(kPages), 0);
    uint64_t n = ~uint64_t{0};
    REQUIRE(vm.mmu.dirty_log_harvest(v, 0, kSlot, bm.data(), bm.size(), &n) == MemslotError::ok);
    std::set<uint64_t> out;
    for (uint64_t i = 0; i < kPages; i++)
      if ((bm[i / 64] >> (i % 64)) & 1) out.insert(i);
    REQUIRE(out.size() == n);
    if (count) *count = n;
    return out;
  }
  spte_t leaf_of(uint64_t i, int* level = nullptr) {
    auto [s, l] = vm.leaf(v, kBase + i);
    if (level) *level = l;
    return s;
  }
};

std::set<uint64_t> all_pages() {
  std::set<uint64_t> s;
  for (uint64_t i = 0; i < kPages; i++) s.insert(i);
  return s;
}

}  // namespace

TEST_CASE("dirty log: write protection reports exactly the written pages", "[dirtylog]") {
  Fixture f;
  DirtyCpu cpu(f.vm.mmu, f.v, f.tlb, kBase, kPages);
  REQUIRE(cpu.write_faulting(3));  // before logging: a 2 MiB writable leaf
  REQUIRE(f.vm.mmu.dirty_log_start(f.v, 0, kSlot, DirtyMode::write_protect) == MemslotError::ok);
  // The first harvest returns every page (what was written before the start is unknown).
  REQUIRE(f.harvest() == all_pages());
  // Every leaf of the slot is 4 KiB and without W now.
  int level = 0;
  const spte_t l3 = f.leaf_of(3, &level);
  REQUIRE(level == 1);
  REQUIRE((l3 & spte::kWrite) == 0);
  REQUIRE(f.harvest().empty());

  // Writes fault (W is gone, and the TLB was flushed), the fault restores W and logs.
  bool via_tlb = true;
  REQUIRE(!cpu.write(3));
  REQUIRE(cpu.write_faulting(3, &via_tlb));
  REQUIRE(!via_tlb);
  REQUIRE((f.leaf_of(3) & spte::kWrite) != 0);
  REQUIRE(cpu.write_faulting(700));
  REQUIRE(cpu.write_faulting(700, &via_tlb));  // second write: no fault
  REQUIRE(via_tlb);
  // A read fault (on a page nothing mapped yet: the second 2 MiB was never touched) maps
  // without W and logs nothing.
  REQUIRE(f.leaf_of(900) == 0);
  REQUIRE(f.vm.fault(f.v, kBase + 900, spte::kAccRead) == FaultOutcome::fixed);
  REQUIRE(f.leaf_of(900, &level) != 0);
  REQUIRE(level == 1);
  REQUIRE((f.leaf_of(900) & spte::kWrite) == 0);

  uint64_t n = 0;
  REQUIRE(f.harvest(&n) == std::set<uint64_t>{3, 700});
  REQUIRE(n == 2);
  REQUIRE((f.leaf_of(3) & spte::kWrite) == 0);
  REQUIRE((f.leaf_of(700) & spte::kWrite) == 0);
  REQUIRE(f.harvest().empty());
  // Logged again after the harvest.
  REQUIRE(cpu.write_faulting(700, &via_tlb));
  REQUIRE(!via_tlb);
  REQUIRE(f.harvest() == std::set<uint64_t>{700});
  REQUIRE(f.vm.mmu.dirty_log_stop(f.v, 0, kSlot) == MemslotError::ok);
}

TEST_CASE("dirty log: the harvest ORs into the caller's bitmap and counts only its own bits", "[dirtylog]") {
  Fixture f;
  DirtyCpu cpu(f.vm.mmu, f.v, f.tlb, kBase, kPages);
  REQUIRE(f.vm.mmu.dirty_log_start(f.v, 0, kSlot, DirtyMode::write_protect) == MemslotError::ok);
  f.harvest();
  REQUIRE(cpu.write_faulting(5));
  std::vector<uint64_t> bm(Mmu::dirty_log_words(kPages), 0);
  bm[0] = uint64_t{1} << 1;  // the caller's own bit stays
  uint64_t n = 0;
  REQUIRE(f.vm.mmu.dirty_log_harvest(f.v, 0, kSlot, bm.data(), bm.size(), &n) == MemslotError::ok);
  REQUIRE(n == 1);
  REQUIRE(bm[0] == ((uint64_t{1} << 1) | (uint64_t{1} << 5)));
}

TEST_CASE("dirty log: EPT dirty bits are harvested and cleared, with a flush", "[dirtylog]") {
  Fixture f;
  DirtyCpu cpu(f.vm.mmu, f.v, f.tlb, kBase, kPages);
  REQUIRE(cpu.write_faulting(10));
  REQUIRE(f.vm.mmu.dirty_log_start(f.v, 0, kSlot, DirtyMode::dirty_bit) == MemslotError::ok);
  REQUIRE(f.harvest() == all_pages());
  int level = 0;
  const spte_t l10 = f.leaf_of(10, &level);
  REQUIRE(level == 1);
  REQUIRE((l10 & spte::kWrite) != 0);  // leaves keep W: no faults for writes
  REQUIRE((l10 & spte::kDirty) == 0);  // but D is clear

  bool via_tlb = true;
  REQUIRE(cpu.write(10, &via_tlb));  // no fault: the walk sets D
  REQUIRE(!via_tlb);
  REQUIRE((f.leaf_of(10) & spte::kDirty) != 0);
  REQUIRE(cpu.write_faulting(11));
  REQUIRE(cpu.write(11, &via_tlb));
  REQUIRE(via_tlb);  // the TLB knows D now
  const uint64_t flushes = f.p.flush_count();
  REQUIRE(f.harvest() == std::set<uint64_t>{10, 11});
  REQUIRE(f.p.flush_count() > flushes);
  REQUIRE((f.leaf_of(10) & spte::kDirty) == 0);
  // After the harvest's flush, a write walks again and sets D again.
  REQUIRE(cpu.write(11, &via_tlb));
  REQUIRE(!via_tlb);
  REQUIRE(f.harvest() == std::set<uint64_t>{11});
  REQUIRE(f.harvest().empty());
}

TEST_CASE("dirty log: PML marks from the drain are harvested; stray GPAs are ignored", "[dirtylog]") {
  Fixture f;
  DirtyCpu cpu(f.vm.mmu, f.v, f.tlb, kBase, kPages, &f.pml);
  REQUIRE(f.vm.mmu.dirty_log_start(f.v, 0, kSlot, DirtyMode::pml) == MemslotError::ok);
  f.harvest();
  REQUIRE(cpu.write_faulting(42));
  {
    std::lock_guard<std::mutex> g(f.pml.lock);
    REQUIRE(f.pml.gpas.size() == 1);
    REQUIRE(f.pml.gpas[0] == (kBase + 42) << kPageShift);
    // A page the CPU did not write but logged (the log is the CPU's word), and GPAs outside
    // the slot and beyond any slot: the first counts, the others are ignored.
    f.pml.gpas.push_back((kBase + 43) << kPageShift);
    f.pml.gpas.push_back((kBase + kPages) << kPageShift);
    f.pml.gpas.push_back(~uint64_t{0} & ~uint64_t{0xFFF});
  }
  REQUIRE(f.harvest() == std::set<uint64_t>{42, 43});
  {
    std::lock_guard<std::mutex> g(f.pml.lock);
    REQUIRE(f.pml.gpas.empty());  // drained
  }
  f.vm.mmu.dirty_log_mark_gpa((kBase + 7) << kPageShift);
  REQUIRE(f.harvest() == std::set<uint64_t>{7});
}

TEST_CASE("dirty log: PML reports 4 KiB pages through the log only, so the drain is load-bearing", "[dirtylog]") {
  Fixture f;
  DirtyCpu cpu(f.vm.mmu, f.v, f.tlb, kBase, kPages, &f.pml);
  REQUIRE(f.vm.mmu.dirty_log_start(f.v, 0, kSlot, DirtyMode::pml) == MemslotError::ok);
  f.harvest();
  REQUIRE(cpu.write_faulting(5));
  // A harvest whose drain reaches no log (as if the platform skipped a vCPU): the D pass clears
  // the leaf's D without reporting it, so page 5 is not in this harvest...
  f.p.set_drain_hook({});
  REQUIRE(f.harvest().empty());
  // ...and the entry still waits in the vCPU's log, so the next real drain reports it.
  f.p.set_drain_hook([&f](uint64_t) { f.pml.drain(f.vm.mmu); });
  REQUIRE(f.harvest() == std::set<uint64_t>{5});
  // The cleared D re-armed logging: the next write is logged again.
  bool via_tlb = true;
  REQUIRE(cpu.write(5, &via_tlb));
  REQUIRE(!via_tlb);
  REQUIRE(f.harvest() == std::set<uint64_t>{5});
  REQUIRE(f.harvest().empty());
}

TEST_CASE("dirty log: errors change nothing", "[dirtylog]") {
  SECTION("mechanisms that need EPT A/D are refused without it") {
    Fixture f(MmuConfig{});
    REQUIRE(f.vm.mmu.dirty_log_start(f.v, 0, kSlot, DirtyMode::dirty_bit) == MemslotError::unsupported);
    REQUIRE(f.vm.mmu.dirty_log_start(f.v, 0, kSlot, DirtyMode::pml) == MemslotError::unsupported);
    REQUIRE(f.vm.mmu.dirty_log_start(f.v, 0, kSlot, DirtyMode::write_protect) == MemslotError::ok);
  }
  Fixture f;
  DirtyCpu cpu(f.vm.mmu, f.v, f.tlb, kBase, kPages);
  std::vector<uint64_t> bm(Mmu::dirty_log_words(kPages), 0);
  uint64_t n = 0;
  SECTION("unknown slot, bad address space, not logging") {
    REQUIRE(f.vm.mmu.dirty_log_start(f.v, 0, 99, DirtyMode::write_protect) == MemslotError::no_such_slot);
    REQUIRE(f.vm.mmu.dirty_log_start(f.v, 7, kSlot, DirtyMode::write_protect) == MemslotError::bad_address_space);
    REQUIRE(f.vm.mmu.dirty_log_stop(f.v, 0, kSlot) == MemslotError::not_logging);
    REQUIRE(f.vm.mmu.dirty_log_harvest(f.v, 0, kSlot, bm.data(), bm.size(), &n) == MemslotError::not_logging);
    REQUIRE(f.vm.mmu.dirty_log_harvest(f.v, 0, 99, bm.data(), bm.size(), &n) == MemslotError::no_such_slot);
  }
  SECTION("read-only slot") {
    REQUIRE(f.vm.add_slot(2, 0, 16, kGiB, 1, Memslot::kReadOnly) == MemslotError::ok);
    REQUIRE(f.vm.mmu.dirty_log_start(f.v, 0, 2, DirtyMode::write_protect) == MemslotError::read_only_slot);
    REQUIRE(f.vm.add_slot(3, 16, 16, kGiB, 1, Memslot::kReadOnly | Memslot::kDirtyLog) ==
            MemslotError::read_only_slot);
    // A logged slot cannot be made read-only, nor can set_flags switch logging.
    REQUIRE(f.vm.mmu.dirty_log_start(f.v, 0, kSlot, DirtyMode::write_protect) == MemslotError::ok);
    REQUIRE(f.vm.mmu.update_memslot(MemslotOp::set_flags(0, kSlot, Memslot::kDirtyLog | Memslot::kReadOnly)) ==
            MemslotError::bad_flags);
    REQUIRE(f.vm.mmu.update_memslot(MemslotOp::set_flags(0, kSlot, 0)) == MemslotError::bad_flags);
    REQUIRE(f.vm.mmu.update_memslot(MemslotOp::set_dirty_log(0, kSlot, nullptr)) == MemslotError::bad_flags);
  }
  SECTION("double start, then a buffer too small clears nothing") {
    REQUIRE(f.vm.mmu.dirty_log_start(f.v, 0, kSlot, DirtyMode::write_protect) == MemslotError::ok);
    REQUIRE(f.vm.mmu.dirty_log_start(f.v, 0, kSlot, DirtyMode::dirty_bit) == MemslotError::already_logging);
    n = 12345;
    REQUIRE(f.vm.mmu.dirty_log_harvest(f.v, 0, kSlot, bm.data(), bm.size() - 1, &n) ==
            MemslotError::buffer_too_small);
    REQUIRE(f.vm.mmu.dirty_log_harvest(f.v, 0, kSlot, nullptr, 0, &n) == MemslotError::buffer_too_small);
    REQUIRE(n == 12345);
    for (uint64_t w : bm) REQUIRE(w == 0);
    REQUIRE(f.harvest() == all_pages());  // still all there
    REQUIRE(f.vm.mmu.dirty_log_stop(f.v, 0, kSlot) == MemslotError::ok);
    REQUIRE(f.vm.mmu.dirty_log_stop(f.v, 0, kSlot) == MemslotError::not_logging);
  }
}

TEST_CASE("dirty log: huge leaves are split at the start and come back after the stop", "[dirtylog][split]") {
  Fixture f;
  DirtyCpu cpu(f.vm.mmu, f.v, f.tlb, kBase, kPages);
  REQUIRE(cpu.write_faulting(0));
  REQUIRE(cpu.write_faulting(kPagesPer2M));
  int level = 0;
  f.leaf_of(0, &level);
  REQUIRE(level == 2);
  REQUIRE(f.vm.mmu.stats().leaves[2] == 2);
  const uint64_t eager_before = f.vm.mmu.stats().eager_splits;
  REQUIRE(f.vm.mmu.dirty_log_start(f.v, 0, kSlot, DirtyMode::dirty_bit) == MemslotError::ok);
  const MmuStats st = f.vm.mmu.stats();
  REQUIRE(st.eager_splits - eager_before == 2);
  REQUIRE(st.leaves[2] == 0);
  REQUIRE(st.leaves[1] == kPages);
  for (uint64_t i : {uint64_t{0}, uint64_t{511}, kPagesPer2M, kPages - 1}) {
    f.leaf_of(i, &level);
    REQUIRE(level == 1);
  }
  // While logged, faults install 4 KiB leaves only.
  REQUIRE(f.vm.mmu.update_memslot(MemslotOp::move(0, kSlot, kBase + kPages)) == MemslotError::ok);
  DirtyCpu moved(f.vm.mmu, f.v, f.tlb, kBase + kPages, kPages);
  REQUIRE(moved.write_faulting(5));
  REQUIRE(f.vm.leaf(f.v, kBase + kPages + 5).second == 1);
  // The move dropped the leaves with their D bits: the whole slot counts as dirty.
  REQUIRE(f.harvest().size() == kPages);
  REQUIRE(f.vm.mmu.dirty_log_stop(f.v, 0, kSlot) == MemslotError::ok);
  REQUIRE(f.vm.mmu.stats().leaves[1] == 0);  // zapped at the stop
  REQUIRE(moved.write_faulting(5));
  REQUIRE(f.vm.leaf(f.v, kBase + kPages + 5).second == 2);  // huge again
}

TEST_CASE("dirty log: a slot created logged, its removal, and D bits that leave the tree", "[dirtylog]") {
  MmuConfig cfg = ad_config();
  cfg.dirty_mode = DirtyMode::dirty_bit;
  HostPlatform p;
  {
    TestVm vm(p, cfg);
    VcpuMmu v;
    vm.mmu.vcpu_init(v, 0);
    TlbGeneration tlb;
    p.set_flush_hook([&](uint64_t) { tlb.flush(); });
    REQUIRE(vm.add_slot(kSlot, kBase, kPages, kBacking, 2, Memslot::kDirtyLog) == MemslotError::ok);
    REQUIRE(vm.mmu.dirty_log_d_slots() == 1);
    DirtyCpu cpu(vm.mmu, v, tlb, kBase, kPages);
    std::vector<uint64_t> bm(Mmu::dirty_log_words(kPages), 0);
    uint64_t n = 0;
    REQUIRE(vm.mmu.dirty_log_harvest(v, 0, kSlot, bm.data(), bm.size(), &n) == MemslotError::ok);
    REQUIRE(n == kPages);
    REQUIRE(cpu.write_faulting(1));
    REQUIRE(vm.leaf(v, kBase + 1).second == 1);  // created logged: 4 KiB from the first fault

    SECTION("a zap keeps the D of the leaves it drops") {
      vm.mmu.zap_range(0, kBase, kBase + 2);
      REQUIRE(vm.leaf(v, kBase + 1).second == 0);
      n = 0;
      for (auto& w : bm) w = 0;
      REQUIRE(vm.mmu.dirty_log_harvest(v, 0, kSlot, bm.data(), bm.size(), &n) == MemslotError::ok);
      REQUIRE(n == 1);
      REQUIRE(bm[0] == 2);
    }
    SECTION("a fast zap's teardown makes the whole slot dirty") {
      const uint64_t ticket = vm.mmu.invalidate_all_roots();
      vm.mmu.vcpu_load_root(v);  // off the old root, so its teardown can finish
      vm.mmu.wait_for_teardown(ticket);
      for (auto& w : bm) w = 0;
      REQUIRE(vm.mmu.dirty_log_harvest(v, 0, kSlot, bm.data(), bm.size(), &n) == MemslotError::ok);
      REQUIRE(n == kPages);
    }
    SECTION("removal frees the log") {
      const uint64_t live = p.live_pages();
      REQUIRE(vm.mmu.update_memslot(MemslotOp::remove(0, kSlot)) == MemslotError::ok);
      REQUIRE(vm.mmu.dirty_log_d_slots() == 0);
      vm.epoch.barrier();
      REQUIRE(p.live_pages() < live);
      REQUIRE(vm.mmu.dirty_log_harvest(v, 0, kSlot, bm.data(), bm.size(), &n) == MemslotError::no_such_slot);
    }
    p.set_flush_hook({});
    vm.mmu.vcpu_release(v);
  }
  REQUIRE(p.live_pages() == 0);
}
