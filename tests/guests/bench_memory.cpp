// The memory benchmark guest of `tools/hv bench --guest` (tools/bench_guest.py reads its lines).
//
// One multiboot v1 image that boots bare from GRUB and under hv (hv.run=guest-bench-memory):
//   1. workload: (with `prefault`, under hv: both regions pre-faulted first with
//      HV_CALL_PREFAULT, timed as its own phase) first touch of `mib` MiB in address order, first touch of as many MiB in a
//      seeded random order (a full-period LCG over the pages: each page exactly once), then a
//      re-touch of both; each phase timed with RDTSC. A "touch" is one 32-bit store per 4 KiB
//      page. Bare, paging is off and nothing faults, so first touch and re-touch cost the same;
//      under hv every first touch of a leaf's range is an EPT violation.
//   2. (hv) EPT-violation count: first touch of `ept_mib` MiB in a second alias slot, the
//      exits counted by hv (HV_STAT_EXITS_EPT) and the leaves it installed per level;
//   3. (hv) exit-cost loops: CPUID, OUT to an unclaimed port, VMCALL VERSION, HLT (this guest
//      never enables its local APIC, so hv returns from its HLT at once: Vcpu::halt), `loops` times each; hv measures
//      each exit's cost itself (hv/exit_timing.h), the guest prints the round trips;
//   4. (hv) fast zap: with `zap_gib` GiB mapped by hv before the start, invalidate every root,
//      either waiting in the call for the teardown (`zap_wait`: the call's round trip is the
//      wait) or not; then exit in a loop (CPUID) until hv reports no invalid root left: every
//      entry runs a bounded pass of the deferred teardown first, so the longest round trip is
//      the longest time the vCPU waited on the teardown at once. Other vCPUs, if any, measure
//      their own round trips meanwhile.
// Parameters come from hv's block at HV_BENCH_GPA (bench_memory_abi.h); bare, the defaults.
// Every output line starts with "bench: " and is KEY=VALUE words after the first word.
#include "tests/guests/bench_memory_abi.h"
#include "tests/guests/lib/guest.h"

const char guest_name[] = "bench";

namespace {

constexpr uint32_t kPage = 4096;
constexpr uint16_t kUnclaimedPort = 0x80;  // POST code port: hv ignores it, bare it is harmless

bool g_hv = false;


void cpuid0() {
  uint32_t a = 0, b, c = 0, d;
  asm volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d)::"memory");
}

// A read-modify-write that stores the value it read: first touch of memory that other slots
// alias (the boot RAM with this very code and stack) without changing it.
void touch_rmw(uint32_t addr) { asm volatile("orl $0, (%0)" : : "r"(addr) : "memory"); }

uint64_t ept_exits() { return g_hv ? hv_stat(HV_STAT_EXITS_EPT) : 0; }

void report_phase(const char* name, uint32_t mib, uint32_t pages, uint64_t ticks, uint64_t ept) {
  gprintf("bench: phase name=%s mib=%u pages=%u ticks=%llu ept_exits=%llu\n", name, mib, pages,
          static_cast<unsigned long long>(ticks), static_cast<unsigned long long>(ept));
}

// Pre-fault [gpa, gpa + bytes) with HV_CALL_PREFAULT, call after call (each does a bounded part
// and says how far it got). False on an error status.
bool prefault_range(uint32_t gpa, uint32_t bytes, uint32_t* calls) {
  uint32_t done = 0;
  *calls = 0;
  while (done < bytes && *calls < 1000000) {
    const HvRet r = hv_call(HV_CALL_PREFAULT, gpa + done, bytes - done);
    ++*calls;
    if (r.status != HV_OK) return false;
    done += r.rbx;
  }
  return done >= bytes;
}

void workload(uint32_t mib, uint32_t pool_bytes, bool prefault) {
  uint32_t pages = (mib << 20) / kPage;
  // The random order needs a power of two (full-period LCG modulo 2^k).
  while (pages & (pages - 1)) pages &= pages - 1;
  const uint32_t seq = HV_BENCH_SLOT_WORK_GPA + HV_BENCH_WORK_OFFSET;
  const uint32_t rnd = seq + pages * kPage;
  if (g_hv) {
    // Slot 1: the pool from offset 0 at 1 GiB (1 GiB-aligned on both sides when the pool is).
    const int32_t st = hv_slot_create(1, HV_BENCH_SLOT_WORK_GPA, pool_bytes, 0, 0);
    CHECK_EQ(st, HV_OK);
    if (st != HV_OK) return;
    CHECK(HV_BENCH_WORK_OFFSET + 2 * pages * kPage <= pool_bytes);
    if (HV_BENCH_WORK_OFFSET + 2 * pages * kPage > pool_bytes) return;
  }
  uint64_t e0, t0;
  if (g_hv && prefault) {
    uint32_t calls = 0;
    e0 = ept_exits();
    t0 = rdtsc();
    const bool ok = prefault_range(seq, 2 * pages * kPage, &calls);
    const uint64_t t1 = rdtsc(), e1 = ept_exits();
    CHECK(ok);
    gprintf("bench: prefault mib=%u calls=%u ok=%u\n", 2 * mib, calls, ok ? 1u : 0u);
    report_phase("prefault", 2 * mib, 2 * pages, t1 - t0, e1 - e0);
  }
  e0 = ept_exits();
  t0 = rdtsc();
  for (uint32_t i = 0; i < pages; i++) poke32(seq + i * kPage, i ^ 0x5A5A0000u);
  uint64_t t1 = rdtsc(), e1 = ept_exits();
  report_phase("first-touch-seq", mib, pages, t1 - t0, e1 - e0);

  // x -> 1664525 x + 1013904223 (mod 2^k): a = 1 mod 4 and c odd give the full period
  // (Hull-Dobell), so the walk visits every page of the region once, in a scrambled order.
  const uint32_t mask = pages - 1;
  uint32_t x = 20261122u & mask;  // the seed
  e0 = ept_exits();
  t0 = rdtsc();
  for (uint32_t i = 0; i < pages; i++) {
    poke32(rnd + x * kPage, x);
    x = (1664525u * x + 1013904223u) & mask;
  }
  t1 = rdtsc();
  e1 = ept_exits();
  report_phase("first-touch-random", mib, pages, t1 - t0, e1 - e0);

  e0 = ept_exits();
  t0 = rdtsc();
  for (uint32_t i = 0; i < 2 * pages; i++) poke32(seq + i * kPage, i);
  t1 = rdtsc();
  e1 = ept_exits();
  report_phase("retouch", 2 * mib, 2 * pages, t1 - t0, e1 - e0);
  CHECK_EQ(peek32(seq + (pages - 1) * kPage), pages - 1);
  CHECK_EQ(peek32(rnd + 3 * kPage), pages + 3);
}

void ept_count(uint32_t mib, uint32_t pool_bytes, uint32_t level) {
  const uint32_t bytes = mib << 20;
  CHECK(bytes && bytes <= pool_bytes);
  if (!bytes || bytes > pool_bytes) return;
  CHECK_EQ(hv_slot_create(2, HV_BENCH_SLOT_EPT_GPA, pool_bytes, 0, 0), HV_OK);
  const uint64_t l4 = hv_stat(HV_STAT_LEAVES_4K), l2 = hv_stat(HV_STAT_LEAVES_2M), l1 = hv_stat(HV_STAT_LEAVES_1G);
  const uint64_t e0 = ept_exits(), t0 = rdtsc();
  for (uint32_t off = 0; off < bytes; off += kPage) touch_rmw(HV_BENCH_SLOT_EPT_GPA + off);
  const uint64_t t1 = rdtsc(), e1 = ept_exits();
  gprintf("bench: ept-count mib=%u level=%u exits=%llu leaves4k=%llu leaves2m=%llu leaves1g=%llu ticks=%llu\n", mib,
          level, static_cast<unsigned long long>(e1 - e0),
          static_cast<unsigned long long>(hv_stat(HV_STAT_LEAVES_4K) - l4),
          static_cast<unsigned long long>(hv_stat(HV_STAT_LEAVES_2M) - l2),
          static_cast<unsigned long long>(hv_stat(HV_STAT_LEAVES_1G) - l1), static_cast<unsigned long long>(t1 - t0));
}

void report_loop(const char* reason, uint32_t n, uint64_t ticks) {
  gprintf("bench: exit-loop reason=%s count=%u ticks=%llu\n", reason, n, static_cast<unsigned long long>(ticks));
}

void exit_loops(uint32_t n) {
  uint64_t t0 = rdtsc();
  for (uint32_t i = 0; i < n; i++) cpuid0();
  report_loop("cpuid", n, rdtsc() - t0);
  t0 = rdtsc();
  for (uint32_t i = 0; i < n; i++) outb(kUnclaimedPort, static_cast<uint8_t>(i));
  report_loop("io", n, rdtsc() - t0);
  t0 = rdtsc();
  for (uint32_t i = 0; i < n; i++) hv_call(HV_CALL_VERSION);
  report_loop("vmcall", n, rdtsc() - t0);
  t0 = rdtsc();
  for (uint32_t i = 0; i < n; i++) asm volatile("hlt" ::: "memory");
  report_loop("hlt", n, rdtsc() - t0);
}

// Round trip of one CPUID exit, in ticks.
uint64_t cpuid_trip() {
  const uint64_t t = rdtsc();
  cpuid0();
  return rdtsc() - t;
}

// With several vCPUs (hv.vcpus=N) the others measure their own CPUID round trips from just
// before the zap until vCPU 0 saw the teardown finish: they only reload the root and answer
// remote TLB flushes (the teardown runs on the CPU that asked), so their longest wait shows
// what a fast zap costs the vCPUs that did not ask for it. g_zap_phase: 0 wait, 1 measure,
// 2 stop; release/acquire pairs vCPU 0's store with the workers' loads (nothing else is
// published through it); each worker writes only its own slot of the result arrays, which
// vCPU 0 reads after smp_wait_done() (whose acquire pairs with the library's release).
uint32_t g_zap_phase = 0;
uint64_t g_worker_max[HV_MAX_VCPUS];
uint32_t g_worker_trips[HV_MAX_VCPUS];

void zap_worker(unsigned index) {
  while (__atomic_load_n(&g_zap_phase, __ATOMIC_ACQUIRE) == 0) cpu_relax();
  uint64_t max = 0;
  uint32_t trips = 0;
  while (__atomic_load_n(&g_zap_phase, __ATOMIC_ACQUIRE) == 1) {
    const uint64_t d = cpuid_trip();
    if (d > max) max = d;
    trips++;
  }
  g_worker_max[index % HV_MAX_VCPUS] = max;
  g_worker_trips[index % HV_MAX_VCPUS] = trips;
}

// The teardown's progress is polled with STAT every kPollEvery round trips; a STAT call walks
// every root to count leaves (slow with many GiB mapped), so its round trips are timed apart
// and left out of both the longest wait and the total.
constexpr unsigned kPollEvery = 16;

void fast_zap(uint32_t gib, bool wait) {
  uint64_t base_max = 0;
  for (unsigned i = 0; i < 64; i++) {
    const uint64_t d = cpuid_trip();
    if (d > base_max) base_max = d;
  }
  const uint64_t l4 = hv_stat(HV_STAT_LEAVES_4K), l2 = hv_stat(HV_STAT_LEAVES_2M), l1 = hv_stat(HV_STAT_LEAVES_1G);
  const uint64_t tables = hv_stat(HV_STAT_TABLE_PAGES);
  uint64_t max_wait = 0, polls = 0;
  unsigned trips = 0;
  const unsigned vcpus = vcpu_count();
  if (vcpus > 1) {
    smp_start(zap_worker);
    __atomic_store_n(&g_zap_phase, 1, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < 20000; i++) cpu_relax();  // let the workers get going (PAUSE: asm volatile)
  }
  const uint64_t t0 = rdtsc();
  CHECK_EQ(hv_call(HV_CALL_INVALIDATE_ROOTS, wait ? 1 : 0).status, HV_OK);
  const uint64_t call = rdtsc() - t0;
  bool done = false;
  while (!done && trips < 1000000) {
    if (trips % kPollEvery == 0) {
      const uint64_t t = rdtsc();
      done = hv_stat(HV_STAT_ROOTS_INVALID) == 0;
      polls += rdtsc() - t;
      if (done) break;
    }
    const uint64_t d = cpuid_trip();
    if (d > max_wait) max_wait = d;
    trips++;
  }
  const uint64_t total = rdtsc() - t0 - polls;
  CHECK(done);
  if (vcpus > 1) {
    __atomic_store_n(&g_zap_phase, 2, __ATOMIC_RELEASE);
    smp_wait_done();
    for (unsigned i = 1; i < vcpus && i < HV_MAX_VCPUS; i++)
      gprintf("bench: zap-other vcpu=%u gib=%u wait=%u max_wait_ticks=%llu exits=%u\n", i, gib, wait ? 1u : 0u,
              static_cast<unsigned long long>(g_worker_max[i]), g_worker_trips[i]);
  }
  gprintf("bench: zap gib=%u wait=%u leaves4k=%llu leaves2m=%llu leaves1g=%llu table_pages=%llu call_ticks=%llu "
          "total_ticks=%llu max_wait_ticks=%llu exits=%u baseline_max_ticks=%llu done=%u\n",
          gib, wait ? 1u : 0u, static_cast<unsigned long long>(l4), static_cast<unsigned long long>(l2),
          static_cast<unsigned long long>(l1), static_cast<unsigned long long>(tables),
          static_cast<unsigned long long>(call), static_cast<unsigned long long>(total),
          static_cast<unsigned long long>(max_wait), trips, static_cast<unsigned long long>(base_max),
          done ? 1u : 0u);
}

}  // namespace

void guest_test() {
  g_hv = under_hv();
  hv_bench_params p{HV_BENCH_MAGIC, HV_BENCH_DEFAULT_MIB, 0, 0, 0, 0, 0, 0};
  if (g_hv) {
    const auto* given = reinterpret_cast<const volatile hv_bench_params*>(HV_BENCH_GPA);
    if (given->magic == HV_BENCH_MAGIC) {
      p.mib = given->mib;
      p.ept_mib = given->ept_mib;
      p.loops = given->loops;
      p.zap_gib = given->zap_gib;
      p.max_level = given->max_level;
      p.zap_wait = given->zap_wait;
      p.prefault = given->prefault;
    }
  }
  uint32_t pool = 0;
  if (g_hv) pool = hv_call(HV_CALL_POOL_INFO).rbx;
  gprintf("bench: config mode=%s mib=%u ept_mib=%u loops=%u zap_gib=%u level=%u pool_mib=%u\n", g_hv ? "hv" : "bare",
          p.mib, p.ept_mib, p.loops, p.zap_gib, p.max_level, pool >> 20);
  if (p.mib) workload(p.mib, g_hv ? pool : 0xFFFFFFFFu, p.prefault != 0);
  if (g_hv && p.ept_mib) ept_count(p.ept_mib, pool, p.max_level);
  if (g_hv && p.loops) exit_loops(p.loops);
  if (g_hv && p.zap_gib) fast_zap(p.zap_gib, p.zap_wait != 0);
  gprintf("bench: done\n");
}
