// The VMX part of a run (see hypervisor.h).
//
// Order matters at shutdown: the vCPU's VMCS is cleared (VMCLEAR writes its cached state back
// and makes it inactive) and the EPT translations are flushed before the EPT tables and the
// guest RAM go back to the PMM; only then does each CPU execute VMXOFF.
#include "hv/hypervisor.h"

#include "arch/x86/cpu.h"
#include "arch/x86/format.h"
#include "arch/x86/log.h"
#include "arch/x86/percpu.h"
#include "arch/x86/pmm.h"
#include "arch/x86/smp.h"
#include "arch/x86/spinlock.h"
#include "arch/x86/string.h"
#include "arch/x86/tick.h"
#include "arch/x86/timer.h"
#include "arch/x86/vmx/capabilities.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/root_mode.h"
#include "hv/cmdline.h"
#include "hv/cpu_work.h"
#include "arch/x86/exit_status.h"
#include "hv/guest_loader.h"
#include "hv/guest_abi.h"
#include "hv/mmu_platform.h"
#include "hv/vcpu.h"
#include "hv/vm.h"
#include "mmu/epoch.h"

namespace hv {
namespace {

using namespace x86::vmx;

Capabilities g_caps;
Vm g_vm;
Vcpu g_vcpus[Vm::kMaxVcpus];
VmRun g_run;

// One vCPU's run on its CPU: what it was given and how it went.
struct VcpuJob {
  unsigned index = 0;
  VcpuStart start{};
  const char* init_failure = nullptr;
  uint64_t t0 = 0, t1 = 0;
  bool finished = false;  // set (release) when the vCPU has stopped and its VMCS is cleared
};
VcpuJob g_jobs[Vm::kMaxVcpus];

// Guest layout (guest-physical): the image at 64 KiB, RAM = 64 MiB in two slots:
//   [0, 2 MiB)      backing deliberately 4 KiB-misaligned: only 4 KiB leaves fit;
//   [2 MiB, 64 MiB) backing 2 MiB-aligned: 2 MiB leaves (1 GiB would need a 1 GiB slot).
// Each vCPU's stack and page tables are its own (tests/guests/memtouch_entry.asm).
constexpr uint64_t kGuestLoadGpa = 0x10000;
constexpr uint64_t kGuestStackTop = 0x80000;
constexpr uint64_t kGuestStackBytes = 4 * 0x4000;  // four 16 KiB stacks below kGuestStackTop
constexpr uint64_t kGuestRam = 64ull << 20;
constexpr uint64_t kGuestTimeBudgetUs = 60'000'000;
// With EPT 1 GiB pages and a free 1 GiB-aligned GiB of host memory (Bochs: mem=3072), a
// third slot [1 GiB, 2 GiB) whose gpa and backing are both 1 GiB-aligned: its first fault
// installs a 1 GiB leaf.
constexpr uint64_t kHugeSlotGpa = 1ull << 30;
constexpr uint64_t kHugeSlotBytes = 1ull << 30;
constexpr uint64_t kTickPeriodUs = 10'000;
constexpr unsigned kIdleBudget = 64;

struct RootArg {
  const char* why;
};
void enter_root_on_this_cpu(void* p) { static_cast<RootArg*>(p)->why = enter_root_mode(g_caps); }
void leave_root_on_this_cpu(void*) { leave_root_mode(); }
void start_tick_on_this_cpu(void*) { x86::tick::start_this_cpu(); }
void stop_tick_on_this_cpu(void*) { x86::tick::stop_this_cpu(); }

// The VM whose deferred MMU work idle CPUs help with. The lock keeps the VM from being
// destroyed under an idle CPU: idle only try-locks it (and does a bounded amount of work
// inside), the destroy path takes it for real to unpublish the VM.
x86::SpinLock g_live_lock;
Vm* g_live_vm GUARDED_BY(g_live_lock) = nullptr;
}  // namespace

void set_live_vm(Vm* vm) {
  g_live_lock.lock(x86::cpu_index());
  g_live_vm = vm;
  g_live_lock.unlock();
}

// Idle is a safe point too: no read-side section is open, so report a quiescent state, run
// this CPU's share of the live VM's deferred MMU work (root teardown it queued, bounded) and
// its ready epoch callbacks (bounded). The epoch exists before the hook is installed.
void idle_work() {
  epoch().quiescent();
  const unsigned cpu = x86::cpu_index();
  if (g_live_lock.try_lock_for(cpu, 1)) {
    if (g_live_vm) g_live_vm->mmu().run_deferred_work(kIdleBudget);
    g_live_lock.unlock();
  }
  epoch().poll(kIdleBudget);
}

namespace {

bool contains(const char* s, const char* what) {
  const size_t n = strlen(what);
  for (; *s; s++)
    if (!strncmp(s, what, n)) return true;
  return false;
}

const x86::mb2::Module* find_module(const x86::mb2::BootInfo& boot, const char* name) {
  for (unsigned i = 0; i < boot.module_count; i++)
    if (boot.modules[i].cmdline && contains(boot.modules[i].cmdline, name)) return &boot.modules[i];
  return nullptr;
}

// hv.guest=<mode> on the command line makes the memtouch guest misbehave on purpose, to check
// that hv survives it (tests/boot/scenarios/vmx-hostile-*, vmx-timer-*): see guest_abi.h.
uint64_t guest_mode() {
  char v[24];
  if (!cmdline::get("hv.guest", v, sizeof v)) return guest_abi::kModeNormal;
  if (!strcmp(v, "unbacked")) return guest_abi::kModeUnbacked;
  if (!strcmp(v, "triple-fault")) return guest_abi::kModeTripleFault;
  if (!strcmp(v, "bad-msr")) return guest_abi::kModeBadMsr;
  if (!strcmp(v, "spin")) return guest_abi::kModeSpin;
  x86::log::warn("unknown hv.guest \"%s\" ignored", v);
  return guest_abi::kModeNormal;
}

// vCPUs of the VM: one per online CPU (vCPU i pinned to CPU i), at most Vm::kMaxVcpus, at
// most hv.vcpus=N.
unsigned vcpu_count() {
  unsigned n = x86::smp::cpus_online();
  if (n > Vm::kMaxVcpus) n = Vm::kMaxVcpus;
  const uint64_t want = cmdline::get_number("hv.vcpus", n);
  if (want >= 1 && want < n) n = static_cast<unsigned>(want);
  return n;
}

// Is a 1 GiB-aligned GiB of host memory free?
bool huge_block_free() {
  return x86::pmm::stats().top >= 2 * kHugeSlotBytes && x86::pmm::aligned_run_free(kHugeSlotBytes / x86::pmm::k4K, kHugeSlotBytes);
}

unsigned guest_phys_bits() {
  const unsigned host = (x86::cpuid(0x80000000).eax >= 0x80000008) ? (x86::cpuid(0x80000008).eax & 0xFF) : 36;
  return host > 48 ? 48 : host;
}

uint64_t tsc_ms(uint64_t tsc) { return tsc / (x86::timer::tsc_khz() ? x86::timer::tsc_khz() : 1); }

void print_vcpu_summary(Vm& vm, const Vcpu& v, const VcpuJob& j) {
  const VcpuStats& s = v.vstats();
  const char* verdict = j.init_failure ? "not started" : v.failed() ? "FAIL" : "pass";
  x86::log::info("vm%u: vcpu%u on cpu%u: %s, %lu exits (ept violation %lu, external interrupt %lu, preemption timer %lu), "
            "%lu root switch(es), %lu entry retries, ran %lu ms (guest %lu ms, exit handling %lu ms)",
            vm.id(), j.index, v.cpu(), verdict, s.exits, s.ept_violations, s.external_interrupts, s.preemption_timer,
            s.root_switches, s.entry_retries, (j.t1 - j.t0) / 1000, tsc_ms(s.guest_tsc), tsc_ms(s.host_tsc));
}

void print_summary(Vm& vm, unsigned vcpus, uint64_t run_us, uint64_t flush0[4]) {
  VmStats& st = vm.stats();
  char line[400];
  size_t len = 0;
  uint64_t total = st.exits_other;
  for (unsigned r = 0; r < kExitReasonCount; r++) {
    if (!st.exits[r]) continue;
    total += st.exits[r];
    len += x86::format(line + len, sizeof line - len, "%s%s %lu", len ? ", " : "", exit_reason_name(r), st.exits[r].get());
  }
  x86::log::info("vm%u: %lu exits (%s)", vm.id(), total, line);
  uint64_t leaves[4];
  vm.mmu().leaves(leaves);
  x86::log::info("vm%u: ept violations %lu, leaves 4K %lu 2M %lu 1G %lu, ept table pages %lu", vm.id(), st.ept_violations.get(),
            leaves[1], leaves[2], leaves[3], vm.mmu().table_pages());
  auto mr = [&st](MapResult r) { return st.map_results[static_cast<int>(r)].get(); };
  x86::log::info("vm%u: faults fixed %lu, spurious %lu, retry %lu, unbacked %lu, oom %lu", vm.id(), mr(MapResult::kFixed),
            mr(MapResult::kSpurious), mr(MapResult::kRetry), mr(MapResult::kUnbacked), mr(MapResult::kOutOfMemory));
  x86::log::info("vm%u: remote flushes: %lu requests, %lu IPIs to cpus in guest mode, %lu left to the next entry, %lu done "
            "by other cpus",
            vm.id(), cpu_work::flush_requests() - flush0[0], cpu_work::flush_ipis() - flush0[1],
            cpu_work::flush_skipped() - flush0[2], cpu_work::remote_flushes() - flush0[3]);
  const mmu::MmuStats m = vm.mmu().stats();
  x86::log::info("vm%u: zaps %lu (%lu leaves), tlb flushes %lu, roots live %lu invalid %lu, pages awaiting reclaim %lu, "
            "root teardowns queued %lu",
            vm.id(), m.zap_calls, m.zapped_leaves, m.flushes, m.roots_live, m.roots_invalid, m.pages_awaiting_reclaim,
            m.teardowns_queued);
  print_deferred_summary(vm);
  x86::log::info("vm%u: ran %lu ms on %u vCPUs (guest %lu ms, exit handling %lu ms, summed over vCPUs)", vm.id(),
            run_us / 1000, vcpus, tsc_ms(st.guest_tsc), tsc_ms(st.host_exit_tsc));
}

// A vCPU's whole life on its CPU (the BSP calls it directly, the APs get it as a work item):
// VMCS setup, the run loop, VMCLEAR.
void vcpu_job(void* p) {
  VcpuJob& j = *static_cast<VcpuJob*>(p);
  Vcpu& v = g_vcpus[j.index];
  j.t0 = x86::timer::now_us();
  j.init_failure = v.init(g_vm, j.index, g_caps, j.start);
  if (j.init_failure) {
    // The others may wait for this vCPU in the guest: stop the VM.
    uint32_t expected = 0;
    if (__atomic_compare_exchange_n(&g_run.stop_requested, &expected, j.index + 1, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED))
      for (unsigned i = 0; i < g_run.vcpus; i++)
        if (i != j.index) cpu_work::kick(g_run.cpu_of[i]);
  } else {
    v.run();
  }
  j.t1 = x86::timer::now_us();
  v.release();
  // Release: the BSP's acquire load sees the vCPU's final state and counters.
  __atomic_store_n(&j.finished, true, __ATOMIC_RELEASE);
}

// Runs the memtouch guest on `n` vCPUs, vCPU i on CPU i. Returns nullptr when it passed.
const char* run_guest(const x86::mb2::Module& mod, uint64_t mode, unsigned n) {
  static char why[240];
  const uint64_t size = mod.end - mod.start;
  const bool huge = g_caps.ept_1g && huge_block_free();
  const Vm::SlotSpec slots[] = {
      {"low", 0, 2ull << 20, true},
      {"high", 2ull << 20, kGuestRam - (2ull << 20), false},
      {"huge", kHugeSlotGpa, kHugeSlotBytes, false, true},
  };
  const uint64_t free_before = x86::pmm::stats().free_frames;
  const uint64_t platform_pages_before = platform().pages_in_use();
  if (const char* err = g_vm.init(0, slots, huge ? 3 : 2, g_caps.ept_1g ? 3 : 2, guest_phys_bits())) return err;
  void* dst = g_vm.gpa_to_host(kGuestLoadGpa, size);
  if (!dst || size > kGuestStackTop - kGuestStackBytes - kGuestLoadGpa) {
    g_vm.destroy();
    return "the guest image does not fit below its stacks";
  }
  // Writing the backing is not mapping it: the EPT stays empty until the guest faults.
  memcpy(dst, reinterpret_cast<const void*>(mod.start), size);
  x86::log::info("vm0: %u vCPU%s (vcpu i on cpu i), %lu MiB guest RAM in %u slots (4K-only backing 0x%lx, 2M-aligned "
            "backing 0x%lx), image %lu bytes at 0x%lx",
            n, n == 1 ? "" : "s", g_vm.ram_bytes() >> 20, g_vm.slot_count(), g_vm.slot(0).backing_hpa,
            g_vm.slot(1).backing_hpa, size, kGuestLoadGpa);
  if (huge)
    x86::log::info("vm0: 1 GiB slot at gpa 0x%lx, 1G-aligned backing 0x%lx (1 GiB leaves fit)", kHugeSlotGpa,
              g_vm.slot(2).backing_hpa);
  set_live_vm(&g_vm);

  const uint64_t budget_ms = cmdline::get_number("hv.time-limit-ms", kGuestTimeBudgetUs / 1000);
  char test[32] = {};
  cmdline::get("hv.test", test, sizeof test);
  const bool bad_state = !strcmp(test, "bad-guest-state");
  g_run = VmRun{};
  g_run.vcpus = n;
  for (unsigned i = 0; i < n; i++) {
    g_run.cpu_of[i] = i;
    VcpuJob& j = g_jobs[i];
    j = VcpuJob{};
    j.index = i;
    j.start = VcpuStart{kGuestLoadGpa, kGuestStackTop, kGuestRam, mode, budget_ms * 1000};
    j.start.rdx = i;
    j.start.rcx = n;
    j.start.rdi = huge ? kHugeSlotGpa : 0;
    j.start.run = &g_run;
    j.start.corrupt_guest_state = bad_state && i == 0;
    j.start.interrupts_enabled = true;  // memtouch never looks at IF (see VcpuStart)
    // With several vCPUs, vCPU 0's HLT invalidates every root (a fast zap): the other vCPUs
    // are in the guest then, so their CPUs must answer the teardown's remote flushes, load a
    // fresh root at their next entry and fault their memory in again.
    j.start.fast_zap_at_hlt = n > 1 && i == 0;
  }
  uint64_t flush0[4] = {cpu_work::flush_requests(), cpu_work::flush_ipis(), cpu_work::flush_skipped(),
                        cpu_work::remote_flushes()};
  const uint64_t t0 = x86::timer::now_us();
  for (unsigned i = 1; i < n; i++) {
    if (!cpu_work::post(i, vcpu_job, &g_jobs[i])) {
      g_jobs[i].init_failure = "its CPU is busy";
      g_jobs[i].finished = true;
    }
  }
  vcpu_job(&g_jobs[0]);
  // Wait for the APs' vCPUs. Each stops by itself (time budget, VM stop request); the extra
  // margin only catches a CPU that stopped answering altogether.
  const uint64_t deadline = x86::timer::now_us() + budget_ms * 1000 + 10'000'000;
  bool all_finished = false;
  while (!all_finished) {
    all_finished = true;
    for (unsigned i = 0; i < n; i++)
      if (!__atomic_load_n(&g_jobs[i].finished, __ATOMIC_ACQUIRE)) all_finished = false;
    if (all_finished || x86::timer::now_us() > deadline) break;
    // The BSP idles like an AP meanwhile: requests, a safe point, deferred work, then sleep
    // until the next tick or IPI.
    cpu_work::service();
    x86::tick::consume();
    idle_work();
    asm volatile("sti; hlt; cli" ::: "memory");
  }
  const uint64_t t1 = x86::timer::now_us();
  if (!all_finished) {
    // A vCPU whose CPU never came back can't be torn down safely: leave the VM as it is.
    x86::log::error("vm0: a vCPU did not finish within its time budget + 10 s; the VM is left in place");
    return "vm0: a vCPU did not finish";
  }

  // Verdict: the first vCPU that failed names it (the one that stopped the VM, if any).
  const char* failure = nullptr;
  unsigned passed = 0;
  const unsigned first = g_run.stop_requested ? g_run.stop_requested - 1 : n;
  for (unsigned k = 0; k <= n; k++) {
    const unsigned i = k == 0 ? first : k - 1;
    if (i >= n || (k > 0 && i == first)) continue;
    const Vcpu& v = g_vcpus[i];
    const char* reason = g_jobs[i].init_failure ? g_jobs[i].init_failure : v.stop_reason();
    const bool ok = !g_jobs[i].init_failure && !v.failed();
    if (ok) passed++;
    if (!ok && !failure) {
      x86::format(why, sizeof why, "vm0: %s", reason);
      failure = why;
      x86::log::error("vm0: stopped: %s", reason);
    }
  }
  for (unsigned i = 0; i < n; i++) {
    const Vcpu& v = g_vcpus[i];
    const char* reason = g_jobs[i].init_failure ? g_jobs[i].init_failure : v.stop_reason();
    if (n > 1 || !failure) {
      if (g_jobs[i].init_failure || v.failed()) x86::log::error("vm0: vcpu%u stopped: %s", i, reason);
      else x86::log::info("vm0: vcpu%u stopped: %s", i, reason);
    }
  }
  for (unsigned i = 0; i < n; i++) print_vcpu_summary(g_vm, g_vcpus[i], g_jobs[i]);
  x86::log::info("vm0: %u of %u vCPUs passed", passed, n);
  if (!failure) x86::log::info("vm0: stopped: every vCPU reported a pass");
  print_summary(g_vm, n, t1 - t0, flush0);
  set_live_vm(nullptr);
  g_vm.destroy();
  // The epoch may still hold retired pages: run every callback before checking the count.
  epoch().barrier();
  // Every page the VM took must be back, except the epoch's per-CPU tracking pages: the epoch
  // is machine-wide and keeps its open and spare batch pages for the next retire (at most two
  // per CPU, all allocated through the platform).
  const uint64_t taken = free_before - x86::pmm::stats().free_frames;
  const uint64_t epoch_kept = platform().pages_in_use() - platform_pages_before;
  if (taken == epoch_kept && epoch_kept <= 2ull * x86::smp::cpus_online()) {
    x86::log::info("vm0: destroyed, all its memory returned (the epoch keeps %lu tracking page(s) for reuse)", epoch_kept);
  } else {
    x86::log::error("vm0: destroyed, %ld pages not returned (MMU platform pages live %lu, epoch pending pages %lu)",
               static_cast<long>(taken), platform().pages_in_use(), epoch().pending_pages());
    if (!failure) failure = "vm0: pages not returned to the allocator after destroy";
  }
  if (!failure && passed != n) failure = "vm0: a vCPU never reported a result";
  return failure;
}

}  // namespace

VmxRunResult run_vmx(const x86::mb2::BootInfo& boot, bool guest_required) {
  if (const char* why = probe(g_caps)) {
    x86::log::info("no VMX: %s", why);
    return {x86::kExitNoVmx, why};
  }
  log_capabilities(g_caps);
  epoch();  // create the machine's epoch on the BSP, before any AP's idle hook can use it
  cpu_work::init(idle_work, &g_caps);
  x86::tick::init(kTickPeriodUs);

  // Every online CPU into VMX root mode, the BSP first.
  const unsigned n = x86::smp::cpus_online();
  const char* failure = nullptr;
  for (unsigned cpu = 0; cpu < n; cpu++) {
    RootArg arg{"did not answer"};
    if (!cpu_work::run_on(cpu, enter_root_on_this_cpu, &arg, 2'000'000) || arg.why) {
      x86::log::error("vmx: cpu %u: %s", cpu, arg.why ? arg.why : "did not answer");
      failure = "vmx: a CPU could not enter VMX root mode";
      continue;
    }
    x86::log::info("vmx: cpu %u in VMX root mode", cpu);
  }
  x86::log::info("vmx: %u of %u cpus in VMX root mode", cpus_in_root_mode(), n);
  if (!failure && n > 1) {
    // The flush request words + IPI, checked once on real CPUs before a guest depends on
    // them: every other CPU must answer (from its idle loop) with a global INVEPT.
    const unsigned done = cpu_work::flush_ept_all_cpus_sync(2'000'000);
    x86::log::info("vmx: remote INVEPT done by %u of %u other cpus", done, n - 1);
    if (done != n - 1) failure = "vmx: a CPU did not answer the remote EPT flush";
  }
  // The tick on every CPU: preemption of guests (external-interrupt exits), "should yield"
  // answers for the MMU, and regular idle wake-ups for deferred work.
  unsigned ticking = 0;
  for (unsigned cpu = 0; cpu < n; cpu++) ticking += cpu_work::run_on(cpu, start_tick_on_this_cpu, nullptr, 2'000'000);
  x86::log::info("tick: %lu ms periodic LAPIC timer on %u of %u cpus", x86::tick::period_us() / 1000, ticking, n);

  if (!failure) {
    const x86::mb2::Module* guest = find_module(boot, "memtouch");
    char run[40];
    if (cmdline::get("hv.run", run, sizeof run)) {
      // A multiboot v1 test guest chosen on the command line (hv/guest_loader.h).
      failure = run_multiboot_guest(boot, run, g_caps);
      x86::log::info("guest %s: %s", run, failure ? "FAIL" : "PASS");
    } else if (guest) {
      failure = run_guest(*guest, guest_mode(), vcpu_count());
      x86::log::info("guest memtouch: %s", failure ? "FAIL" : "PASS");
    } else if (guest_required) {
      failure = "no guest module (guest-memtouch.bin) was loaded";
    } else {
      x86::log::info("vm: no guest module, VMX bring-up only");
    }
  }

  // Stop the ticks, then leave VMX operation everywhere (the BSP last, so it can still send
  // the requests).
  uint64_t ticks = 0;
  for (unsigned cpu = 0; cpu < n; cpu++) ticks += x86::tick::ticks(cpu);
  for (unsigned cpu = n; cpu-- > 0;) cpu_work::run_on(cpu, stop_tick_on_this_cpu, nullptr, 2'000'000);
  x86::log::info("tick: %lu timer interrupts taken on %u cpus", ticks, n);
  for (unsigned cpu = n; cpu-- > 0;) cpu_work::run_on(cpu, leave_root_on_this_cpu, nullptr, 2'000'000);
  x86::log::info("vmx: all cpus left VMX root mode (%u still in), %lu remote flushes", cpus_in_root_mode(),
            cpu_work::remote_flushes());
  if (!failure && cpus_in_root_mode()) failure = "vmx: a CPU did not leave VMX root mode";
  return {failure ? x86::kExitFail : x86::kExitPass, failure};
}

}  // namespace hv
