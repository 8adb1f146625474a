// The teardown fence (mmu/teardown.cpp, teardown_fence): teardown steps hold the MMU lock only
// shared, which is safe only because no software writer that saw the root valid can still be
// writing into its tree when the first step runs. Shown with a fault paused in the middle of its
// walk -- it checked root->invalid under the lock, found it valid, and has linked one table --
// while a fast zap invalidates the root and another CPU starts its teardown: the teardown must
// not write into the tree until the fault is done, and at the end every table the fault linked
// was torn down and freed (a step that ran during the pause would unlink the fault's table, and
// the fault would then link its lower table and leaf into a dead table: pages leaked, counters
// wrong). Real threads; run under TSan too ([concurrency]).
#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <thread>

#include "mmu/spte_ops.h"
#include "progress_wait.h"
#include "tests/host/mmu_fixture.h"
#include "tests/host/tree_census.h"

using namespace mmu;
using hvtest::HostCpu;
using hvtest::HostPlatform;
using hvtest::TestVcpu;
using hvtest::TestVm;

namespace {

enum Role : int { kNone = 0, kFaulter, kTearer };
thread_local Role t_role = kNone;

struct FenceProbe {
  std::atomic<bool> paused{false};
  std::atomic<bool> resume{false};
  std::atomic<bool> paused_once{false};
  std::atomic<unsigned> writes_during_pause{0};
  std::atomic<unsigned> teardown_writes{0};
};

void on_write(void* ctx, spte_t*, spte_t old_value, spte_t new_value, int level) {
  auto* p = static_cast<FenceProbe*>(ctx);
  if (t_role == kFaulter && spte::is_table(new_value, level) && !p->paused_once.exchange(true)) {
    // The fault's first link is in: hold the fault here, inside its shared hold.
    p->paused.store(true, std::memory_order_release);
    while (!p->resume.load(std::memory_order_acquire)) std::this_thread::sleep_for(std::chrono::microseconds(100));
    p->paused.store(false, std::memory_order_release);
  } else if (t_role == kTearer && new_value == 0 && spte::is_present(old_value)) {
    p->teardown_writes.fetch_add(1, std::memory_order_relaxed);
    if (p->paused.load(std::memory_order_acquire)) p->writes_during_pause.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace

TEST_CASE("teardown fence: a shared-lock teardown waits for a fault that saw the root valid",
          "[teardown][concurrency]") {
  HostPlatform p(3);
  {
    MmuConfig cfg;
    cfg.max_teardown_backlog = 0;
    TestVm vm(p, cfg);
    REQUIRE(vm.add_slot(1, 0, 4096, 1ull << 32, 1) == MemslotError::ok);
    FenceProbe probe;
    g_spte_recorder = {on_write, &probe};
    FaultOutcome fault_outcome = FaultOutcome::kCount;
    std::atomic<bool> teardown_done{false};
    std::thread faulter([&] {
      HostCpu cpu(1);
      t_role = kFaulter;
      TestVcpu v(vm);
      vm.mmu.vcpu_load_root(v);
      fault_outcome = vm.mmu.map(v, 7, spte::kAccRead);  // fresh root: links 3 tables, pauses at the first
      t_role = kNone;
    });
    while (!probe.paused.load(std::memory_order_acquire)) std::this_thread::sleep_for(std::chrono::microseconds(100));
    // The fault holds the lock shared, past its root check. Fast zap: the root is invalid now.
    const uint64_t ticket = vm.mmu.invalidate_all_roots();
    std::thread tearer([&] {
      HostCpu cpu(2);
      t_role = kTearer;
      vm.mmu.wait_for_teardown(ticket);  // helps CPU 0's queue: the root's whole teardown
      t_role = kNone;
      teardown_done.store(true, std::memory_order_release);
    });
    // The sleep alone proves nothing if the tearer gets no core: first wait until it is at the
    // fence (owns the lock's write side, draining the fault's hold), or wrote, or finished.
    const bool tearer_got_there = hvtest::wait_for_progress([&] {
      return vm.mmu.lock().writer_owns() || probe.teardown_writes.load() != 0 ||
             teardown_done.load(std::memory_order_acquire);
    });
    // Give the teardown every chance to run while the fault is paused.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (!tearer_got_there) FAIL_CHECK("the teardown thread did not reach the fence within 30 s");
    CHECK(probe.writes_during_pause.load() == 0);
    CHECK_FALSE(teardown_done.load(std::memory_order_acquire));
    probe.resume.store(true, std::memory_order_release);
    faulter.join();
    tearer.join();
    g_spte_recorder = {};
    // The fault finished as it began: on a valid root (it checked before the fast zap).
    CHECK(fault_outcome == FaultOutcome::fixed);
    CHECK(probe.teardown_writes.load() > 0);  // the teardown did remove the fault's tables
    CHECK(probe.writes_during_pause.load() == 0);
    // Everything the fault built went with the root: nothing left in any tree or counter.
    vm.epoch.barrier();
    const MmuStats st = vm.mmu.stats();
    CHECK(st.leaves[1] == 0);
    CHECK(st.tables_live == 0);
    CHECK(hvtest::census(p, vm.mmu).compare(st).empty());
  }
  REQUIRE(p.errors() == 0);
  REQUIRE(p.check_quarantine() == 0);
  REQUIRE(p.live_pages() == 0);
}
