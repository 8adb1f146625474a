// TLB flushes as a contract: when a zap or a memslot update returns, no CPU
// may still translate a gfn whose leaf it removed, even if the unlink was done by someone else
// (a teardown step, another zap) whose flush has not completed yet. Checked with a model of the
// TLBs driven by the platform's flush hook (tests/host/tlb_model.h). Also: one flush per batch
// of teardown work, not one per table.
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "tests/host/mmu_fixture.h"
#include "tests/host/tlb_model.h"

using namespace mmu;
using hvtest::HostPlatform;
using hvtest::kGiB;
using hvtest::kPagesPer1G;
using hvtest::kPagesPer2M;
using hvtest::TestVcpu;
using hvtest::TestVm;
using hvtest::TlbModel;

namespace {

constexpr unsigned kStaleCpu = 2;  // where the vCPU that keeps running on the old root sits

// A flush held open on thread `cpu`, while the test thread does something else.
struct HeldFlush {
  Atomic<uint32_t> entered{0};
  Atomic<uint32_t> release{0};

  // Install in `model`: the first flush issued from CPU `cpu` signals and waits (bounded).
  void arm(TlbModel& model, HostPlatform& p, unsigned cpu) {
    model.set_in_flush([&p, cpu] { return p.cpu_id() == cpu; },
                       [this] {
                         entered.store(1, Order::release);
                         const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
                         while (!release.load(Order::acquire) && std::chrono::steady_clock::now() < deadline)
                           std::this_thread::yield();
                       });
  }
  bool wait_entered() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!entered.load(Order::acquire)) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::yield();
    }
    return true;
  }
};

void print_stale(const char* what, const std::vector<gfn_t>& stale) {
  if (stale.empty()) return;
  std::printf("%s: %zu gfns still translatable by a CPU after the call returned (first %#llx)\n", what,
              stale.size(), static_cast<unsigned long long>(stale.front()));
}

}  // namespace

// Slot 1 = [0, 512) is what gets deleted; slot 2 = [1024, 1536) stays. The vCPU `stale` keeps
// running on the root it faulted them in (a vCPU that does not exit for a while), on CPU 2.
TEST_CASE("tlb flush: a memslot delete that overtakes a teardown step waits for its flush",
          "[tlb][teardown][concurrency]") {
  HostPlatform p(4);
  {
    TestVm vm(p);
    REQUIRE(vm.add_slot(1, 0, 512, 4 * kGiB, 1) == MemslotError::ok);
    REQUIRE(vm.add_slot(2, 1024, 512, 8 * kGiB, 1) == MemslotError::ok);
    TestVcpu stale(vm);
    for (gfn_t g = 0; g < 512; g++) REQUIRE(vm.fault(stale, g, spte::kAccRead | spte::kAccWrite) == FaultOutcome::fixed);
    for (gfn_t g = 1024; g < 1536; g++) REQUIRE(vm.fault(stale, g) == FaultOutcome::fixed);
    TlbModel model(p, vm.mmu);
    model.load(kStaleCpu, stale.root(), 0, 2048);
    REQUIRE(model.may_translate(5));
    // The page table of slot 1: root -> PDPT -> PD -> PT.
    hpa_t pt = 0;
    {
      spte_t* t = stale.root()->table;
      for (int level = 4; level > 1; level--) {
        const spte_t e = t[spte::index_of(0, level)];
        REQUIRE(spte::is_table(e, level));
        pt = spte::pfn_addr(e);
        t = static_cast<spte_t*>(p.phys_to_virt(pt));
      }
    }

    // Fast zap: the old root's teardown is queued here (CPU 0); `stale` does not reload.
    const uint64_t ticket = vm.mmu.invalidate_all_roots();
    HeldFlush held;
    held.arm(model, p, 1);
    // CPU 1 runs the teardown (helping CPU 0's queue); its first flush is held open.
    std::thread teardown([&] {
      hvtest::HostCpu as(1);
      vm.mmu.wait_for_teardown(ticket);
    });
    const bool entered = held.wait_entered();
    std::vector<gfn_t> left;
    bool pt_live_in_window = false;
    if (entered) {
      // The teardown unlinked the table of slot 1 and has not finished flushing: delete slot 1.
      REQUIRE(vm.mmu.update_memslot(MemslotOp::remove(0, 1)) == MemslotError::ok);
      left = model.stale(0, 512);
      // The table itself goes to the epoch only after the teardown's own flush that covers
      // it: not even a full epoch barrier frees it while that flush is in progress.
      vm.epoch.barrier();
      pt_live_in_window = p.is_live(pt);
    }
    held.release.store(1, Order::release);
    teardown.join();
    REQUIRE(entered);
    print_stale("update_memslot(remove) during a teardown flush", left);
    REQUIRE(left.empty());
    REQUIRE(pt_live_in_window);
    REQUIRE(model.stale(0, 2048).empty());
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.errors() == 0);
}

TEST_CASE("tlb flush: a zap_range that finds nothing left still waits for the flush of the zap before it",
          "[tlb][zap][concurrency]") {
  HostPlatform p(4);
  {
    TestVm vm(p);
    REQUIRE(vm.add_slot(1, 0, 512, 4 * kGiB, 1) == MemslotError::ok);
    TestVcpu stale(vm);
    for (gfn_t g = 0; g < 512; g++) REQUIRE(vm.fault(stale, g) == FaultOutcome::fixed);
    TlbModel model(p, vm.mmu);
    model.load(kStaleCpu, stale.root(), 0, 512);
    HeldFlush held;
    held.arm(model, p, 1);
    // CPU 1 zaps [0, 256); its flush is held open.
    std::thread first([&] {
      hvtest::HostCpu as(1);
      vm.mmu.zap_range(0, 0, 256);
    });
    const bool entered = held.wait_entered();
    std::vector<gfn_t> left;
    if (entered) {
      // A second caller zaps a range inside the first one: it is already empty.
      vm.mmu.zap_range(0, 16, 200);
      left = model.stale(0, 256);
    }
    held.release.store(1, Order::release);
    first.join();
    REQUIRE(entered);
    print_stale("zap_range behind another zap_range's flush", left);
    REQUIRE(left.empty());
    REQUIRE(model.may_translate(400));  // outside both ranges: still mapped, may be cached
  }
  REQUIRE(p.live_pages() == 0);
}

// The window between two teardown steps: the first step unlinked slot 1's table and (with
// batched flushes) has not flushed yet when the delete comes.
TEST_CASE("tlb flush: a memslot delete between two deferred teardown passes", "[tlb][teardown]") {
  HostPlatform p(4);
  {
    TestVm vm(p);
    REQUIRE(vm.add_slot(1, 0, 512, 4 * kGiB, 1) == MemslotError::ok);
    REQUIRE(vm.add_slot(2, 1024, 512, 8 * kGiB, 1) == MemslotError::ok);
    TestVcpu stale(vm);
    for (gfn_t g = 0; g < 512; g++) REQUIRE(vm.fault(stale, g) == FaultOutcome::fixed);
    for (gfn_t g = 1024; g < 1536; g++) REQUIRE(vm.fault(stale, g) == FaultOutcome::fixed);
    TlbModel model(p, vm.mmu);
    model.load(kStaleCpu, stale.root(), 0, 2048);
    vm.mmu.invalidate_all_roots();
    REQUIRE(vm.mmu.run_deferred_work(1) > 0);  // one step: slot 1's table leaves the tree
    REQUIRE(vm.mmu.update_memslot(MemslotOp::remove(0, 1)) == MemslotError::ok);
    const std::vector<gfn_t> left = model.stale(0, 512);
    print_stale("update_memslot(remove) between teardown passes", left);
    REQUIRE(left.empty());
    while (vm.mmu.run_deferred_work(64) != 0) {
    }
    REQUIRE(model.stale(0, 2048).empty());
  }
  REQUIRE(p.live_pages() == 0);
}

// Batching: the teardown of 1 GiB of 4 KiB leaves (512 page tables) flushes a handful of times,
// not once per table, whether it runs as the bounded deferred passes before VM entries or
// inside wait_for_teardown().
TEST_CASE("tlb flush: the teardown of 1 GiB of 4 KiB leaves flushes a few times, not per table",
          "[tlb][teardown]") {
  HostPlatform p(4);
  {
    TestVm vm(p);
    REQUIRE(vm.add_slot(1, 0, kPagesPer1G, 4 * kGiB, 1) == MemslotError::ok);
    TestVcpu v(vm);
    for (gfn_t g = 0; g < kPagesPer1G; g++) {
      if (vm.fault(v, g) != FaultOutcome::fixed) FAIL("fault at gfn " << g);
    }
    REQUIRE(vm.mmu.stats().tables_live == 2 + 512);  // PDPT, PD, 512 page tables
    const uint64_t before = p.flush_count();
    unsigned passes = 0;
    SECTION("deferred passes of 64 units") {
      vm.mmu.invalidate_all_roots();
      REQUIRE(vm.mmu.vcpu_load_root(v) != 0);
      while (vm.mmu.run_deferred_work(64) != 0) passes++;
    }
    SECTION("wait_for_teardown") {
      vm.mmu.wait_for_teardown(vm.mmu.invalidate_all_roots());
      passes = 1;
    }
    const uint64_t flushes = p.flush_count() - before;
    std::printf("teardown of 512 page tables: %u passes, %llu flushes\n", passes,
                static_cast<unsigned long long>(flushes));
    REQUIRE(vm.mmu.stats().tables_live == 0);
    REQUIRE(vm.mmu.stats().leaves[1] == 0);
    REQUIRE(flushes >= 1);
    REQUIRE(flushes <= 8);
  }
  REQUIRE(p.live_pages() == 0);
}
