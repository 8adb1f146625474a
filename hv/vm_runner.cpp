// The VM runner (see vm_runner.h).
#include "hv/vm_runner.h"

#include "arch/x86/cpu.h"
#include "arch/x86/format.h"
#include "arch/x86/log.h"
#include "arch/x86/percpu.h"
#include "arch/x86/pmm.h"
#include "arch/x86/smp.h"
#include "arch/x86/tick.h"
#include "arch/x86/timer.h"
#include "arch/x86/vmx/vmcs_fields.h"
#include "hv/apicv.h"
#include "hv/cmdline.h"
#include "hv/cpu_work.h"
#include "hv/live_vms.h"
#include "hv/migrate.h"
#include "hv/mmu_platform.h"
#include "hv/vm_report.h"
#include "hv/trace.h"
#include "hv/vm_stat.h"
#include "mmu/epoch.h"

namespace hv {
namespace {

// Beyond the time limit, how long the runner waits for a vCPU that has not finished: every
// vCPU stops itself at the limit (its safe points check it, and the tick and the preemption
// timer bound a guest slice), so only a CPU that stopped answering altogether needs this.
constexpr uint64_t kFinishMarginUs = 10'000'000;

// The runs' VMs. Static: the kernel has no heap, and a RunVm (a VM with its MMU, vCPUs with
// their exit histograms) is too big for a stack.
RunVm g_vms[kMaxVms];
const x86::vmx::Capabilities* g_caps = nullptr;

// A vCPU's whole life on its CPU (the runner's CPU calls it directly, the others get it as a
// cpu_work item): VMCS setup, parking until started if so launched, the run loop, VMCLEAR.
void vcpu_job(void* p) {
  RunVm::Job& j0 = *static_cast<RunVm::Job*>(p);
  RunVm* rvp = j0.vm;
  const unsigned i = j0.index;
  const uint64_t t0 = x86::timer::now_us();
  bool moved = false;  // the vCPU runs in its VM's migration target now (hv/migrate.h)
  for (;;) {
    RunVm& rv = *rvp;
    RunVm::Job& j = rv.job[i];
    Vcpu& v = rv.vcpu[i];
    j.t0 = t0;
    j.init_failure = v.init(rv.vm, i, *g_caps, rv.start[i], rv.state);
    bool started = true;  // a moved vCPU: whether it had left its parking in the source
    if (!j.init_failure && moved) migrate_vcpu_resume(rv, i, &started);
    if (j.init_failure) {
      // The others may wait for this vCPU in the guest: stop the VM.
      if (rv.state.request_stop(i)) kick_vcpus(rv.state, i);
    } else {
      if (i == 0 && !moved)
        for (unsigned k = 1; k < rv.vcpus; k++)
          if (rv.launch[k] == VcpuLaunch::kWithVcpu0) wake_vcpu(rv.state, k);
      // kWaitForSipi runs at once: its run loop waits for the SIPI before the first entry.
      if (moved) started = started || v.park();
      else started = rv.launch[i] == VcpuLaunch::kRun || rv.launch[i] == VcpuLaunch::kWaitForSipi || v.park();
      for (;;) {
        if (started) v.run();
        RunVm* target = nullptr;
        const MigrateNext next = migrate_vcpu_ended(rv, i, started, &target);
        if (next == MigrateNext::kResume) {  // a migration was abandoned: run on in this VM
          v.resume_after_aborted_migration();
          if (!started) started = v.park();
          continue;
        }
        if (next == MigrateNext::kMoved) {
          rvp = target;
          moved = true;
        }
        break;
      }
      if (rvp != &rv) continue;  // the same CPU runs vCPU i of the target (its state restored)
    }
    if (i == 0 && rv.vcpu0_ends_vm) {
      // vCPU 0 is done: so is its VM (the others stop as passed, unless a failure came first).
      rv.state.request_finish("vcpu0 exited");
      kick_vcpus(rv.state, 0);
    }
    j.t1 = x86::timer::now_us();
    v.release();
    // Release (VmRunState::mark_finished): the runner sees the vCPU's final state and counters.
    // A migrated vCPU marks the source's state too, last: the runner waits on the VMs it started.
    rv.state.mark_finished(i);
    if (&rv != j0.vm) {
      j0.t1 = j.t1;
      j0.vm->state.mark_finished(i);
    }
    return;
  }
}

uint64_t time_limit_ms() { return cmdline::get_number("hv.time-limit-ms", kDefaultTimeLimitMs); }

}  // namespace

const char* set_ap_start_sipi(RunVm& rv, const x86::vmx::Capabilities& caps) {
  // The allowed 1-settings of the secondary controls are the high half of the capability MSR.
  if (!((caps.proc2 >> 32) & x86::vmx::proc2::kUnrestrictedGuest)) {
    x86::format(rv.why, sizeof rv.why,
                "vm%u: APs that wait for INIT/SIPI start in real mode, which needs the VMX \"unrestricted guest\" "
                "control; this CPU does not offer it (IA32_VMX_PROCBASED_CTLS2 bit 39)",
                rv.id);
    return rv.why;
  }
  for (unsigned i = 1; i < rv.vcpus; i++) {
    rv.launch[i] = VcpuLaunch::kWaitForSipi;
    rv.start[i] = VcpuStart{};
  }
  return nullptr;
}

void kick_vcpus(const VmRunState& state, unsigned except) {
  for (unsigned i = 0; i < state.vcpus(); i++)
    if (i != except && state.cpu_of(i) != x86::cpu_index()) cpu_work::kick(state.cpu_of(i));
}

void wake_vcpu(VmRunState& state, unsigned vcpu) {
  state.post_wake(vcpu);
  // The wake-up must be visible before the IPI can arrive. With the xAPIC the ICR is written
  // through uncacheable MMIO, which is ordered after earlier stores; a WRMSR to the x2APIC ICR
  // is not serializing and may pass them (SDM 10.12.3), so fence first. Pairs with the parked
  // vCPU's take_wake after the HLT that the IPI ends (hv/vcpu.cpp park()).
  mmu::atomic_thread_fence(mmu::Order::seq_cst);
  if (state.cpu_of(vcpu) != x86::cpu_index()) cpu_work::kick(state.cpu_of(vcpu));
}

VmRunner::VmRunner(const x86::vmx::Capabilities& caps) {
  g_caps = &caps;
  free_before_ = x86::pmm::stats().free_frames;
  platform_pages_before_ = platform().pages_in_use();
}

void run_vm_reset(RunVm& rv, unsigned id, const char* name, unsigned vcpus) {
  rv.id = id;
  rv.name = name;
  rv.vcpus = vcpus < 1 ? 1 : vcpus > kMaxVcpus ? kMaxVcpus : vcpus;
  for (unsigned i = 0; i < kMaxVcpus; i++) {
    rv.start[i] = VcpuStart{};
    rv.launch[i] = VcpuLaunch::kRun;
    rv.job[i] = RunVm::Job{};
  }
  rv.vcpu0_ends_vm = false;
  rv.ready = false;
  rv.t0 = rv.t1 = 0;
  rv.failure = nullptr;
  rv.why[0] = 0;
  // The VM id is set by Vm::init/init_pool; the UART and the device flag by the caller.
  rv.vm.reset_config();
  rv.vm.vcpu_count = rv.vcpus;
  // hv.pt-limit=N overrides the default page-table limit of every VM (hv/pt_limit.h).
  if (cmdline::has("hv.pt-limit")) rv.vm.set_page_limit_override(cmdline::get_number("hv.pt-limit", 0));
  // hv.zap-backlog=N: the MMU's fast-zap backpressure (mmu::MmuConfig::max_teardown_backlog).
  if (cmdline::has("hv.zap-backlog")) rv.vm.set_teardown_backlog(cmdline::get_number("hv.zap-backlog", 0));
  // hv.fault-around=N: leaves installed next to a 4 KiB or 2 MiB fault (mmu::MmuConfig::fault_around).
  if (cmdline::has("hv.fault-around")) rv.vm.set_fault_around(cmdline::get_number("hv.fault-around", 0));
}

RunVm* VmRunner::add(unsigned id, const char* name, unsigned vcpus) {
  if (count_ == kMaxVms) return nullptr;
  RunVm& rv = g_vms[count_];
  run_vm_reset(rv, id, name, vcpus);
  vms_[count_++] = &rv;
  return &rv;
}

const char* VmRunner::fail(RunVm& rv, const char* why) {
  x86::log::error("vm%u: %s", rv.id, why);
  if (!create_failure_) create_failure_ = why;
  return why;
}

// Places, starts and waits for every vCPU of every VM. False when a vCPU did not finish.
bool VmRunner::start_and_wait() {
  const uint64_t limit_ms = time_limit_ms();
  const uint64_t khz = x86::timer::tsc_khz();
  const uint64_t deadline = limit_ms ? x86::rdtsc() + limit_ms * khz : 0;
  const uint64_t stat_ms = stat_period_ms();
  const unsigned self = x86::cpu_index();
  unsigned cpu = 0;
  for (unsigned v = 0; v < count_; v++) {
    RunVm& rv = *vms_[v];
    rv.state.reset(rv.vcpus, limit_ms, deadline);
    rv.vm.vcpu_count = rv.vcpus;
    // The local APICs, before any vCPU can send to another (APIC ID = vCPU index).
    rv.vm.run_state = &rv.state;
    rv.vm.stat_clock.start(x86::rdtsc(), stat_ms * khz);  // hv.stat-ms (hv/vm_stat.h)
    vm_stress_start(rv.vm, x86::rdtsc(), khz);             // hv.stress-* (hv/vm_stress.h)
    nmi_button_start(rv.vm, x86::rdtsc(), khz);            // hv.nmi-ms (hv/devices/nmi_button.h)
    migrate_arm(rv, x86::rdtsc(), khz);                    // hv.migrate-ms (hv/migrate.h)
    const bool tsc_deadline = vcpu_features(*g_caps).tsc_deadline;
    for (unsigned i = 0; i < kMaxVcpus; i++) {
      rv.vm.lapic[i].reset(i, khz, tsc_deadline);
      rv.vm.lapic[i].reset_stats();
    }
    // INIT/SIPI latches: the APs that start in wait-for-SIPI have their power-up INIT pending.
    for (unsigned i = 0; i < kMaxVcpus; i++) rv.vm.sipi[i].reset(i < rv.vcpus && rv.launch[i] == VcpuLaunch::kWaitForSipi);
    // The hardware APIC path (hv/apicv.h): deliveries to the PIR, before any vCPU can send.
    for (unsigned i = 0; i < kMaxVcpus; i++) rv.vm.lapic[i].set_posted(apicv_enabled(*g_caps));
    for (unsigned i = 0; i < rv.vcpus; i++) {
      rv.state.place(i, cpu++);
      rv.start[i].time_budget_us = limit_ms * 1000;
      rv.job[i] = RunVm::Job{&rv, i, nullptr, 0, 0};
    }
    live_vms_add(rv.vm);
  }
  if (limit_ms) x86::log::info("run: time limit %lu ms per VM (hv.time-limit-ms)", limit_ms);
  else x86::log::info("run: no time limit (hv.time-limit-ms=0)");
  flush0_[0] = cpu_work::flush_requests();
  flush0_[1] = cpu_work::flush_ipis();
  flush0_[2] = cpu_work::flush_skipped();
  flush0_[3] = cpu_work::remote_flushes();
  const uint64_t t0 = x86::timer::now_us();
  RunVm::Job* mine = nullptr;
  for (unsigned v = 0; v < count_; v++) {
    RunVm& rv = *vms_[v];
    rv.t0 = t0;
    for (unsigned i = 0; i < rv.vcpus; i++) {
      RunVm::Job& j = rv.job[i];
      if (rv.state.cpu_of(i) == self) {
        mine = &j;  // run below, once every other vCPU has been posted
        continue;
      }
      // Release (cpu_work::post): the job, the VM's description and its run state are
      // published to the target, whose acquire load of the work item picks them up.
      if (!cpu_work::post(rv.state.cpu_of(i), vcpu_job, &j)) {
        j.init_failure = "its CPU is busy";
        if (rv.state.request_stop(i)) kick_vcpus(rv.state, i);
        rv.state.mark_finished(i);
      }
    }
  }
  // Each vCPU stops by itself (its VM's time limit, stop or finish request); the margin only
  // catches a CPU that stopped answering altogether.
  const uint64_t wait_until = limit_ms ? t0 + limit_ms * 1000 + kFinishMarginUs : 0;
  if (mine) vcpu_job(mine);
  // Wait for the others.
  bool all = false;
  for (;;) {
    all = true;
    for (unsigned v = 0; v < count_; v++) all = all && vms_[v]->state.all_finished();
    if (all || (wait_until && x86::timer::now_us() > wait_until)) break;
    // Wait like an idle AP: requests, a safe point with deferred work, sleep until a tick or IPI.
    cpu_work::service();
    x86::tick::consume();
    idle_work();
    asm volatile("sti; hlt; cli" ::: "memory");
  }
  // A VM that was migrated (hv/migrate.h) is its target from here on: the verdict, the summary
  // and the destroy are the target's (the source is destroyed already). Its vCPUs all finished.
  if (all)
    for (unsigned v = 0; v < count_; v++)
      if (RunVm* target = migrate_target_of(*vms_[v])) vms_[v] = target;
  for (unsigned v = 0; v < count_; v++) {
    RunVm& rv = *vms_[v];
    live_vms_remove(rv.vm);
    // The VM ran until its last vCPU ended (read after the finished edge, when all finished).
    rv.t1 = rv.t0;
    if (all)
      for (unsigned i = 0; i < rv.vcpus; i++)
        if (rv.job[i].t1 > rv.t1) rv.t1 = rv.job[i].t1;
  }
  return all;
}

// The verdict of one VM and its stop lines: the vCPU that stopped the VM names the failure,
// else the first vCPU that failed; a VM whose vCPUs all passed still fails when its guest
// never reported a result.
const char* VmRunner::verdict(RunVm& rv) {
  const unsigned n = rv.vcpus;
  const unsigned id = rv.id;
  const uint32_t by = rv.state.stopped_by();
  const unsigned first = by && by - 1 < n ? by - 1 : n;
  const char* failure = nullptr;
  unsigned passed = 0;
  auto reason = [&rv](unsigned i) { return rv.job[i].init_failure ? rv.job[i].init_failure : rv.vcpu[i].stop_reason(); };
  auto ok = [&rv](unsigned i) { return !rv.job[i].init_failure && !rv.vcpu[i].failed(); };
  for (unsigned k = 0; k <= n; k++) {
    const unsigned i = k == 0 ? first : k - 1;
    if (i >= n || (k > 0 && i == first)) continue;
    if (ok(i)) {
      passed++;
    } else if (!failure) {
      x86::format(rv.why, sizeof rv.why, "vm%u: %s", id, reason(i));
      failure = rv.why;
      x86::log::error("vm%u: stopped: %s", id, reason(i));
    }
  }
  if (n == 1 && !failure) x86::log::info("vm%u: stopped: %s", id, reason(0));
  if (n > 1)
    for (unsigned i = 0; i < n; i++) {
      if (ok(i)) x86::log::info("vm%u: vcpu%u stopped: %s", id, i, reason(i));
      else x86::log::error("vm%u: vcpu%u stopped: %s", id, i, reason(i));
    }
  for (unsigned i = 0; i < n; i++) print_vcpu_summary(rv, i);
  x86::log::info("vm%u: %u of %u vCPUs passed", id, passed, n);
  if (!failure && !rv.vm.result_valid()) {
    x86::format(rv.why, sizeof rv.why, "vm%u: the guest never reported an exit status", id);
    failure = rv.why;
    x86::log::error("%s", rv.why);
  }
  if (!failure && n > 1) x86::log::info("vm%u: stopped: every vCPU passed", id);
  return failure;
}

void VmRunner::destroy_all(const char*& failure) {
  for (unsigned v = 0; v < count_; v++) vms_[v]->vm.destroy();
  // The epoch may still hold retired pages: run every callback before counting.
  epoch().barrier();
  // Every page the VMs took must be back, except the epoch's per-CPU tracking pages: the epoch
  // is machine-wide and keeps its open and spare batch pages for the next retire (at most two
  // per CPU, all allocated through the platform).
  const uint64_t taken = free_before_ - x86::pmm::stats().free_frames;
  const uint64_t epoch_kept = platform().pages_in_use() - platform_pages_before_;
  const bool returned = taken == epoch_kept && epoch_kept <= 2ull * x86::smp::cpus_online();
  for (unsigned v = 0; v < count_; v++) {
    const unsigned id = vms_[v]->id;
    if (returned)
      x86::log::info("vm%u: destroyed, all its memory returned (the epoch keeps %lu tracking page(s) for reuse)", id,
                     epoch_kept);
    else
      x86::log::error("vm%u: destroyed; the VMs' pages were not all returned (%ld missing; MMU platform pages live %lu, "
                      "epoch pending pages %lu)",
                      id, static_cast<long>(taken - epoch_kept), platform().pages_in_use(), epoch().pending_pages());
  }
  if (!returned && !failure) failure = "pages not returned to the allocator after destroy";
}

const char* VmRunner::run() {
  const char* failure = create_failure_;
  for (unsigned v = 0; v < count_ && !failure; v++)
    if (!vms_[v]->ready) failure = fail(*vms_[v], "the VM was neither made ready nor failed by its caller");
  if (!failure) {
    unsigned cpus = 0;
    for (unsigned v = 0; v < count_; v++) cpus += vms_[v]->vcpus;
    if (cpus > x86::smp::cpus_online()) failure = "the VMs have more vCPUs than there are CPUs";
  }
  if (!failure) {
    if (!start_and_wait()) {
      // A vCPU whose CPU never came back can't be torn down safely: leave the VMs as they are.
      x86::log::error("run: a vCPU did not finish within the time limit + %lu s; the VMs are left in place",
                      kFinishMarginUs / 1'000'000);
      return "a vCPU did not finish";
    }
    for (unsigned v = 0; v < count_; v++) {
      RunVm& rv = *vms_[v];
      // Every vCPU finished (acquire): their consoles are the runner's now.
      rv.vm.uart.flush();
      for (unsigned i = 0; i < rv.vcpus; i++) rv.vcpu[i].console_flush();
      rv.failure = verdict(rv);
      if (rv.failure && !failure) failure = rv.failure;
      if (count_ > 1 && rv.name)
        x86::log::info("vm%u: guest %s: %s", rv.id, rv.name, rv.failure ? "FAIL" : "PASS");
    }
  }
  uint64_t flushes[4] = {cpu_work::flush_requests() - flush0_[0], cpu_work::flush_ipis() - flush0_[1],
                         cpu_work::flush_skipped() - flush0_[2], cpu_work::remote_flushes() - flush0_[3]};
  for (unsigned v = 0; v < count_; v++)
    if (vms_[v]->ready && vms_[v]->t0) {
      print_vm_summary(*vms_[v], count_ == 1 ? flushes : nullptr);
      vm_stress_finish(vms_[v]->vm);
      nmi_button_finish(vms_[v]->vm);
    }
  if (count_ > 1 && vms_[0]->t0)
    x86::log::info("run: remote flushes: %lu requests, %lu IPIs to cpus in guest mode, %lu left to the next entry, %lu done "
                   "by other cpus",
                   flushes[0], flushes[1], flushes[2], flushes[3]);
  destroy_all(failure);
  trace::print_all();  // hv.trace (hv/trace.h): every CPU's records, now that the VMs are gone
  return failure;
}

}  // namespace hv
