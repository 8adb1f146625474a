// Hypercall basics: version, pool information, statistics (by counter and copied into a guest
// buffer, with the bounds checks on that buffer), result, fast zap, unknown calls.
#include "tests/guests/lib/guest.h"

const char guest_name[] = "hcall";

namespace {
hv_stats g_stats;
}

void guest_test() {
  require_hv();
  HvRet v = hv_call(HV_CALL_VERSION);
  CHECK_EQ(v.status, HV_OK);
  CHECK_EQ(v.rbx, HV_ABI_VERSION);
  CHECK_EQ(v.rcx, HV_CALL_MAX);
  CHECK_EQ(v.rdx, 0x44547668);  // "hvTD"
  gprintf("hcall: version 0x%x, calls 0..%u\n", v.rbx, v.rcx);

  const HvRet pool = hv_call(HV_CALL_POOL_INFO);
  CHECK_EQ(pool.status, HV_OK);
  CHECK(pool.rbx >= pool.rcx && pool.rcx == ram_top());
  gprintf("hcall: pool %u MiB, boot RAM %u MiB\n", pool.rbx >> 20, pool.rcx >> 20);

  const HvRet cpu = hv_call(HV_CALL_VCPU_INFO);  // one vCPU unless hv.vcpus says otherwise
  CHECK_EQ(cpu.status, HV_OK);
  CHECK_EQ(cpu.rbx, 0);
  CHECK_EQ(cpu.rcx, 1);

  CHECK_EQ(hv_call(HV_CALL_MAX + 1).status, HV_EUNKNOWN);
  CHECK_EQ(hv_call(0xFFFFFFFFu).status, HV_EUNKNOWN);
  CHECK_EQ(hv_call(HV_CALL_STAT, HV_STAT_COUNT).status, HV_EINVAL);

  // Counters move: each hypercall is counted, and the ones above failed.
  const uint64_t calls0 = hv_stat(HV_STAT_HYPERCALLS);
  const uint64_t calls1 = hv_stat(HV_STAT_HYPERCALLS);
  CHECK_EQ(calls1, calls0 + 1);
  CHECK(hv_stat(HV_STAT_HYPERCALL_ERRORS) >= 3);
  CHECK(hv_stat(HV_STAT_EXITS_VMCALL) >= calls1);
  CHECK(hv_stat(HV_STAT_EXITS_EPT) > 0);  // this code itself was demand-faulted
  CHECK(hv_stat(HV_STAT_LEAVES_4K) + hv_stat(HV_STAT_LEAVES_2M) > 0);
  CHECK(hv_stat(HV_STAT_ROOTS_LIVE) >= 1);

  // The whole structure, copied by hv into our buffer through the memslots.
  HvRet c = hv_call(HV_CALL_STATS_COPY, reinterpret_cast<uint32_t>(&g_stats), sizeof g_stats);
  CHECK_EQ(c.status, HV_OK);
  CHECK_EQ(c.rbx, sizeof g_stats);
  CHECK(g_stats.value[HV_STAT_EXITS] >= g_stats.value[HV_STAT_EXITS_VMCALL]);
  CHECK(g_stats.value[HV_STAT_HYPERCALLS] > calls1);
  gprintf("hcall: stats: exits %llu (vmcall %llu, io %llu, ept %llu), leaves 4K %llu 2M %llu, roots %llu\n",
          g_stats.value[HV_STAT_EXITS], g_stats.value[HV_STAT_EXITS_VMCALL], g_stats.value[HV_STAT_EXITS_IO],
          g_stats.value[HV_STAT_EXITS_EPT], g_stats.value[HV_STAT_LEAVES_4K], g_stats.value[HV_STAT_LEAVES_2M],
          g_stats.value[HV_STAT_ROOTS_LIVE]);
  // A short buffer gets a prefix; bad buffers are refused, never written.
  c = hv_call(HV_CALL_STATS_COPY, reinterpret_cast<uint32_t>(&g_stats), 8);
  CHECK_EQ(c.status, HV_OK);
  CHECK_EQ(c.rbx, 8);
  CHECK_EQ(hv_call(HV_CALL_STATS_COPY, reinterpret_cast<uint32_t>(&g_stats), 0).status, HV_EINVAL);
  CHECK_EQ(hv_call(HV_CALL_STATS_COPY, 0x30000000, sizeof g_stats).status, HV_EFAULT);       // no slot
  CHECK_EQ(hv_call(HV_CALL_STATS_COPY, ram_top() - 8, sizeof g_stats).status, HV_EFAULT);    // straddles the end
  CHECK_EQ(hv_call(HV_CALL_STATS_COPY, 0xFFFFFFF8u, sizeof g_stats).status, HV_EFAULT);      // wraps 4 GiB

  // Fast zap: the vCPU reloads a fresh root and faults everything back in; memory survives.
  const uint32_t probe = 0x600000;
  poke32(probe, 0xC0FFEE11);
  const uint64_t ept0 = hv_stat(HV_STAT_EXITS_EPT);
  const uint64_t tables0 = hv_stat(HV_STAT_TABLE_PAGES), roots0 = hv_stat(HV_STAT_ROOTS_LIVE);
  CHECK_EQ(hv_call(HV_CALL_INVALIDATE_ROOTS, 1).status, HV_OK);
  CHECK_EQ(peek32(probe), 0xC0FFEE11);
  CHECK(hv_stat(HV_STAT_EXITS_EPT) > ept0);
  CHECK_EQ(hv_call(HV_CALL_INVALIDATE_ROOTS, 7).status, HV_EINVAL);
  gprintf("hcall: fast zap ok, %llu ept violations after it\n", hv_stat(HV_STAT_EXITS_EPT) - ept0);
  // No page leaked: the old root is gone (torn down, its tables reclaimed once the epoch moved
  // on: each VM exit is a quiescent state, so a few more calls let the grace period end), and
  // the new root holds as many table pages as the old one did for the same memory.
  unsigned spins = 0;
  while (hv_stat(HV_STAT_PAGES_AWAITING_RECLAIM) && spins < 1000) spins++;
  CHECK_EQ(hv_stat(HV_STAT_PAGES_AWAITING_RECLAIM), 0);
  CHECK_EQ(hv_stat(HV_STAT_ROOTS_INVALID), 0);
  CHECK_EQ(hv_stat(HV_STAT_ROOTS_LIVE), roots0);
  CHECK_EQ(hv_stat(HV_STAT_TABLE_PAGES), tables0);
  gprintf("hcall: after the fast zap: roots live %llu invalid %llu, table pages %llu (before %llu), pages awaiting "
          "reclaim %llu\n",
          hv_stat(HV_STAT_ROOTS_LIVE), hv_stat(HV_STAT_ROOTS_INVALID), hv_stat(HV_STAT_TABLE_PAGES), tables0,
          hv_stat(HV_STAT_PAGES_AWAITING_RECLAIM));

  // Pre-fault: bad ranges are refused; a good one comes back done (in as many calls as hv
  // needs), after which touching it costs no EPT violation; a range without a slot counts as
  // done and maps nothing.
  CHECK_EQ(hv_call(HV_CALL_PREFAULT, 0x1800001, 4096).status, HV_EALIGN);
  CHECK_EQ(hv_call(HV_CALL_PREFAULT, 0x1800000, 100).status, HV_EALIGN);
  CHECK_EQ(hv_call(HV_CALL_PREFAULT, 0x1800000, 0).status, HV_EINVAL);
  CHECK_EQ(hv_call(HV_CALL_PREFAULT, 0xFFFFF000u, 0x2000).status, HV_ETOOLARGE);  // past 4 GiB
  const uint32_t pf_gpa = 0x1800000, pf_bytes = 4u << 20;  // 24-28 MiB of the boot RAM, untouched so far
  uint32_t pf_done = 0, pf_calls = 0;
  while (pf_done < pf_bytes && pf_calls < 10000) {
    const HvRet r = hv_call(HV_CALL_PREFAULT, pf_gpa + pf_done, pf_bytes - pf_done);
    CHECK_EQ(r.status, HV_OK);
    if (r.status != HV_OK) break;
    pf_done += r.rbx;
    pf_calls++;
  }
  CHECK_EQ(pf_done, pf_bytes);
  const uint64_t pf_ept0 = hv_stat(HV_STAT_EXITS_EPT);
  uint32_t pf_sum = 0;
  for (uint32_t a = pf_gpa; a < pf_gpa + pf_bytes; a += 4096) pf_sum += peek32(a);
  const uint64_t pf_exits = hv_stat(HV_STAT_EXITS_EPT) - pf_ept0;
  CHECK_EQ(pf_exits, 0);
  const HvRet hole = hv_call(HV_CALL_PREFAULT, 0x30000000, 0x2000);
  CHECK_EQ(hole.status, HV_OK);
  CHECK_EQ(hole.rbx, 0x2000);
  gprintf("hcall: prefault: %u KiB in %u calls, then %llu ept violations touching it (sum %u)\n", pf_bytes >> 10,
          pf_calls, pf_exits, pf_sum);

  CHECK_EQ(hv_call(HV_CALL_RESULT, 0, 0x1234).status, HV_OK);

  // Last: from CPL 3 every call is refused and has no effect (the slot is not created: the
  // address stays unbacked and reads as all ones).
  enter_user_mode();
  uint16_t cs;
  asm volatile("mov %%cs, %0" : "=r"(cs));
  CHECK_EQ(cs & 3, 3);
  CHECK_EQ(hv_call(HV_CALL_VERSION).status, HV_EPERM);
  CHECK_EQ(hv_slot_create(1, 0x4000000, 0x1000, 32u << 20, 0), HV_EPERM);
  CHECK_EQ(peek32(0x4000000), 0xFFFFFFFFu);
  gprintf("hcall: from CPL %u: hypercalls refused with EPERM\n", cs & 3);
}
