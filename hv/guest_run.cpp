// Running multiboot guests, each in its own VM (see guest_loader.h), and their summaries.
//
// A VM: a 64 MiB RAM pool, 2 MiB-aligned; slot 0 (hv's) maps its first 32 MiB at
// guest-physical 0; the other 32 MiB are the guest's to map with memslot hypercalls
// (docs/hypercalls.md). Devices: the 16550 at 0x3F8 and the exit port 0xF4.
//
// hv.run=guest-A runs one VM (vm1); hv.run=guest-A,guest-B runs two at once (vm1 and vm2),
// each on CPUs of its own. vCPUs (hv.vcpus=N per VM, default 1): vCPU i of the VM whose first
// CPU is c runs on CPU c + i, started through the same cpu_work work items as memtouch's vCPUs
// (hv/hypervisor.cpp): vm1's vCPU 0 on the calling CPU (the BSP), every other vCPU posted to its
// CPU. vCPU 0 starts in the multiboot state; vCPU i > 0 at the same entry with
// EAX = HV_AP_MAGIC, EBX = i, ECX = N (docs/hypercalls.md "Several vCPUs"). When a VM's vCPU 0
// stops, that VM is over: its other vCPUs are asked to finish (VmRun::finish_requested).
#include "arch/x86/cpu.h"
#include "arch/x86/format.h"
#include "arch/x86/log.h"
#include "arch/x86/pmm.h"
#include "arch/x86/smp.h"
#include "arch/x86/string.h"
#include "arch/x86/tick.h"
#include "arch/x86/timer.h"
#include "arch/x86/vmx/exit_reason.h"
#include "hv/bench_vm.h"
#include "hv/cmdline.h"
#include "hv/cpu_work.h"
#include "hv/guest_loader.h"
#include "hv/hypercall.h"
#include "hv/hypervisor.h"
#include "hv/mmu_platform.h"
#include "hv/vcpu.h"
#include "hv/vm.h"
#include "mmu/epoch.h"

namespace hv {

namespace {

constexpr unsigned kMaxVms = 2;
constexpr uint64_t kPoolBytes = 64ull << 20;
constexpr uint64_t kBootRamBytes = 32ull << 20;
constexpr uint64_t kTimeBudgetUs = 120'000'000;
constexpr uint64_t kApStackTop = 0x8000;  // unused by the library (it sets its own), harmless

// A word that exists only in hv's own memory (its .data, at a host-physical address inside
// hv's image from 0x200000): the isolation guest (tests/guests/guest_isolation.cpp) scans its
// guest-physical space for it and fails if it ever reads it. The guest carries only its
// complement, so the value can't come from the guest's own image.
volatile uint64_t g_isolation_marker = 0x68764D61726B6572ull;  // "hvMarker"

const x86::vmx::Capabilities* g_caps = nullptr;

struct GuestVm;

// One vCPU's run on its CPU, as hypervisor.cpp's VcpuJob.
struct Job {
  GuestVm* vm = nullptr;
  unsigned index = 0;
  VcpuStart start{};
  uint64_t rax = 0;  // EAX at entry: the multiboot magic, or HV_AP_MAGIC
  const char* init_failure = nullptr;
  uint64_t t0 = 0, t1 = 0;
  bool finished = false;  // release-stored when the vCPU has stopped and its VMCS is cleared
};

// Everything of one running guest.
struct GuestVm {
  Vm vm;
  Vcpu vcpus[Vm::kMaxVcpus];
  VmRun run;
  Job jobs[Vm::kMaxVcpus];
  const char* name = nullptr;
  uint64_t entry = 0;
  uint64_t t0 = 0, t1 = 0;
  const char* failure = nullptr;
  char why[240] = {};
};
GuestVm g_vms[kMaxVms];

// Ask every vCPU of the VM but `self` to stop at its next safe point; the IPI makes that soon.
void kick_others(VmRun& run, unsigned self) {
  for (unsigned i = 0; i < run.vcpus; i++)
    if (i != self) cpu_work::kick(run.cpu_of[i]);
}

// A vCPU's whole life on its CPU: VMCS setup, the run loop, VMCLEAR.
void vcpu_job(void* p) {
  Job& j = *static_cast<Job*>(p);
  GuestVm& g = *j.vm;
  Vcpu& v = g.vcpus[j.index];
  j.t0 = x86::timer::now_us();
  j.init_failure = v.init(g.vm, j.index, *g_caps, j.start);
  if (j.init_failure) {
    // The others may wait for this vCPU inside the guest: stop the VM.
    uint32_t expected = 0;
    if (__atomic_compare_exchange_n(&g.run.stop_requested, &expected, j.index + 1, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED))
      kick_others(g.run, j.index);
  } else {
    v.regs.rax = j.rax;
    v.run();
  }
  if (j.index == 0) {
    // vCPU 0 is done: so is its VM.
    __atomic_store_n(&g.run.finish_requested, 1, __ATOMIC_RELAXED);
    kick_others(g.run, 0);
  }
  j.t1 = x86::timer::now_us();
  v.release();
  // Release: the BSP's acquire load sees the vCPU's final state and counters.
  __atomic_store_n(&j.finished, true, __ATOMIC_RELEASE);
}

unsigned guest_phys_bits() {
  const unsigned host = (x86::cpuid(0x80000000).eax >= 0x80000008) ? (x86::cpuid(0x80000008).eax & 0xFF) : 36;
  return host > 48 ? 48 : host;
}

const x86::mb2::Module* find_module(const x86::mb2::BootInfo& boot, const char* name) {
  for (unsigned i = 0; i < boot.module_count; i++)
    if (boot.modules[i].cmdline && !strcmp(boot.modules[i].cmdline, name)) return &boot.modules[i];
  return nullptr;
}

uint64_t tsc_ms(uint64_t tsc) { return tsc / (x86::timer::tsc_khz() ? x86::timer::tsc_khz() : 1); }

void print_vcpu_summary(GuestVm& g, unsigned i) {
  const Vcpu& v = g.vcpus[i];
  const Job& j = g.jobs[i];
  const VcpuStats& s = v.vstats();
  x86::log::info("vm%u: vcpu%u on cpu%u: %s, %lu exits (ept violation %lu, external interrupt %lu, preemption timer %lu), "
            "%lu root switch(es), ran %lu ms (guest %lu ms)",
            g.vm.id(), i, v.cpu(), j.init_failure ? "not started" : v.failed() ? "FAIL" : "pass", s.exits,
            s.ept_violations, s.external_interrupts, s.preemption_timer, s.root_switches, (j.t1 - j.t0) / 1000,
            tsc_ms(s.guest_tsc));
}

void print_summary(GuestVm& g) {
  Vm& vm = g.vm;
  const VmStats& st = vm.stats();
  char line[400];
  size_t len = 0;
  // static_cast: the counters may be atomic wrappers, which varargs must not receive.
  uint64_t total = static_cast<uint64_t>(st.exits_other);
  for (unsigned r = 0; r < x86::vmx::kExitReasonCount; r++) {
    const uint64_t n = static_cast<uint64_t>(st.exits[r]);
    if (!n) continue;
    total += n;
    len += x86::format(line + len, sizeof line - len, "%s%s %lu", len ? ", " : "", x86::vmx::exit_reason_name(r), n);
  }
  const unsigned id = vm.id();
  x86::log::info("vm%u: %lu exits (%s)", id, total, line);
  hv_stats s;
  snapshot_stats(vm, s);
  const uint64_t* v = s.value;
  x86::log::info("vm%u: ept violations %lu, leaves 4K %lu 2M %lu 1G %lu, ept table pages %lu", id, static_cast<uint64_t>(st.ept_violations),
            v[HV_STAT_LEAVES_4K], v[HV_STAT_LEAVES_2M], v[HV_STAT_LEAVES_1G], v[HV_STAT_TABLE_PAGES]);
  x86::log::info("vm%u: zaps %lu (%lu leaves), tlb flushes %lu, roots live %lu invalid %lu, pages awaiting reclaim %lu", id,
            v[HV_STAT_ZAP_CALLS], v[HV_STAT_ZAPPED_LEAVES], v[HV_STAT_TLB_FLUSHES], v[HV_STAT_ROOTS_LIVE],
            v[HV_STAT_ROOTS_INVALID], v[HV_STAT_PAGES_AWAITING_RECLAIM]);
  const mmu::MmuStats m = vm.mmu().stats();
  x86::log::info("vm%u: root teardowns queued %lu, deferred teardown steps %lu (%lu run by a CPU helping another's queue)", id,
                 m.teardowns_queued, m.teardown_steps, m.teardown_steps_helped);
  print_deferred_summary(vm);
  x86::log::info("vm%u: unbacked reads %lu, unbacked writes dropped %lu, read-only writes dropped %lu, hypercalls %lu (%lu errors)",
            id, v[HV_STAT_UNBACKED_READS], v[HV_STAT_UNBACKED_WRITES], v[HV_STAT_READONLY_WRITES], v[HV_STAT_HYPERCALLS],
            v[HV_STAT_HYPERCALL_ERRORS]);
  // Live now (the VM has stopped; what it still holds), against the limit if there is one.
  if (m.table_pages_limit)
    x86::log::info("vm%u: MMU pages counted against hv.pt-limit: %lu of %lu%s", id, m.table_pages_live, m.table_pages_limit,
              m.table_pages_refused ? " (limit hit)" : "");
  else
    x86::log::info("vm%u: MMU pages live %lu (no hv.pt-limit)", id, m.table_pages_live);
  x86::log::info("vm%u: ran %lu ms on %u vCPU(s)", id, (g.t1 - g.t0) / 1000, g.run.vcpus);
}

// Creates VM `id` for GRUB module `name` and loads the image. nullptr or why not (the VM is
// then destroyed again by the caller like any other).
const char* create_vm(GuestVm& g, unsigned id, const x86::mb2::BootInfo& boot, const char* name, unsigned vcpus,
                      uint64_t limit, int* stage) {
  g.name = name;
  g.failure = nullptr;
  g.vm.vcpu_count = vcpus;
  const x86::mb2::Module* mod = find_module(boot, name);
  if (!mod) {
    x86::format(g.why, sizeof g.why, "no GRUB module named \"%s\"", name);
    return g.why;
  }
  // hv.backing and hv.pool-mib (hv/bench_vm.h); the defaults without them.
  const BenchVmConfig bench = bench_vm_config(kPoolBytes, g_caps->ept_1g ? 3 : 2);
  g.vm.mmu().set_page_limit(limit);
  *stage = 1;
  if (const char* err = g.vm.init_pool(id, bench.pool_bytes, kBootRamBytes, bench.max_level, guest_phys_bits(),
                                       bench.align_1g))
    return err;
  *stage = 2;
  g.vm.devices = true;
  g.vm.uart.reset(id);
  g.vm.result_valid = false;
  g.vm.result = 0;
  if (const char* err = load_multiboot(g.vm, reinterpret_cast<const uint8_t*>(mod->start), mod->end - mod->start, &g.entry)) {
    x86::format(g.why, sizeof g.why, "%s: %s", name, err);
    return g.why;
  }
  x86::log::info("vm%u: multiboot guest %s, %lu bytes, entry 0x%lx; RAM %lu MiB in slot 0 of a %lu MiB pool; %u vCPU(s)", id,
            name, mod->end - mod->start, g.entry, g.vm.ram_bytes() >> 20, g.vm.pool_bytes() >> 20, vcpus);
  return bench_vm_prepare(g.vm);  // hv.bench-* only (hv/bench_vm.h)
}

// Prepares the jobs of VM `g`: vCPU i on CPU first_cpu + i.
void prepare_jobs(GuestVm& g, unsigned n, unsigned first_cpu) {
  g.run = VmRun{};
  g.run.vcpus = n;
  for (unsigned i = 0; i < n; i++) {
    g.run.cpu_of[i] = first_cpu + i;
    Job& j = g.jobs[i];
    j = Job{};
    j.vm = &g;
    j.index = i;
    if (i == 0) {
      // Multiboot leaves ESP undefined; give the guest a harmless value inside its RAM.
      j.start = VcpuStart{g.entry, 0x8000, kMultibootInfoGpa, 0, kTimeBudgetUs};
      j.rax = kMultibootBootMagic;
    } else {
      j.start = VcpuStart{g.entry, kApStackTop, i, 0, kTimeBudgetUs};
      j.start.rcx = n;
      j.rax = HV_AP_MAGIC;
      // No interrupt ever reaches the guest (external-interrupt exiting), but under Bochs a
      // guest entered with IF = 0 only leaves on the preemption timer (see VcpuStart), which
      // would make every remote flush to it wait a whole slice. vCPUs > 0 are hv's own
      // protocol, so their entry state may say IF = 1 (docs/hypercalls.md).
      j.start.interrupts_enabled = true;
    }
    j.start.run = &g.run;
  }
}

// Runs every vCPU of the `count` VMs; returns when all have finished (false: one never did,
// and the VMs must be left in place).
bool run_all(unsigned count, unsigned n) {
  const uint64_t t0 = x86::timer::now_us();
  for (unsigned v = 0; v < count; v++) g_vms[v].t0 = t0;
  for (unsigned v = 0; v < count; v++)
    for (unsigned i = 0; i < n; i++) {
      Job& j = g_vms[v].jobs[i];
      const unsigned cpu = g_vms[v].run.cpu_of[i];
      if (cpu == 0) continue;  // the BSP's own: below
      if (!cpu_work::post(cpu, vcpu_job, &j)) {
        j.init_failure = "its CPU is busy";
        j.finished = true;
      }
    }
  vcpu_job(&g_vms[0].jobs[0]);
  const uint64_t deadline = x86::timer::now_us() + kTimeBudgetUs + 10'000'000;
  for (;;) {
    bool all = true;
    for (unsigned v = 0; v < count; v++) {
      GuestVm& g = g_vms[v];
      bool vm_done = true;
      for (unsigned i = 0; i < n; i++)
        if (!__atomic_load_n(&g.jobs[i].finished, __ATOMIC_ACQUIRE)) vm_done = false;
      if (vm_done && !g.t1) g.t1 = x86::timer::now_us();
      all = all && vm_done;
    }
    if (all) return true;
    if (x86::timer::now_us() > deadline) return false;
    // Wait like an idle AP: requests, a safe point with deferred work, sleep until a tick or IPI.
    cpu_work::service();
    x86::tick::consume();
    idle_work();
    asm volatile("sti; hlt; cli" ::: "memory");
  }
}

// The verdict of VM `g` and its stop lines.
const char* verdict(GuestVm& g) {
  const unsigned n = g.run.vcpus;
  const unsigned id = g.vm.id();
  const char* failure = nullptr;
  // The vCPU that stopped the VM names it, else the first that failed.
  const unsigned first = g.run.stop_requested ? g.run.stop_requested - 1 : 0;
  for (unsigned k = 0; k <= n && !failure; k++) {
    const unsigned i = k == 0 ? first : k - 1;
    if (i >= n) continue;
    const char* why = g.jobs[i].init_failure ? g.jobs[i].init_failure : g.vcpus[i].stop_reason();
    if (g.jobs[i].init_failure || g.vcpus[i].failed()) {
      if (n == 1) x86::format(g.why, sizeof g.why, "vm%u: %s", id, why);
      else x86::format(g.why, sizeof g.why, "vm%u: vcpu%u: %s", id, i, why);
      failure = g.why;
    }
  }
  for (unsigned i = 0; i < n; i++) {
    const char* why = g.jobs[i].init_failure ? g.jobs[i].init_failure : g.vcpus[i].stop_reason();
    const bool bad = g.jobs[i].init_failure || g.vcpus[i].failed();
    // One vCPU: the line as before ("vm1: stopped: ..."); several: one per vCPU.
    if (n == 1) {
      if (bad) x86::log::error("vm%u: stopped: %s", id, why);
      else x86::log::info("vm%u: stopped: %s", id, why);
    } else {
      if (bad) x86::log::error("vm%u: vcpu%u stopped: %s", id, i, why);
      else x86::log::info("vm%u: vcpu%u stopped: %s", id, i, why);
    }
  }
  if (n > 1)
    for (unsigned i = 0; i < n; i++) print_vcpu_summary(g, i);
  if (!failure && !g.vm.result_valid) {
    x86::format(g.why, sizeof g.why, "vm%u: the guest never reported an exit status", id);
    failure = g.why;
  }
  return failure;
}

}  // namespace

void print_deferred_summary(Vm& vm) {
  const DeferredStats d = vm.mmu().deferred_stats();
  x86::log::info("vm%u: deferred work: %lu passes (%lu with teardown work, %lu units, at most %lu per pass, budget %lu), "
            "longest pass %lu TSC ticks",
            vm.id(), d.passes, d.busy_passes, d.units, d.max_units, d.max_budget, d.max_tsc);
  // The MMU reports the units it really did: a pass may cross its budget by one table at most
  // (mmu::Mmu::kTeardownOvershoot); say so loudly if one ever went further.
  if (d.max_units > d.max_budget + mmu::Mmu::kTeardownOvershoot)
    x86::log::error("vm%u: a deferred-work pass used %lu units, over its budget of %lu (+%u)", vm.id(), d.max_units,
                    d.max_budget, mmu::Mmu::kTeardownOvershoot);
}

const char* run_multiboot_guest(const x86::mb2::BootInfo& boot, const char* list, const x86::vmx::Capabilities& caps) {
  static char names[kMaxVms][48];
  static char why[240];
  g_caps = &caps;
  // "guest-A" or "guest-A,guest-B".
  unsigned count = 0;
  for (const char* p = list; *p && count < kMaxVms; count++) {
    size_t k = 0;
    while (p[k] && p[k] != ',') k++;
    const size_t len = k < sizeof names[0] - 1 ? k : sizeof names[0] - 1;
    memcpy(names[count], p, len);
    names[count][len] = 0;
    p += k;
    if (*p == ',') p++;
  }
  if (!count) return "hv.run names no guest";
  unsigned max = x86::smp::cpus_online() / count;
  if (max > Vm::kMaxVcpus) max = Vm::kMaxVcpus;
  if (!max) return "hv.run: fewer CPUs than VMs";
  unsigned n = static_cast<unsigned>(cmdline::get_number("hv.vcpus", 1));
  if (n < 1) n = 1;
  if (n > max) {
    x86::log::warn("hv.vcpus=%u but only %u CPU(s) per VM: %u used", n, max, max);
    n = max;
  }
  const uint64_t limit = cmdline::get_number("hv.pt-limit", 0);

  const uint64_t free_before = x86::pmm::stats().free_frames;
  const uint64_t platform_pages_before = platform().pages_in_use();
  const char* failure = nullptr;
  // Per VM: 0 nothing done, 1 init_pool ran (destroy() is safe after a failed one too), 2 it
  // succeeded (statistics to print).
  int stage[kMaxVms] = {};
  unsigned created = 0;
  for (unsigned v = 0; v < count && !failure; v++) {
    created++;
    failure = create_vm(g_vms[v], v + 1, boot, names[v], n, limit, &stage[v]);
    if (failure) x86::log::error("vm%u: %s", v + 1, failure);
    else prepare_jobs(g_vms[v], n, v * n);
  }
  if (!failure) {
    x86::log::info("vm1: hv's isolation marker 0x%lx is at host-physical 0x%lx (no guest may read it)", g_isolation_marker,
              reinterpret_cast<uint64_t>(&g_isolation_marker));
    set_live_vm(&g_vms[0].vm);  // idle CPUs help with its deferred work (one VM at a time)
    const bool all_finished = run_all(count, n);
    set_live_vm(nullptr);
    if (!all_finished) {
      // A vCPU whose CPU never came back can't be torn down safely: leave the VMs as they are.
      x86::log::error("vm: a vCPU did not finish within its time budget + 10 s; the VMs are left in place");
      return "a vCPU did not finish";
    }
    for (unsigned v = 0; v < count; v++) {
      g_vms[v].vm.uart.flush();
      g_vms[v].failure = verdict(g_vms[v]);
      if (g_vms[v].failure && !failure) failure = g_vms[v].failure;
      if (count > 1)
        x86::log::info("vm%u: guest %s: %s", v + 1, names[v], g_vms[v].failure ? "FAIL" : "PASS");
    }
  }
  for (unsigned v = 0; v < created; v++) {
    if (stage[v] == 2) print_summary(g_vms[v]);
    if (stage[v] >= 1) g_vms[v].vm.destroy();
  }
  epoch().barrier();
  // As for vm0 (hv/hypervisor.cpp): every page back, except the epoch's per-CPU batch pages.
  const uint64_t taken = free_before - x86::pmm::stats().free_frames;
  const uint64_t epoch_kept = platform().pages_in_use() - platform_pages_before;
  const bool returned = taken == epoch_kept && epoch_kept <= 2ull * x86::smp::cpus_online();
  for (unsigned v = 0; v < created; v++) {
    if (returned) x86::log::info("vm%u: destroyed, all its memory returned", v + 1);
    else x86::log::error("vm%u: destroyed; the VMs' pages were not all returned (%ld missing)", v + 1, static_cast<long>(taken));
  }
  if (!returned && !failure) {
    x86::format(why, sizeof why, "vm%s: pages not returned to the allocator after destroy", count > 1 ? "s" : "1");
    failure = why;
  }
  return failure;
}

}  // namespace hv
