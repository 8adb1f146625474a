// The run state the vCPUs of a VM share (hv/vm_run_state.h), with real threads as vCPUs and
// the test's main thread as the runner. Under ThreadSanitizer ([concurrency]) the plain data
// each side writes before its release (a vCPU's results before mark_finished, a waker's start
// state before post_wake) must be race-free to read after the matching acquire; the invariants
// are checked besides: exactly one vCPU claims the stop, every vCPU sees it or the finish
// request, no wake-up is lost or taken twice.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "hv/vm_run_state.h"

using hv::kMaxVcpus;
using hv::VmRunState;

namespace {

// What a vCPU leaves for the runner: plain fields, published only by mark_finished.
struct Result {
  uint64_t slices = 0;
  bool failed = false;
  unsigned saw_stop_by = 0;  // 1 + index, as stopped_by()
  bool saw_finish = false;
  const char* finish_reason = nullptr;
};

}  // namespace

TEST_CASE("vm run state: one failing vCPU stops every other, the runner reads their results",
          "[hv][run-state][concurrency]") {
  for (unsigned round = 0; round < 50; round++) {
    VmRunState st;
    st.reset(kMaxVcpus, 0, 0);
    Result results[kMaxVcpus];
    std::atomic<unsigned> claims{0};
    const unsigned failer = round % kMaxVcpus;
    std::vector<std::thread> vcpus;
    for (unsigned i = 0; i < kMaxVcpus; i++) {
      vcpus.emplace_back([&, i] {
        Result& r = results[i];
        st.set_phase(i, VmRunState::Phase::kRunning);
        for (;;) {
          // A safe point: the VM's requests first, then a "guest slice".
          if (const uint32_t by = st.stopped_by()) {
            r.saw_stop_by = by;
            break;
          }
          r.slices++;
          if (i == failer && r.slices == 10 + round) {
            r.failed = true;
            if (st.request_stop(i)) claims++;
          }
          std::this_thread::yield();
        }
        st.mark_finished(i);
      });
    }
    while (!st.all_finished()) std::this_thread::yield();
    // Plain reads after the acquire in all_finished() and before any join (a join would
    // synchronize by itself): TSan reports a race if the pairing is wrong.
    Result seen[kMaxVcpus];
    for (unsigned i = 0; i < kMaxVcpus; i++) seen[i] = results[i];
    for (std::thread& t : vcpus) t.join();
    REQUIRE(claims == 1);
    REQUIRE(st.stopped_by() == failer + 1);
    for (unsigned i = 0; i < kMaxVcpus; i++) {
      REQUIRE(seen[i].saw_stop_by == failer + 1);
      REQUIRE(seen[i].failed == (i == failer));
    }
    REQUIRE(seen[failer].slices == 10 + round);
  }
}

TEST_CASE("vm run state: concurrent failures claim the stop exactly once", "[hv][run-state][concurrency]") {
  for (unsigned round = 0; round < 200; round++) {
    VmRunState st;
    st.reset(kMaxVcpus, 0, 0);
    std::atomic<unsigned> claims{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> vcpus;
    for (unsigned i = 0; i < kMaxVcpus; i++)
      vcpus.emplace_back([&, i] {
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
        if (st.request_stop(i)) claims++;
        st.mark_finished(i);
      });
    go.store(true, std::memory_order_release);
    for (std::thread& t : vcpus) t.join();
    REQUIRE(claims == 1);
    REQUIRE(st.stopped_by() >= 1);
    REQUIRE(st.stopped_by() <= kMaxVcpus);
    REQUIRE(st.all_finished());
  }
}

TEST_CASE("vm run state: the finish request ends parked and running vCPUs as passed",
          "[hv][run-state][concurrency]") {
  VmRunState st;
  st.reset(kMaxVcpus, 0, 0);
  Result results[kMaxVcpus];
  bool woken[kMaxVcpus] = {};
  std::vector<std::thread> vcpus;
  for (unsigned i = 1; i < kMaxVcpus; i++)
    vcpus.emplace_back([&, i] {
      // vCPUs 1 and 3 stay parked (never woken); 2 runs.
      st.set_phase(i, i == 2 ? VmRunState::Phase::kRunning : VmRunState::Phase::kParked);
      while (!st.finish_requested() && !st.stopped_by()) {
        if (i != 2 && st.take_wake(i)) woken[i] = true;
        results[i].slices++;
        std::this_thread::yield();
      }
      results[i].saw_finish = st.finish_requested();
      results[i].finish_reason = st.finish_reason();
      st.mark_finished(i);
    });
  // vCPU 0 (this thread) ends: the VM is over. The reason is formatted just before the
  // request (a plain buffer: its release/acquire pairing is what makes reading it race-free).
  static char reason[32];
  std::snprintf(reason, sizeof reason, "vcpu%u exited", 0u);
  results[0].slices = 1;
  st.request_finish(reason);
  st.request_finish("a later reason");  // the first one stays
  st.mark_finished(0);
  while (!st.all_finished()) std::this_thread::yield();
  bool saw_finish[kMaxVcpus] = {}, was_woken[kMaxVcpus] = {};
  std::string reasons[kMaxVcpus];
  for (unsigned i = 1; i < kMaxVcpus; i++) {
    saw_finish[i] = results[i].saw_finish;
    was_woken[i] = woken[i];
    reasons[i] = results[i].finish_reason ? results[i].finish_reason : "";
  }
  for (std::thread& t : vcpus) t.join();
  for (unsigned i = 1; i < kMaxVcpus; i++) {
    REQUIRE(saw_finish[i]);
    REQUIRE_FALSE(was_woken[i]);
    REQUIRE(reasons[i] == "vcpu0 exited");
  }
  REQUIRE(st.stopped_by() == 0);
}

TEST_CASE("vm run state: a wake-up publishes the start state and is taken exactly once",
          "[hv][run-state][concurrency]") {
  for (unsigned round = 0; round < 200; round++) {
    VmRunState st;
    st.reset(2, 0, 0);
    uint64_t start_rip = 0;  // plain: published by post_wake, read after take_wake
    uint64_t seen = 0;
    unsigned takes = 0;
    std::thread parked([&] {
      st.set_phase(1, VmRunState::Phase::kParked);
      for (;;) {
        if (st.take_wake(1)) {
          takes++;
          seen = start_rip;
          break;
        }
        std::this_thread::yield();
      }
      st.set_phase(1, VmRunState::Phase::kRunning);
      // Nothing else was posted: a second take finds nothing.
      if (st.take_wake(1)) takes++;
      st.mark_finished(1);
    });
    start_rip = 0x1000 + round;
    st.post_wake(1);
    while (!st.finished(1)) std::this_thread::yield();
    const unsigned took = takes;
    const uint64_t got = seen;
    parked.join();
    REQUIRE(took == 1);
    REQUIRE(got == 0x1000 + round);
    REQUIRE_FALSE(st.wake_pending(1));
  }
}

TEST_CASE("vm run state: the time limit is one deadline for the whole VM", "[hv][run-state]") {
  VmRunState st;
  st.reset(2, 1500, 1000);
  REQUIRE(st.time_limit_ms() == 1500);
  REQUIRE_FALSE(st.time_is_up(999));
  REQUIRE(st.time_is_up(1000));
  REQUIRE(st.time_is_up(5000));
  st.reset(2, 0, 0);  // no limit
  REQUIRE_FALSE(st.time_is_up(~uint64_t{0}));
}
