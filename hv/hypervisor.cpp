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
#include "arch/x86/string.h"
#include "arch/x86/timer.h"
#include "arch/x86/vmx/capabilities.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/root_mode.h"
#include "hv/cmdline.h"
#include "hv/cpu_work.h"
#include "hv/exit_status.h"
#include "hv/guest_abi.h"
#include "hv/mmu_platform.h"
#include "hv/vcpu.h"
#include "hv/vm.h"
#include "mmu/epoch.h"

namespace hv {
namespace {

using namespace vmx;

Capabilities g_caps;
Vm g_vm;
Vcpu g_vcpu;

// Guest layout (guest-physical): the image at 64 KiB, RAM = 64 MiB in two slots:
//   [0, 2 MiB)      backing deliberately 4 KiB-misaligned: only 4 KiB leaves fit;
//   [2 MiB, 64 MiB) backing 2 MiB-aligned: 2 MiB leaves (1 GiB would need a 1 GiB slot).
constexpr uint64_t kGuestLoadGpa = 0x10000;
constexpr uint64_t kGuestStackTop = 0x80000;
constexpr uint64_t kGuestRam = 64ull << 20;
constexpr uint64_t kGuestTimeBudgetUs = 60'000'000;

struct RootArg {
  const char* why;
};
void enter_root_on_this_cpu(void* p) { static_cast<RootArg*>(p)->why = enter_root_mode(g_caps); }
void leave_root_on_this_cpu(void*) { leave_root_mode(); }

// Idle is a safe point too: no read-side section is open, so report a quiescent state and run
// this CPU's ready epoch callbacks (bounded). The epoch exists before the hook is installed.
void idle_work() {
  epoch().quiescent();
  epoch().poll(64);
}

bool contains(const char* s, const char* what) {
  const size_t n = strlen(what);
  for (; *s; s++)
    if (!strncmp(s, what, n)) return true;
  return false;
}

const mb2::Module* find_module(const mb2::BootInfo& boot, const char* name) {
  for (unsigned i = 0; i < boot.module_count; i++)
    if (boot.modules[i].cmdline && contains(boot.modules[i].cmdline, name)) return &boot.modules[i];
  return nullptr;
}

// hv.guest=<mode> on the command line makes the memtouch guest misbehave on purpose, to check
// that hv survives it (tests/boot/scenarios/vmx-hostile-*): see guest_abi.h for the modes.
uint64_t guest_mode() {
  char v[24];
  if (!cmdline::get("hv.guest", v, sizeof v)) return guest_abi::kModeNormal;
  if (!strcmp(v, "unbacked")) return guest_abi::kModeUnbacked;
  if (!strcmp(v, "triple-fault")) return guest_abi::kModeTripleFault;
  if (!strcmp(v, "bad-msr")) return guest_abi::kModeBadMsr;
  log::warn("unknown hv.guest \"%s\" ignored", v);
  return guest_abi::kModeNormal;
}

unsigned guest_phys_bits() {
  const unsigned host = (x86::cpuid(0x80000000).eax >= 0x80000008) ? (x86::cpuid(0x80000008).eax & 0xFF) : 36;
  return host > 48 ? 48 : host;
}

void print_summary(Vm& vm, const Vcpu& vcpu, uint64_t run_us) {
  VmStats& st = vm.stats();
  char line[400];
  size_t len = 0;
  uint64_t total = st.exits_other;
  for (unsigned r = 0; r < kExitReasonCount; r++) {
    if (!st.exits[r]) continue;
    total += st.exits[r];
    len += format(line + len, sizeof line - len, "%s%s %lu", len ? ", " : "", exit_reason_name(r), st.exits[r]);
  }
  log::info("vm%u: %lu exits (%s)", vm.id(), total, line);
  uint64_t leaves[4];
  vm.mmu().leaves(leaves);
  log::info("vm%u: ept violations %lu, leaves 4K %lu 2M %lu 1G %lu, ept table pages %lu", vm.id(), st.ept_violations,
            leaves[1], leaves[2], leaves[3], vm.mmu().table_pages());
  log::info("vm%u: faults fixed %lu, spurious %lu, retry %lu, unbacked %lu, oom %lu", vm.id(),
            st.map_results[static_cast<int>(MapResult::kFixed)], st.map_results[static_cast<int>(MapResult::kSpurious)],
            st.map_results[static_cast<int>(MapResult::kRetry)], st.map_results[static_cast<int>(MapResult::kUnbacked)],
            st.map_results[static_cast<int>(MapResult::kOutOfMemory)]);
  const uint64_t khz = timer::tsc_khz() ? timer::tsc_khz() : 1;
  log::info("vm%u: ran %lu ms (guest %lu ms, exit handling %lu ms, %lu exits)", vm.id(), run_us / 1000,
            st.guest_tsc / khz, st.host_exit_tsc / khz, vcpu.exits);
}

// Runs the memtouch guest on this CPU. Returns nullptr when it passed.
const char* run_guest(const mb2::Module& mod, uint64_t mode) {
  static char why[240];
  const uint64_t size = mod.end - mod.start;
  const Vm::SlotSpec slots[] = {
      {"low", 0, 2ull << 20, true},
      {"high", 2ull << 20, kGuestRam - (2ull << 20), false},
  };
  const uint64_t free_before = pmm::stats().free_frames;
  const uint64_t platform_pages_before = platform().pages_in_use();
  if (const char* err = g_vm.init(0, slots, 2, g_caps.ept_1g ? 3 : 2, guest_phys_bits())) return err;
  void* dst = g_vm.gpa_to_host(kGuestLoadGpa, size);
  if (!dst || size > kGuestStackTop - kGuestLoadGpa - 0x10000) {
    g_vm.destroy();
    return "the guest image does not fit below its stack";
  }
  // Writing the backing is not mapping it: the EPT stays empty until the guest faults.
  memcpy(dst, reinterpret_cast<const void*>(mod.start), size);
  log::info("vm0: %lu MiB guest RAM in %u slots (4K-only backing 0x%lx, 2M-aligned backing 0x%lx), image %lu bytes at 0x%lx",
            g_vm.ram_bytes() >> 20, g_vm.slot_count(), g_vm.slot(0).backing_hpa, g_vm.slot(1).backing_hpa, size,
            kGuestLoadGpa);

  const VcpuStart start{kGuestLoadGpa, kGuestStackTop, kGuestRam, mode, kGuestTimeBudgetUs};
  const char* failure = g_vcpu.init(g_vm, 0, g_caps, start);
  const uint64_t t0 = timer::now_us();
  if (!failure) {
    g_vcpu.run();
    if (g_vcpu.failed()) {
      format(why, sizeof why, "vm0: %s", g_vcpu.stop_reason());
      failure = why;
      log::error("vm0: stopped: %s", g_vcpu.stop_reason());
    } else {
      log::info("vm0: stopped: %s", g_vcpu.stop_reason());
    }
  }
  const uint64_t t1 = timer::now_us();
  g_vcpu.release();
  print_summary(g_vm, g_vcpu, t1 - t0);
  g_vm.destroy();
  // The epoch may still hold retired pages: run every callback before checking the count.
  epoch().barrier();
  // Every page the VM took must be back, except the epoch's per-CPU tracking pages: the epoch
  // is machine-wide and keeps its open and spare batch pages for the next retire (at most two
  // per CPU, all allocated through the platform).
  const uint64_t taken = free_before - pmm::stats().free_frames;
  const uint64_t epoch_kept = platform().pages_in_use() - platform_pages_before;
  if (taken == epoch_kept && epoch_kept <= 2ull * smp::cpus_online()) {
    log::info("vm0: destroyed, all its memory returned (the epoch keeps %lu tracking page(s) for reuse)", epoch_kept);
  } else {
    log::error("vm0: destroyed, %ld pages not returned (MMU platform pages live %lu, epoch pending pages %lu)",
               static_cast<long>(taken), platform().pages_in_use(), epoch().pending_pages());
    if (!failure) failure = "vm0: pages not returned to the allocator after destroy";
  }
  if (!failure && !g_vm.result_valid) failure = "vm0: the guest never reported a result";
  return failure;
}

}  // namespace

VmxRunResult run_vmx(const mb2::BootInfo& boot, bool guest_required) {
  if (const char* why = probe(g_caps)) {
    log::info("no VMX: %s", why);
    return {kExitNoVmx, why};
  }
  log_capabilities(g_caps);
  epoch();  // create the machine's epoch on the BSP, before any AP's idle hook can use it
  cpu_work::init(idle_work);

  // Every online CPU into VMX root mode, the BSP first.
  const unsigned n = smp::cpus_online();
  const char* failure = nullptr;
  for (unsigned cpu = 0; cpu < n; cpu++) {
    RootArg arg{"did not answer"};
    if (!cpu_work::run_on(cpu, enter_root_on_this_cpu, &arg, 2'000'000) || arg.why) {
      log::error("vmx: cpu %u: %s", cpu, arg.why ? arg.why : "did not answer");
      failure = "vmx: a CPU could not enter VMX root mode";
      continue;
    }
    log::info("vmx: cpu %u in VMX root mode", cpu);
  }
  log::info("vmx: %u of %u cpus in VMX root mode", cpus_in_root_mode(), n);
  if (!failure && n > 1) {
    // The MMU's remote TLB flush (request word + IPI, answered from the idle loop or at the
    // next VM exit) checked once on real CPUs before a guest depends on it.
    const uint64_t before = cpu_work::remote_flushes();
    cpu_work::flush_ept_all_cpus();
    const uint64_t done = cpu_work::remote_flushes() - before;
    log::info("vmx: remote INVEPT done by %lu of %u other cpus", done, n - 1);
    if (done != n - 1) failure = "vmx: a CPU did not answer the remote EPT flush";
  }

  if (!failure) {
    const mb2::Module* guest = find_module(boot, "memtouch");
    if (guest) {
      failure = run_guest(*guest, guest_mode());
      log::info("guest memtouch: %s", failure ? "FAIL" : "PASS");
    } else if (guest_required) {
      failure = "no guest module (guest-memtouch.bin) was loaded";
    } else {
      log::info("vm: no guest module, VMX bring-up only");
    }
  }

  // Leave VMX operation everywhere (the BSP last, so it can still send the requests).
  for (unsigned cpu = n; cpu-- > 0;) cpu_work::run_on(cpu, leave_root_on_this_cpu, nullptr, 2'000'000);
  log::info("vmx: all cpus left VMX root mode (%u still in), %lu remote flushes", cpus_in_root_mode(),
            cpu_work::remote_flushes());
  if (!failure && cpus_in_root_mode()) failure = "vmx: a CPU did not leave VMX root mode";
  return {failure ? kExitFail : kExitPass, failure};
}

}  // namespace hv
