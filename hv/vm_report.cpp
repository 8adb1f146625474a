// The summary lines of a VM (see vm_report.h).
#include "hv/vm_report.h"

#include "arch/x86/format.h"
#include "arch/x86/log.h"
#include "arch/x86/timer.h"
#include "arch/x86/vmx/exit_reason.h"
#include "hv/vm_runner.h"

namespace hv {
namespace {

uint64_t tsc_ms(uint64_t tsc) { return tsc / (x86::timer::tsc_khz() ? x86::timer::tsc_khz() : 1); }

uint64_t faults(const mmu::MmuStats& m, mmu::FaultOutcome o) { return m.faults[static_cast<int>(o)]; }

void print_deferred_summary(Vm& vm) {
  const DeferredStats d = vm.mmu().deferred_stats();
  x86::log::info("vm%u: deferred work: %lu passes with teardown work (%lu units, at most %lu per pass, budget %lu), "
                 "longest pass %lu TSC ticks",
                 vm.id(), d.busy_passes, d.units, d.max_units, d.max_budget, d.max_tsc);
  // The MMU reports the units it really did: a pass may cross its budget by one table at most
  // (mmu::Mmu::kTeardownOvershoot); say so loudly if one ever went further.
  if (d.max_units > d.max_budget + mmu::Mmu::kTeardownOvershoot)
    x86::log::error("vm%u: a deferred-work pass used %lu units, over its budget of %lu (+%u)", vm.id(), d.max_units,
                    d.max_budget, mmu::Mmu::kTeardownOvershoot);
}

}  // namespace

void print_vcpu_summary(RunVm& rv, unsigned i) {
  const Vcpu& v = rv.vcpu[i];
  const RunVm::Job& j = rv.job[i];
  const VcpuStats& s = v.vstats();
  const VmCounters& c = rv.vm.stats().of(i);
  const char* verdict = j.init_failure ? "not started" : v.failed() ? "FAIL" : "pass";
  x86::log::info("vm%u: vcpu%u on cpu%u: %s, %lu exits (ept violation %lu, external interrupt %lu, preemption timer %lu), "
                 "%lu root switch(es), %lu entry retries, ran %lu ms (guest %lu ms, exit handling %lu ms)",
                 rv.vm.id(), i, rv.state.cpu_of(i), verdict, c.total_exits(), c.exits[x86::vmx::kExitEptViolation].get(), s.external_interrupts,
                 s.preemption_timer, s.root_switches, s.entry_retries, (j.t1 - j.t0) / 1000, tsc_ms(c.guest_tsc),
                 tsc_ms(c.host_exit_tsc));
}

void print_vm_summary(RunVm& rv, const uint64_t* flushes) {
  Vm& vm = rv.vm;
  const unsigned id = vm.id();
  const VmTotals st = vm.stats().totals();
  char line[400];
  size_t len = 0;
  uint64_t total = st.exits_other;
  for (unsigned r = 0; r < x86::vmx::kExitReasonCount; r++) {
    const uint64_t n = st.exits[r];
    if (!n) continue;
    total += n;
    len += x86::format(line + len, sizeof line - len, "%s%s %lu", len ? ", " : "", x86::vmx::exit_reason_name(r), n);
  }
  line[len] = 0;
  x86::log::info("vm%u: %lu exits (%s)", id, total, line);
  uint64_t leaves[4];
  vm.mmu().leaves(leaves);
  const mmu::MmuStats m = vm.mmu().stats();
  x86::log::info("vm%u: ept violations %lu, leaves 4K %lu 2M %lu 1G %lu, ept table pages %lu", id, st.exits[x86::vmx::kExitEptViolation],
                 leaves[1], leaves[2], leaves[3], m.tables_live);
  using F = mmu::FaultOutcome;
  x86::log::info("vm%u: faults fixed %lu, spurious %lu, retry %lu, unbacked %lu, oom %lu, write-protected %lu, bad gfn %lu; "
                 "%lu retried after reclaim",
                 id, faults(m, F::fixed), faults(m, F::spurious), faults(m, F::retry), faults(m, F::unbacked),
                 faults(m, F::out_of_memory), faults(m, F::write_protected), faults(m, F::bad_gfn), st.oom_retries);
  if (flushes)
    x86::log::info("vm%u: remote flushes: %lu requests, %lu IPIs to cpus in guest mode, %lu left to the next entry, %lu "
                   "done by other cpus",
                   id, flushes[0], flushes[1], flushes[2], flushes[3]);
  x86::log::info("vm%u: zaps %lu (%lu leaves), tlb flushes %lu, roots live %lu invalid %lu, pages awaiting reclaim %lu", id,
                 m.zap_calls, m.zapped_leaves, m.flushes, m.roots_live, m.roots_invalid, m.pages_awaiting_reclaim);
  x86::log::info("vm%u: root teardowns queued %lu, deferred teardown steps %lu (%lu run by a CPU helping another's queue), "
                 "reclaims %lu (%lu pages)",
                 id, m.teardowns_queued, m.teardown_steps, m.teardown_steps_helped, m.reclaim_calls, m.reclaim_pages);
  print_deferred_summary(vm);
  x86::log::info("vm%u: unbacked reads %lu, unbacked writes dropped %lu, read-only writes dropped %lu, hypercalls %lu (%lu "
                 "errors)",
                 id, st.unbacked_reads, st.unbacked_writes, st.readonly_writes, st.hypercalls,
                 st.hypercall_errors);
  // Live now (the VM has stopped; what it still holds), against its limit (hv/pt_limit.h).
  const char* hit = m.table_pages_refused ? " (limit hit)" : "";
  if (!m.table_pages_limit)
    x86::log::info("vm%u: MMU pages live %lu (no limit: hv.pt-limit=0)", id, m.table_pages_live);
  else if (vm.mmu().page_limit_is_default())
    x86::log::info("vm%u: MMU pages counted against the default limit: %lu of %lu%s", id, m.table_pages_live,
                   m.table_pages_limit, hit);
  else
    x86::log::info("vm%u: MMU pages counted against hv.pt-limit: %lu of %lu%s", id, m.table_pages_live, m.table_pages_limit,
                   hit);
  x86::log::info("vm%u: ran %lu ms on %u vCPU(s) (guest %lu ms, exit handling %lu ms, summed over vCPUs)", id,
                 (rv.t1 - rv.t0) / 1000, rv.vcpus, tsc_ms(st.guest_tsc), tsc_ms(st.host_exit_tsc));
}

}  // namespace hv
