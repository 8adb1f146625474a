// The VMX part of a run (see hypervisor.h). Running the guests is the VM runner's
// (hv/vm_runner.h); this file brings VMX up everywhere, picks the guest, and takes VMX down.
//
// Order matters at shutdown: the vCPU's VMCS is cleared (VMCLEAR writes its cached state back
// and makes it inactive) and the EPT translations are flushed before the EPT tables and the
// guest RAM go back to the PMM; only then does each CPU execute VMXOFF.
#include "hv/apicv.h"
#include "hv/dirty_log.h"
#include "hv/hypervisor.h"

#include "arch/x86/exit_status.h"
#include "arch/x86/log.h"
#include "arch/x86/smp.h"
#include "arch/x86/tick.h"
#include "arch/x86/vmx/capabilities.h"
#include "arch/x86/vmx/root_mode.h"
#include "hv/boot_modules.h"
#include "hv/cmdline.h"
#include "hv/cpu_work.h"
#include "hv/guest_loader.h"
#include "hv/live_vms.h"
#include "hv/memtouch_vm.h"
#include "hv/mmu_platform.h"
#include "hv/trace.h"
#include "mmu/epoch.h"

namespace hv {
namespace {

using namespace x86::vmx;

Capabilities g_caps;
constexpr uint64_t kTickPeriodUs = 10'000;

struct RootArg {
  const char* why;
};
void enter_root_on_this_cpu(void* p) { static_cast<RootArg*>(p)->why = enter_root_mode(g_caps); }
void leave_root_on_this_cpu(void*) { leave_root_mode(); }
void start_tick_on_this_cpu(void*) { x86::tick::start_this_cpu(); }
void stop_tick_on_this_cpu(void*) { x86::tick::stop_this_cpu(); }

}  // namespace

VmxRunResult run_vmx(const x86::mb2::BootInfo& boot, bool guest_required) {
  if (const char* why = probe(g_caps)) {
    x86::log::info("no VMX: %s", why);
    return {x86::kExitNoVmx, why};
  }
  log_capabilities(g_caps);
  apicv_init(g_caps);  // hv/apicv.h: which LAPIC path the VMs use, and why
  dirty_log_init(g_caps);  // hv/dirty_log.h: the VMs' dirty-log mechanism (hv.dirty=)
  cpu_work::init(idle_work, &g_caps);  // idle CPUs help every live VM (hv/live_vms.h)
  // Before any MMU object: the epoch and the VMs' locks read the choice when they are made.
  const char* fence_failure = fences_init();
  epoch();  // create the machine's epoch on the BSP, before any AP's idle hook can use it
  x86::tick::init(kTickPeriodUs);
  trace::init(x86::smp::cpus_online());  // hv.trace (hv/trace.h)

  // Every online CPU into VMX root mode, the BSP first.
  const unsigned n = x86::smp::cpus_online();
  const char* failure = fence_failure;
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
    const x86::mb2::Module* guest = find_module(boot, "guest-memtouch");
    char run[200];
    if (cmdline::get("hv.run", run, sizeof run)) {
      // Multiboot v1 test guests chosen on the command line (hv/guest_loader.h).
      failure = run_multiboot_guest(boot, run, g_caps);
      x86::log::info("guest %s: %s", run, failure ? "FAIL" : "PASS");
    } else if (guest) {
      failure = run_memtouch(*guest, g_caps);
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
  if (platform().asymmetric_fences())
    x86::log::info("fences: %lu heavy fences, %lu cpus waited for, %lu skipped in guest mode",
                   cpu_work::fence_requests(), cpu_work::fence_waits(), cpu_work::fence_skipped());
  if (!failure && cpus_in_root_mode()) failure = "vmx: a CPU did not leave VMX root mode";
  return {failure ? x86::kExitFail : x86::kExitPass, failure};
}

}  // namespace hv
