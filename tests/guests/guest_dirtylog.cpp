// Dirty logging of a guest slot (docs/hypercalls.md "Dirty logging"; mmu/dirty_log.h).
//
// Groups, one line each ("dirtylog: GROUP: ..."):
//   errors    bad ids, a harvest of an unlogged slot, double start, stop twice, harvest buffers
//             too small, misaligned or outside the guest's RAM: each refused with its code
//   exact     a 4 MiB slot (2 MiB leaves before logging) is logged: the first harvest reports
//             every page, the next none; then a known set of pages is written and the harvest
//             reports exactly that set, and reads report nothing
//   again     logging off, writes, logging on again: all pages once, then exactly the new set
//   bulk      every page written twice with no exit between (with PML the 512-entry log fills
//             and exits), all reported once; then 600 pages, exactly those
//   created   a slot created with HV_SLOT_DIRTY_LOG is logged from the start
//   storm     (2 vCPUs or more) vCPU 1.. write random pages without pause while vCPU 0 writes
//             bursts and harvests; before each write a vCPU notes how many harvests have
//             returned (h0); every written page must be reported by harvest h0 or a later one
//             (the last harvest runs after the writers stopped): no write lost
//   ring      (hv.dirty-ring=N, 2 vCPUs; only this group then: a vCPU whose own ring fills while
//             nobody reaps it waits for ever) vCPU 1 writes every page of the logged slot once
//             while vCPU 0 reaps vCPU 1's ring (HV_CALL_DIRTY_RING_REAP) in small batches: every
//             page comes exactly once, with the slot's id, and vCPU 1 waited at its soft limit;
//             the bitmap reports every page too; bad reap arguments are refused
// The mechanism (write protection, EPT A/D bits, PML) is hv's choice (hv.dirty=), printed
// first; the verdicts are the same for each.
#include "tests/guests/lib/guest.h"

const char guest_name[] = "dirtylog";

namespace {

constexpr uint32_t kSlot = 5, kSlot2 = 6;
constexpr uint32_t kGpa = 0x4000000;             // 64 MiB: beyond the boot RAM
constexpr uint32_t kBytes = 4u << 20;            // 1024 pages
constexpr uint32_t kPages = kBytes / 4096;
constexpr uint32_t kPoolOffset = 36u << 20;      // 2 MiB aligned: 2 MiB leaves possible
constexpr uint32_t kGpa2 = 0x5000000, kBytes2 = 64u << 10, kPool2 = 42u << 20;
constexpr uint32_t kWords = kPages / 64;

uint64_t g_bitmap[kWords + 2] __attribute__((aligned(8)));

const char* mechanism_name(uint32_t m) {
  return m == HV_DIRTY_WP ? "write protection" : m == HV_DIRTY_AD ? "EPT A/D bits" : m == HV_DIRTY_PML ? "PML" : "?";
}

// Harvest slot `id` into g_bitmap; returns the status, the count in *pages.
int32_t harvest(uint32_t id, uint32_t* pages) {
  const HvRet r = hv_call(HV_CALL_DIRTY_LOG_HARVEST, id, reinterpret_cast<uint32_t>(g_bitmap), kWords * 8);
  *pages = r.rbx;
  return r.status;
}
bool bit(uint32_t p) { return (g_bitmap[p / 64] >> (p % 64)) & 1; }

// Harvest and compare with exactly `set` (n pages); prints the first differences.
void expect_exactly(const char* what, const uint32_t* set, unsigned n) {
  uint32_t pages = 0;
  CHECK_EQ(harvest(kSlot, &pages), HV_OK);
  unsigned extra = 0, missing = 0;
  for (uint32_t p = 0; p < kPages; p++) {
    bool want = false;
    for (unsigned i = 0; i < n; i++) want |= set[i] == p;
    if (want && !bit(p)) {
      if (missing++ < 4) gprintf("dirtylog: %s: page %u written but not reported\n", what, p);
    } else if (!want && bit(p)) {
      if (extra++ < 4) gprintf("dirtylog: %s: page %u reported but not written\n", what, p);
    }
  }
  CHECK_EQ(missing, 0);
  CHECK_EQ(extra, 0);
  CHECK_EQ(pages, n);
}

void write_pages(const uint32_t* set, unsigned n, uint32_t tag) {
  for (unsigned i = 0; i < n; i++) poke32(kGpa + set[i] * 4096 + 8, tag ^ set[i]);
}

void errors() {
  uint32_t pages = 0;
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_START, 0).status, HV_EPERM);   // hv's boot RAM
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_START, 64).status, HV_EINVAL);
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_START, 9).status, HV_ENOSLOT);
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_STOP, kSlot).status, HV_EINVAL);  // not logging
  CHECK_EQ(harvest(kSlot, &pages), HV_EINVAL);
  const HvRet s = hv_call(HV_CALL_DIRTY_LOG_START, kSlot);
  CHECK_EQ(s.status, HV_OK);
  gprintf("dirtylog: mechanism %s\n", mechanism_name(s.rbx));
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_START, kSlot).status, HV_EBUSY);
  const uint32_t buf = reinterpret_cast<uint32_t>(g_bitmap);
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_HARVEST, kSlot, buf, kWords * 8 - 8).status, HV_ESMALL);
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_HARVEST, kSlot, buf + 4, kWords * 8).status, HV_EALIGN);
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_HARVEST, kSlot, 0xF0000000u, kWords * 8).status, HV_EFAULT);
  CHECK_EQ(hv_slot_flags(kSlot, HV_SLOT_READONLY), HV_EINVAL);  // a logged slot stays writable
  // Nothing was taken by the refused calls: the first harvest still reports every page.
  CHECK_EQ(harvest(kSlot, &pages), HV_OK);
  CHECK_EQ(pages, kPages);
  gprintf("dirtylog: errors: ok\n");
}

void exact() {
  uint32_t pages = 0;
  CHECK_EQ(harvest(kSlot, &pages), HV_OK);
  CHECK_EQ(pages, 0);
  static const uint32_t set[] = {0, 1, 7, 63, 64, 65, 511, 512, 777, 1000, 1023};
  constexpr unsigned n = sizeof set / sizeof set[0];
  write_pages(set, n, 0x11110000);
  write_pages(set, n, 0x22220000);  // twice: still once each
  expect_exactly("exact", set, n);
  // Reads dirty nothing.
  uint32_t sum = 0;
  for (uint32_t p = 0; p < kPages; p += 3) sum += peek32(kGpa + p * 4096);
  expect_exactly("reads", nullptr, 0);
  // And again: what is written after a harvest is in the next one.
  static const uint32_t set2[] = {2, 999};
  write_pages(set2, 2, 0x33330000 + (sum & 1));
  expect_exactly("exact-2", set2, 2);
  gprintf("dirtylog: exact: %u pages written, exactly those reported; reads report nothing\n", n);
}

void again() {
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_STOP, kSlot).status, HV_OK);
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_STOP, kSlot).status, HV_EINVAL);
  uint32_t pages = 0;
  CHECK_EQ(harvest(kSlot, &pages), HV_EINVAL);
  for (uint32_t p = 0; p < kPages; p += 2) poke32(kGpa + p * 4096, p);  // unlogged writes
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_START, kSlot).status, HV_OK);
  CHECK_EQ(harvest(kSlot, &pages), HV_OK);
  CHECK_EQ(pages, kPages);  // everything, once
  static const uint32_t set[] = {3, 300, 600, 900};
  write_pages(set, 4, 0x44440000);
  expect_exactly("again", set, 4);
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_STOP, kSlot).status, HV_OK);
  gprintf("dirtylog: again: off, on again: all pages once, then exactly the new writes\n");
}

// Every page of the slot written with no exit in between (the leaves exist: with pml the CPU
// logs 1024 pages into a 512-entry log, so the log fills and exits at least once), then 600.
void bulk() {
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_START, kSlot).status, HV_OK);
  uint32_t pages = 0;
  CHECK_EQ(harvest(kSlot, &pages), HV_OK);
  CHECK_EQ(pages, kPages);
  for (unsigned pass = 0; pass < 2; pass++)
    for (uint32_t p = 0; p < kPages; p++) poke32(kGpa + p * 4096 + 12, 0xB0000000u | (pass << 16) | p);
  CHECK_EQ(harvest(kSlot, &pages), HV_OK);
  CHECK_EQ(pages, kPages);
  unsigned missing = 0;
  for (uint32_t p = 0; p < kPages; p++)
    if (!bit(p) && missing++ < 4) gprintf("dirtylog: bulk: page %u written but not reported\n", p);
  CHECK_EQ(missing, 0);
  for (uint32_t p = 0; p < 600; p++) poke32(kGpa + p * 4096 + 12, 0xB1000000u | p);
  CHECK_EQ(harvest(kSlot, &pages), HV_OK);
  CHECK_EQ(pages, 600);
  missing = 0;
  for (uint32_t p = 0; p < kPages; p++)
    if (bit(p) != (p < 600) && missing++ < 4) gprintf("dirtylog: bulk: page %u not reported\n", p);
  CHECK_EQ(missing, 0);
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_STOP, kSlot).status, HV_OK);
  gprintf("dirtylog: bulk: every page written twice, all %u reported once; then exactly 600\n", kPages);
}

void created() {
  CHECK_EQ(hv_slot_create(kSlot2, kGpa2, kBytes2, kPool2, HV_SLOT_DIRTY_LOG), HV_OK);
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_START, kSlot2).status, HV_EBUSY);
  uint32_t pages = 0;
  const HvRet r = hv_call(HV_CALL_DIRTY_LOG_HARVEST, kSlot2, reinterpret_cast<uint32_t>(g_bitmap), 8);
  CHECK_EQ(r.status, HV_OK);
  CHECK_EQ(r.rbx, kBytes2 / 4096);
  poke32(kGpa2 + 5 * 4096, 5);
  const HvRet r2 = hv_call(HV_CALL_DIRTY_LOG_HARVEST, kSlot2, reinterpret_cast<uint32_t>(g_bitmap), 8);
  CHECK_EQ(r2.status, HV_OK);
  CHECK_EQ(r2.rbx, 1);
  CHECK_EQ(g_bitmap[0], uint64_t{1} << 5);
  CHECK_EQ(hv_slot_delete(kSlot2), HV_OK);
  (void)pages;
  gprintf("dirtylog: created: a slot created logged reports its pages, then its writes\n");
}

// --- storm ---
constexpr unsigned kStormHarvests = 24;
uint32_t g_done = 0;          // harvests that have returned (vCPU 0 writes, release)
uint32_t g_stop = 0;          // the writers stop
uint32_t g_max_h0[HV_MAX_VCPUS][kPages];  // per vCPU and page: largest h0 + 1 of a write (0: none)
uint32_t g_writes[HV_MAX_VCPUS];
int32_t g_last[kPages];       // per page: the last harvest reporting it (-1: none)

uint32_t next_rand(uint32_t& s) {
  s = s * 1664525u + 1013904223u;
  return s >> 8;
}

// One write by vCPU `v` to a random page, recorded with the harvest count seen before it.
void storm_write(unsigned v, uint32_t& seed) {
  const uint32_t p = (next_rand(seed) & 3) ? next_rand(seed) % 64 : next_rand(seed) % kPages;
  // Acquire: pairs with vCPU 0's release after a harvest returned; the write comes after.
  const uint32_t h0 = __atomic_load_n(&g_done, __ATOMIC_ACQUIRE);
  poke32(kGpa + p * 4096 + 4 * (v + 4), seed);
  if (h0 + 1 > g_max_h0[v][p]) g_max_h0[v][p] = h0 + 1;
  g_writes[v]++;
}

void storm_writer(unsigned v) {
  uint32_t seed = 0x9E3779B9u * (v + 1);
  while (!__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)) storm_write(v, seed);
}

void storm_harvest_into_last(int32_t k) {
  uint32_t pages = 0;
  CHECK_EQ(harvest(kSlot, &pages), HV_OK);
  for (uint32_t p = 0; p < kPages; p++)
    if (bit(p)) g_last[p] = k;
}

void storm() {
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_START, kSlot).status, HV_OK);
  for (uint32_t p = 0; p < kPages; p++) g_last[p] = -1;
  smp_start(storm_writer);
  uint32_t seed = 12345;
  for (unsigned k = 0; k < kStormHarvests; k++) {
    for (unsigned i = 0; i < 200; i++) storm_write(0, seed);
    storm_harvest_into_last(static_cast<int32_t>(k));
    __atomic_store_n(&g_done, k + 1, __ATOMIC_RELEASE);
  }
  __atomic_store_n(&g_stop, 1, __ATOMIC_RELEASE);
  smp_wait_done();
  storm_harvest_into_last(kStormHarvests);  // after every write
  unsigned lost = 0, written = 0;
  uint32_t writes = 0;
  for (unsigned v = 0; v < vcpu_count() && v < HV_MAX_VCPUS; v++) {
    writes += g_writes[v];
    for (uint32_t p = 0; p < kPages; p++) {
      if (!g_max_h0[v][p]) continue;
      written++;
      const int32_t need = static_cast<int32_t>(g_max_h0[v][p]) - 1;
      if (g_last[p] < need && lost++ < 4)
        gprintf("dirtylog: storm: vcpu%u wrote page %u after harvest %d returned; last reported by %d\n", v, p,
                need - 1, g_last[p]);
    }
  }
  CHECK_EQ(lost, 0);
  CHECK(writes > 1000);
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_STOP, kSlot).status, HV_OK);
  gprintf("dirtylog: storm: %u vCPUs, %u writes, %u harvests, no write lost\n", vcpu_count(), writes,
          kStormHarvests + 1);
  (void)written;
}

// --- ring ---

uint32_t g_ring_go = 0, g_ring_written = 0, g_ring_progress = 0;
hv_dirty_ring_entry g_ring_buf[32] __attribute__((aligned(8)));
uint8_t g_ring_seen[kPages];

void ring_writer(unsigned v) {
  if (v != 1) return;
  while (!__atomic_load_n(&g_ring_go, __ATOMIC_ACQUIRE)) cpu_relax();
  for (uint32_t p = 0; p < kPages; p++) {
    poke32(kGpa + p * 4096 + 16, 0xA5000000u | p);
    __atomic_store_n(&g_ring_progress, p + 1, __ATOMIC_RELEASE);
  }
  __atomic_store_n(&g_ring_written, 1, __ATOMIC_RELEASE);
}

void ring() {
  const uint32_t buf = reinterpret_cast<uint32_t>(g_ring_buf);
  CHECK_EQ(hv_call(HV_CALL_DIRTY_RING_REAP, 7, buf, sizeof g_ring_buf).status, HV_EINVAL);  // no vCPU 7
  CHECK_EQ(hv_call(HV_CALL_DIRTY_RING_REAP, 1, buf + 4, sizeof g_ring_buf).status, HV_EALIGN);
  CHECK_EQ(hv_call(HV_CALL_DIRTY_RING_REAP, 1, buf, 8).status, HV_ESMALL);
  CHECK_EQ(hv_call(HV_CALL_DIRTY_RING_REAP, 1, 0xFFFFF000u, 4096).status, HV_EFAULT);
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_START, kSlot).status, HV_OK);
  uint32_t pages = 0;
  CHECK_EQ(harvest(kSlot, &pages), HV_OK);  // the start's "everything"
  smp_start(ring_writer);
  __atomic_store_n(&g_ring_go, 1, __ATOMIC_RELEASE);
  // Reap nothing until vCPU 1 reached its soft limit: it pushes one entry per page (its write
  // fault), and after the fault of page 55 the ring holds 56 = 64 - 8 entries, so it waits
  // before it may finish that write. Its progress stops at 55 then; the pause after seeing 55
  // (millions of instructions) lets its next fault happen first. (With a larger ring this only
  // delays the reaper.)
  while (__atomic_load_n(&g_ring_progress, __ATOMIC_ACQUIRE) < 55) cpu_relax();
  for (uint32_t i = 0; i < 1000000; i++) cpu_relax();
  CHECK_EQ(__atomic_load_n(&g_ring_progress, __ATOMIC_ACQUIRE), 55);  // held at the soft limit
  unsigned got = 0, dups = 0, bad = 0, reaps = 0;
  for (;;) {
    // Read "written" before the reap: once it was set, a reap that finds nothing means done.
    const bool written = __atomic_load_n(&g_ring_written, __ATOMIC_ACQUIRE);
    const HvRet r = hv_call(HV_CALL_DIRTY_RING_REAP, 1, buf, sizeof g_ring_buf);
    if (r.status != HV_OK) {
      // vCPU 1 stopped (its ring went with it): everything it pushed was reaped before, or lost.
      CHECK(written);
      break;
    }
    reaps++;
    for (uint32_t i = 0; i < r.rbx; i++) {
      const hv_dirty_ring_entry& e = g_ring_buf[i];
      if (e.slot != kSlot || e.as_id != 0 || e.offset >= kPages) {
        if (bad++ < 4) gprintf("dirtylog: ring: bad entry slot %u as %u offset %u\n", e.slot, e.as_id, (uint32_t)e.offset);
        continue;
      }
      if (g_ring_seen[e.offset]++) dups++;
      got++;
    }
    if (written && r.rbx == 0) break;
  }
  smp_wait_done();
  unsigned missing = 0;
  for (uint32_t p = 0; p < kPages; p++)
    if (!g_ring_seen[p] && missing++ < 4) gprintf("dirtylog: ring: page %u written but never in the ring\n", p);
  CHECK_EQ(bad, 0);
  CHECK_EQ(dups, 0);
  CHECK_EQ(missing, 0);
  CHECK_EQ(got, kPages);
  // The bitmap beside the ring has every page too.
  CHECK_EQ(harvest(kSlot, &pages), HV_OK);
  CHECK_EQ(pages, kPages);
  CHECK_EQ(hv_call(HV_CALL_DIRTY_LOG_STOP, kSlot).status, HV_OK);
  gprintf("dirtylog: ring: %u pages written by vcpu1, %u ring entries reaped in %u reaps, each page once\n", kPages,
          got, reaps);
}

}  // namespace

void guest_test() {
  require_hv();
  CHECK_EQ(hv_slot_create(kSlot, kGpa, kBytes, kPoolOffset, 0), HV_OK);
  // Fault the slot in before logging: 2 MiB leaves where hv.backing allows, split at the start.
  for (uint32_t p = 0; p < kPages; p++) poke32(kGpa + p * 4096, 0xD0000000u | p);
  // hv.dirty-ring: only the ring group (vCPU 0 reaps vCPU 1's ring; its own would fill with the
  // other groups' writes and nobody would reap it).
  if (hv_call(HV_CALL_DIRTY_RING_REAP, 0, reinterpret_cast<uint32_t>(g_bitmap), 16).status != HV_ENOTSUP) {
    CHECK(vcpu_count() >= 2);
    if (vcpu_count() >= 2) ring();
    CHECK_EQ(hv_slot_delete(kSlot), HV_OK);
    gprintf("dirtylog: PASS\n");
    return;
  }
  errors();
  exact();
  again();
  bulk();
  created();
  if (vcpu_count() >= 2) storm();
  CHECK_EQ(hv_slot_delete(kSlot), HV_OK);
  gprintf("dirtylog: PASS\n");
}
