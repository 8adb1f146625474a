// VmStats (hv/vm_stats.h): each vCPU bumps its own slice with plain stores; totals() sums them.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "hv/vm_stats.h"

using hv::kMaxVcpus;
using hv::VmCounters;
using hv::VmStats;
using hv::VmTotals;
namespace vmx = x86::vmx;

TEST_CASE("vm stats: totals sum every slice, field by field", "[vm_stat]") {
  VmStats st;
  st.reset();
  for (unsigned v = 0; v < kMaxVcpus; v++) {
    VmCounters& c = st.of(v);
    for (unsigned k = 0; k <= v; k++) c.exits[vmx::kExitCpuid]++;
    c.exits[vmx::kExitHlt] += 10;
    c.exits_other++;
    c.guest_tsc += 1000 * (v + 1);
    c.host_exit_tsc += 7;
    c.hypercall_errors++;
  }
  const VmTotals t = st.totals();
  const uint64_t n = kMaxVcpus;
  CHECK(t.exits[vmx::kExitCpuid] == n * (n + 1) / 2);
  CHECK(t.exits[vmx::kExitHlt] == 10 * n);
  CHECK(t.exits[vmx::kExitVmcall] == 0);
  CHECK(t.exits_other == n);
  CHECK(t.total_exits() == n * (n + 1) / 2 + 10 * n + n);
  CHECK(t.guest_tsc == 1000 * n * (n + 1) / 2);
  CHECK(t.host_exit_tsc == 7 * n);
  CHECK(t.hypercall_errors == n);
  CHECK(t.hypercalls == 0);
  CHECK(st.of(1).total_exits() == 2 + 10 + 1);
  st.reset();
  CHECK(st.totals().total_exits() == 0);
  CHECK(st.totals().guest_tsc == 0);
}

TEST_CASE("vm stats: slices are whole cache lines of their own", "[vm_stat]") {
  VmStats st;
  for (unsigned v = 0; v + 1 < kMaxVcpus; v++) {
    const auto a = reinterpret_cast<uintptr_t>(&st.of(v));
    const auto b = reinterpret_cast<uintptr_t>(&st.of(v + 1));
    CHECK(a % 64 == 0);
    CHECK(b - a >= sizeof(VmCounters));  // no overlap: the last line of one is not the first of the next
  }
}

// One thread per vCPU slice bumping exits, one reader summing all the while: the reader's
// totals never go down (each slice only grows), and after the joins they are exact. Under
// TSan this also shows that a live reader is no data race.
TEST_CASE("vm stats: vCPU threads count while a reader sums", "[vm_stat][concurrency]") {
  constexpr uint64_t kPerVcpu = 200000;
  VmStats st;
  st.reset();
  std::atomic<unsigned> running{kMaxVcpus};
  std::vector<std::thread> t;
  for (unsigned v = 0; v < kMaxVcpus; v++)
    t.emplace_back([&, v] {
      VmCounters& c = st.of(v);
      for (uint64_t i = 0; i < kPerVcpu; i++) {
        c.exits[i % 2 ? vmx::kExitCpuid : vmx::kExitIoInstruction]++;
        c.guest_tsc += 3;
      }
      running.fetch_sub(1);
    });
  uint64_t last = 0, reads = 0;
  bool monotonic = true;
  // Reads until the writers are done, and at least once after.
  for (bool more = true; more;) {
    more = running.load() != 0;
    const VmTotals now = st.totals();
    if (now.total_exits() < last) monotonic = false;
    last = now.total_exits();
    reads++;
  }
  for (auto& th : t) th.join();
  CHECK(monotonic);
  CHECK(reads >= 1);
  const VmTotals end = st.totals();
  CHECK(end.total_exits() == kMaxVcpus * kPerVcpu);
  CHECK(end.exits[vmx::kExitCpuid] == kMaxVcpus * kPerVcpu / 2);
  CHECK(end.guest_tsc == 3 * kMaxVcpus * kPerVcpu);
  CHECK(last == kMaxVcpus * kPerVcpu);  // the read after the last writer finished
}
