// Fast zap while other vCPUs fault in a loop (docs/hypercalls.md INVALIDATE_ROOTS).
//
// Worker vCPUs (1..N-1; vCPU 0 itself when the VM has one) each own 1 MiB of a slot whose
// backing is only 4 KiB-aligned, so every page is its own 4 KiB leaf and every fast zap costs
// them 256 faults. They write and verify a fresh pattern over their region round after round,
// while vCPU 0 invalidates every EPT root again and again (waiting each time until every worker
// has finished a round since the last zap, so that the zaps land in the middle of faulting).
//
// Checks: no word ever reads back wrong (no guest-visible corruption); an invalidation leaves
// invalid roots behind for a while (the workers still hold them); and after a final
// "invalidate and wait for teardown" and one more verify pass the MMU is back to the baseline
// taken after the warm-up: one live root, none invalid, the same number of table pages and
// leaves (no page-table page leaked), and no page awaiting reclamation once the epoch caught
// up. hv's summary shows the root switches per vCPU and the bounded deferred-work passes.
#include "tests/guests/lib/guest.h"

const char guest_name[] = "fastzap";

namespace {

constexpr uint32_t kSlot = 1;
constexpr uint32_t kBase = 0x4000000;             // 64 MiB: beyond the boot RAM
constexpr uint32_t kRegion = 1u << 20;            // per worker
constexpr uint32_t kPoolOffset = (32u << 20) + 4096;  // 4 KiB past 2 MiB: 4 KiB leaves only
constexpr unsigned kZapsSmp = 32, kZapsUp = 8;
constexpr unsigned kMaxPolls = 2000;

uint32_t g_rounds[HV_MAX_VCPUS];  // rounds completed by each worker
uint32_t g_stop = 0;              // vCPU 0: the zap phase is over
uint32_t g_last_round[HV_MAX_VCPUS];
unsigned g_workers = 0;

// One vCPU: it is the worker itself; several: vCPUs 1..N-1 are, vCPU 0 only zaps.
bool alone() { return vcpu_count() == 1; }
uint32_t region_of(unsigned vcpu) { return kBase + (alone() ? 0 : vcpu - 1) * kRegion; }

uint32_t pattern(uint32_t round, unsigned vcpu, uint32_t page) {
  return (round * 0x9E3779B1u) ^ (vcpu * 0x85EBCA77u) ^ (page * 0x27D4EB2Fu) ^ 0x5A5A5A5Au;
}

// One round: write the round's pattern into the first and last word of every page, then read
// all of it back. Returns the words that read back wrong.
unsigned one_round(unsigned vcpu, uint32_t round, bool write) {
  const uint32_t base = region_of(vcpu);
  if (write)
    for (uint32_t p = 0; p < kRegion / 4096; p++) {
      poke32(base + p * 4096, pattern(round, vcpu, p));
      poke32(base + p * 4096 + 4092, ~pattern(round, vcpu, p));
    }
  unsigned bad = 0;
  for (uint32_t p = 0; p < kRegion / 4096; p++) {
    bad += peek32(base + p * 4096) != pattern(round, vcpu, p);
    bad += peek32(base + p * 4096 + 4092) != ~pattern(round, vcpu, p);
  }
  return bad;
}

void work_round(unsigned vcpu, bool write) {
  const uint32_t r = __atomic_load_n(&g_rounds[vcpu], __ATOMIC_RELAXED) + (write ? 1 : 0);
  const unsigned bad = one_round(vcpu, r, write);
  if (bad) gprintf("fastzap: vcpu%u: round %u: %u words read back wrong\n", vcpu, r, bad);
  CHECK_EQ(bad, 0);
  // Release: vCPU 0 reads the count (acquire) to know a full round ran since its last zap.
  if (write) __atomic_store_n(&g_rounds[vcpu], r, __ATOMIC_RELEASE);
}

struct Snapshot {
  uint64_t live, invalid, tables, leaves4k, leaves2m, awaiting;
};
Snapshot snapshot() {
  return Snapshot{hv_stat(HV_STAT_ROOTS_LIVE),  hv_stat(HV_STAT_ROOTS_INVALID), hv_stat(HV_STAT_TABLE_PAGES),
                  hv_stat(HV_STAT_LEAVES_4K),   hv_stat(HV_STAT_LEAVES_2M),     hv_stat(HV_STAT_PAGES_AWAITING_RECLAIM)};
}

bool is_worker(unsigned vcpu) { return alone() ? vcpu == 0 : vcpu != 0; }

// vCPU 0's zap loop (several vCPUs): each zap waits until every worker finished a round since
// the previous one.
void zap_loop(unsigned zaps, uint64_t* max_invalid) {
  for (unsigned z = 0; z < zaps; z++) {
    for (unsigned w = 1; w <= g_workers; w++) {
      while (__atomic_load_n(&g_rounds[w], __ATOMIC_ACQUIRE) == g_last_round[w]) cpu_relax();
      g_last_round[w] = __atomic_load_n(&g_rounds[w], __ATOMIC_ACQUIRE);
    }
    CHECK_EQ(hv_call(HV_CALL_INVALIDATE_ROOTS, 0).status, HV_OK);
    const uint64_t inv = hv_stat(HV_STAT_ROOTS_INVALID);
    if (inv > *max_invalid) *max_invalid = inv;
  }
}

// Every vCPU runs this (vCPU 0 from guest_test, the others through smp_start).
void run(unsigned vcpu) {
  const unsigned n = vcpu_count();
  // Warm-up: each worker writes round 1 over its region.
  if (is_worker(vcpu)) work_round(vcpu, true);
  barrier();
  // Fresh roots for everyone, then every worker faults its region in again: the baseline.
  if (vcpu == 0) CHECK_EQ(hv_call(HV_CALL_INVALIDATE_ROOTS, 1).status, HV_OK);
  barrier();
  if (is_worker(vcpu)) work_round(vcpu, false);
  barrier();
  Snapshot base{};
  if (vcpu == 0) {
    base = snapshot();
    gprintf("fastzap: baseline: roots live %llu invalid %llu, table pages %llu, leaves 4K %llu 2M %llu\n", base.live,
            base.invalid, base.tables, base.leaves4k, base.leaves2m);
    CHECK_EQ(base.live, 1);
    CHECK_EQ(base.invalid, 0);
    CHECK_EQ(base.leaves4k, g_workers * (kRegion / 4096));
    for (unsigned w = 0; w < HV_MAX_VCPUS; w++) g_last_round[w] = __atomic_load_n(&g_rounds[w], __ATOMIC_ACQUIRE);
  }
  barrier();

  // The race: workers loop, vCPU 0 zaps.
  const unsigned zaps = n == 1 ? kZapsUp : kZapsSmp;
  uint64_t max_invalid = 0;
  if (n == 1) {
    for (unsigned z = 0; z < zaps; z++) {
      work_round(0, true);
      CHECK_EQ(hv_call(HV_CALL_INVALIDATE_ROOTS, 0).status, HV_OK);
      const uint64_t inv = hv_stat(HV_STAT_ROOTS_INVALID);
      if (inv > max_invalid) max_invalid = inv;
      work_round(0, false);  // faults everything in again under the fresh root
    }
  } else if (vcpu == 0) {
    zap_loop(zaps, &max_invalid);
    __atomic_store_n(&g_stop, 1, __ATOMIC_RELEASE);
  } else {
    while (!__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)) work_round(vcpu, true);
  }
  barrier();
  if (vcpu == 0) {
    uint32_t total = 0, least = ~0u;
    for (unsigned w = 0; w < HV_MAX_VCPUS; w++) {
      if (!is_worker(w) || w >= n) continue;
      total += g_rounds[w];
      if (g_rounds[w] < least) least = g_rounds[w];
    }
    gprintf("fastzap: %u fast zaps while %u worker(s) ran %u rounds (at least %u each), up to %llu invalid root(s) seen\n",
            zaps, g_workers, total, least, max_invalid);
    CHECK(least >= zaps);  // every zap waited for a full round of every worker
    CHECK(max_invalid >= 1);  // the invalidation really left old roots behind
    // The last word: invalidate once more and wait until every old root is torn down.
    CHECK_EQ(hv_call(HV_CALL_INVALIDATE_ROOTS, 1).status, HV_OK);
  }
  barrier();
  if (is_worker(vcpu)) work_round(vcpu, false);  // fault everything in again, verify once more
  barrier();
  if (vcpu == 0) {
    // Retired table pages wait for every CPU's quiescent state: let the epoch catch up (each
    // hypercall is an exit, i.e. a quiescent state of this vCPU; the others pass theirs on
    // their own exits).
    unsigned polls = 0;
    while (hv_stat(HV_STAT_PAGES_AWAITING_RECLAIM) && polls < kMaxPolls) polls++;
    const Snapshot end = snapshot();
    gprintf("fastzap: after the final wait: roots live %llu invalid %llu, table pages %llu (baseline %llu), leaves 4K "
            "%llu 2M %llu, pages awaiting reclaim %llu (after %u polls)\n",
            end.live, end.invalid, end.tables, base.tables, end.leaves4k, end.leaves2m, end.awaiting, polls);
    CHECK_EQ(end.live, 1);
    CHECK_EQ(end.invalid, 0);
    CHECK_EQ(end.tables, base.tables);
    CHECK_EQ(end.leaves4k, base.leaves4k);
    CHECK_EQ(end.leaves2m, base.leaves2m);
    CHECK_EQ(end.awaiting, 0);
  }
  barrier();  // the workers keep their roots loaded until vCPU 0 has read the statistics
}

}  // namespace

void guest_test() {
  require_hv();
  const unsigned n = vcpu_count();
  g_workers = n == 1 ? 1 : n - 1;
  gprintf("fastzap: %u vCPU(s), %u worker(s) with 1 MiB each in a 4K-only slot\n", n, g_workers);
  CHECK_EQ(hv_slot_create(kSlot, kBase, g_workers * kRegion, kPoolOffset, 0), HV_OK);
  if (n > 1) smp_start(run);
  run(0);
  smp_wait_done();
  CHECK_EQ(hv_slot_delete(kSlot), HV_OK);
}
