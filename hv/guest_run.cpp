// Running one multiboot guest in its own VM (see guest_loader.h), and its summary.
//
// The VM: a 64 MiB RAM pool, 2 MiB-aligned; slot 0 (hv's) maps its first 32 MiB at
// guest-physical 0; the other 32 MiB are the guest's to map with memslot hypercalls
// (docs/hypercalls.md). Devices: the 16550 at 0x3F8 and the exit port 0xF4.
#include "arch/x86/cpu.h"
#include "arch/x86/format.h"
#include "arch/x86/log.h"
#include "arch/x86/pmm.h"
#include "arch/x86/smp.h"
#include "arch/x86/string.h"
#include "arch/x86/timer.h"
#include "arch/x86/vmx/exit_reason.h"
#include "hv/bench_vm.h"
#include "hv/guest_loader.h"
#include "hv/hypercall.h"
#include "hv/mmu_platform.h"
#include "hv/vcpu.h"
#include "hv/vm.h"
#include "mmu/epoch.h"

namespace hv {

namespace {

constexpr unsigned kVmId = 1;  // vm0 is the memtouch guest's
constexpr uint64_t kPoolBytes = 64ull << 20;
constexpr uint64_t kBootRamBytes = 32ull << 20;
constexpr uint64_t kTimeBudgetUs = 120'000'000;

Vm g_vm;
Vcpu g_vcpu;
char g_why[240];

unsigned guest_phys_bits() {
  const unsigned host = (x86::cpuid(0x80000000).eax >= 0x80000008) ? (x86::cpuid(0x80000008).eax & 0xFF) : 36;
  return host > 48 ? 48 : host;
}

const mb2::Module* find_module(const mb2::BootInfo& boot, const char* name) {
  for (unsigned i = 0; i < boot.module_count; i++)
    if (boot.modules[i].cmdline && !strcmp(boot.modules[i].cmdline, name)) return &boot.modules[i];
  return nullptr;
}

void print_summary(Vm& vm, uint64_t run_us) {
  const VmStats& st = vm.stats();
  char line[400];
  size_t len = 0;
  // static_cast: the counters may be atomic wrappers, which varargs must not receive.
  uint64_t total = static_cast<uint64_t>(st.exits_other);
  for (unsigned r = 0; r < vmx::kExitReasonCount; r++) {
    const uint64_t n = static_cast<uint64_t>(st.exits[r]);
    if (!n) continue;
    total += n;
    len += format(line + len, sizeof line - len, "%s%s %lu", len ? ", " : "", vmx::exit_reason_name(r), n);
  }
  const unsigned id = vm.id();
  log::info("vm%u: %lu exits (%s)", id, total, line);
  hv_stats s;
  snapshot_stats(vm, s);
  const uint64_t* v = s.value;
  log::info("vm%u: ept violations %lu, leaves 4K %lu 2M %lu 1G %lu, ept table pages %lu", id, static_cast<uint64_t>(st.ept_violations),
            v[HV_STAT_LEAVES_4K], v[HV_STAT_LEAVES_2M], v[HV_STAT_LEAVES_1G], v[HV_STAT_TABLE_PAGES]);
  log::info("vm%u: zaps %lu (%lu leaves), tlb flushes %lu, roots live %lu invalid %lu, pages awaiting reclaim %lu", id,
            v[HV_STAT_ZAP_CALLS], v[HV_STAT_ZAPPED_LEAVES], v[HV_STAT_TLB_FLUSHES], v[HV_STAT_ROOTS_LIVE],
            v[HV_STAT_ROOTS_INVALID], v[HV_STAT_PAGES_AWAITING_RECLAIM]);
  const mmu::MmuStats m = vm.mmu().stats();
  log::info("vm%u: root teardowns queued %lu, deferred teardown steps %lu", id, m.teardowns_queued, m.teardown_steps);
  log::info("vm%u: unbacked reads %lu, unbacked writes dropped %lu, read-only writes dropped %lu, hypercalls %lu (%lu errors)",
            id, v[HV_STAT_UNBACKED_READS], v[HV_STAT_UNBACKED_WRITES], v[HV_STAT_READONLY_WRITES], v[HV_STAT_HYPERCALLS],
            v[HV_STAT_HYPERCALL_ERRORS]);
  log::info("vm%u: ran %lu ms", id, run_us / 1000);
}

}  // namespace

const char* run_multiboot_guest(const mb2::BootInfo& boot, const char* name, const vmx::Capabilities& caps) {
  const mb2::Module* mod = find_module(boot, name);
  if (!mod) {
    format(g_why, sizeof g_why, "no GRUB module named \"%s\"", name);
    return g_why;
  }
  const uint64_t free_before = pmm::stats().free_frames;
  const uint64_t platform_pages_before = platform().pages_in_use();
  // hv.backing and hv.pool-mib (hv/bench_vm.h); the defaults without them.
  const BenchVmConfig bench = bench_vm_config(kPoolBytes, caps.ept_1g ? 3 : 2);
  if (const char* err = g_vm.init_pool(kVmId, bench.pool_bytes, kBootRamBytes, bench.max_level, guest_phys_bits(),
                                       bench.align_1g)) {
    g_vm.destroy();
    return err;
  }
  g_vm.devices = true;
  g_vm.uart.reset(kVmId);
  uint64_t entry = 0;
  const char* failure =
      load_multiboot(g_vm, reinterpret_cast<const uint8_t*>(mod->start), mod->end - mod->start, &entry);
  if (failure) {
    format(g_why, sizeof g_why, "%s: %s", name, failure);
    failure = g_why;
    log::error("vm%u: %s", kVmId, failure);
  } else {
    log::info("vm%u: multiboot guest %s, %lu bytes, entry 0x%lx; RAM %lu MiB in slot 0 of a %lu MiB pool", kVmId, name,
              mod->end - mod->start, entry, g_vm.ram_bytes() >> 20, g_vm.pool_bytes() >> 20);
    failure = bench_vm_prepare(g_vm);  // hv.bench-* only (hv/bench_vm.h)
    if (failure) log::error("vm%u: %s", kVmId, failure);
  }
  uint64_t t0 = timer::now_us(), t1 = t0;
  if (!failure) {
    // Multiboot leaves ESP undefined; give the guest a harmless value inside its RAM.
    const VcpuStart start{entry, 0x8000, kMultibootInfoGpa, 0, kTimeBudgetUs};
    failure = g_vcpu.init(g_vm, 0, caps, start);
    if (!failure) {
      g_vcpu.regs.rax = kMultibootBootMagic;
      g_vcpu.run();
      g_vm.uart.flush();
      if (g_vcpu.failed()) {
        format(g_why, sizeof g_why, "vm%u: %s", kVmId, g_vcpu.stop_reason());
        failure = g_why;
        log::error("vm%u: stopped: %s", kVmId, g_vcpu.stop_reason());
      } else {
        log::info("vm%u: stopped: %s", kVmId, g_vcpu.stop_reason());
      }
    }
    t1 = timer::now_us();
    g_vcpu.release();
  }
  print_summary(g_vm, t1 - t0);
  g_vm.destroy();
  epoch().barrier();
  // As for vm0 (hv/hypervisor.cpp): every page back, except the epoch's per-CPU batch pages.
  const uint64_t taken = free_before - pmm::stats().free_frames;
  const uint64_t epoch_kept = platform().pages_in_use() - platform_pages_before;
  if (taken == epoch_kept && epoch_kept <= 2ull * smp::cpus_online()) {
    log::info("vm%u: destroyed, all its memory returned", kVmId);
  } else {
    log::error("vm%u: destroyed, %ld pages not returned", kVmId, static_cast<long>(taken));
    if (!failure) failure = "vm1: pages not returned to the allocator after destroy";
  }
  if (!failure && !g_vm.result_valid) failure = "vm1: the guest never reported an exit status";
  return failure;
}

}  // namespace hv
