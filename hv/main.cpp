// kernel_main: the boot CPU's path from long mode to the verdict.
//
// Order: per-CPU base, console, GDT/TSS/IDT (exceptions are reported from here on), the
// multiboot2 information and the banner, CPU identification, the memory map and the physical
// memory manager, the identity map over all RAM, ACPI (MADT, FADT), TSC calibration, the
// LAPIC, the APs, a few self-checks, then the VMX part (hv/hypervisor.cpp: every CPU into VMX
// root mode, the test guest) and finally "hv: result: PASS|FAIL|NO-VMX ..." and power off.
// The "hv: ..." lines printed here are the contract with the boot tests (tests/boot).
#include <stdint.h>

#include "arch/x86/acpi.h"
#include "arch/x86/apic.h"
#include "arch/x86/cpu.h"
#include "arch/x86/cpu_info.h"
#include "arch/x86/fb_console.h"
#include "arch/x86/gdt.h"
#include "arch/x86/idt.h"
#include "arch/x86/log.h"
#include "arch/x86/multiboot2.h"
#include "arch/x86/paging.h"
#include "arch/x86/percpu.h"
#include "arch/x86/pic.h"
#include "arch/x86/pmm.h"
#include "arch/x86/power.h"
#include "arch/x86/serial.h"
#include "arch/x86/smp.h"
#include "arch/x86/string.h"
#include "arch/x86/timer.h"
#include "arch/x86/vmx/checklist.h"
#include "hv/cmdline.h"
#include "arch/x86/exit_status.h"
#include "hv/hypervisor.h"
#include "hv/panic.h"
#include "mmu/atomic.h"
#include "mmu/platform.h"

extern "C" char boot_stack_top[];
extern "C" char _kernel_start[], _kernel_end[];

static_assert(x86::kMaxCpus == mmu::Platform::kMaxCpus, "one CPU limit for the kernel and the MMU");

namespace hv {
namespace {

constexpr const char* kVersion = "0.1";

x86::mb2::BootInfo g_boot;
x86::acpi::Info g_acpi;
x86::cpu::Info g_cpu;

const char* mmap_type_name(uint32_t t) {
  switch (t) {
    case x86::mb2::kAvailable: return "available";
    case x86::mb2::kReserved: return "reserved";
    case x86::mb2::kAcpiReclaimable: return "ACPI reclaimable";
    case x86::mb2::kAcpiNvs: return "ACPI NVS";
    case x86::mb2::kBadRam: return "bad RAM";
    default: return "other";
  }
}

[[noreturn]] void finish(bool pass, const char* failure) {
  if (pass) {
    x86::log::plain("result: PASS");
    x86::power::off(x86::kExitPass);
  }
  x86::log::plain("result: FAIL %s", failure);
  x86::power::off(x86::kExitFail);
}

void apply_log_level() {
  char v[16];
  if (!cmdline::get("loglevel", v, sizeof v)) return;
  if (!strcmp(v, "debug")) x86::log::set_level(x86::log::Level::debug);
  else if (!strcmp(v, "info")) x86::log::set_level(x86::log::Level::info);
  else if (!strcmp(v, "warn")) x86::log::set_level(x86::log::Level::warn);
  else if (!strcmp(v, "error")) x86::log::set_level(x86::log::Level::error);
  else x86::log::warn("unknown loglevel \"%s\" ignored", v);
}

// Deliberate failures for the boot tests of the fatal paths.
void run_requested_failure() {
  char what[32];
  if (!cmdline::get("hv.test", what, sizeof what)) return;
  x86::log::info("test: provoking \"%s\"", what);
  if (!strcmp(what, "pagefault")) {
    // Above the identity map (capped at 512 GiB): not present.
    volatile uint64_t* p = reinterpret_cast<volatile uint64_t*>(0x8000000000ull + 0x1000);
    (void)*p;
  } else if (!strcmp(what, "null")) {
    volatile uint64_t* p = nullptr;
    (void)*p;
  } else if (!strcmp(what, "ud")) {
    asm volatile("ud2");
  } else if (!strcmp(what, "panic")) {
    panic("requested by hv.test=panic");
  } else if (!strcmp(what, "reset")) {
    x86::power::reset(x86::kExitPass);  // the reset path, watched by a boot test
  } else if (!strcmp(what, "bad-guest-state")) {
    // Provoked later, at the first VM entry (hv/hypervisor.cpp, hv/vcpu.cpp).
  } else {
    x86::log::warn("unknown hv.test \"%s\" ignored", what);
  }
}

// Allocator self-check: a few 4 KiB and 2 MiB allocations are distinct, aligned, zeroed and
// outside the kernel image, and freeing them restores the free count.
const char* pmm_selfcheck() {
  const uint64_t before = x86::pmm::stats().free_frames;
  uint64_t pages[8];
  for (uint64_t& p : pages) {
    p = x86::pmm::alloc_4k(true);
    if (!p || (p & 0xFFF)) return "pmm: 4 KiB allocation failed or misaligned";
    if (p < reinterpret_cast<uint64_t>(_kernel_end) && p + 4096 > reinterpret_cast<uint64_t>(_kernel_start))
      return "pmm: handed out a page of the kernel image";
    const uint64_t* q = reinterpret_cast<const uint64_t*>(p);
    for (unsigned i = 0; i < 512; i++)
      if (q[i]) return "pmm: page not zeroed";
    memset(reinterpret_cast<void*>(p), 0xA5, 4096);
  }
  for (unsigned i = 0; i < 8; i++)
    for (unsigned j = i + 1; j < 8; j++)
      if (pages[i] == pages[j]) return "pmm: the same page handed out twice";
  const uint64_t big = x86::pmm::alloc_2m(false);
  if (big && (big & (x86::pmm::k2M - 1))) return "pmm: 2 MiB block misaligned";
  if (big) x86::pmm::free_2m(big);
  for (uint64_t p : pages) x86::pmm::free_4k(p);
  if (x86::pmm::stats().free_frames != before) return "pmm: free count not restored";
  return nullptr;
}

// The identity map reaches the last usable page (a #PF here fails the run).
const char* identity_map_selfcheck(uint64_t top) {
  if (top < 4096) return nullptr;
  volatile uint64_t* last = reinterpret_cast<volatile uint64_t*>(top - 4096);
  const uint64_t saved = *last;
  *last = 0x5A5A5A5A5A5A5A5Aull;
  const bool ok = *last == 0x5A5A5A5A5A5A5A5Aull;
  *last = saved;
  return ok ? nullptr : "paging: the last usable page does not hold a value";
}

// The BSP's LAPIC timer raises its interrupt (one-shot, 1 ms) while interrupts are on.
// The count carries no data: relaxed (the handler runs on this CPU; the atomic only keeps the
// compiler from caching the load in the wait loop below).
constexpr uint8_t kTimerVector = 0xEF;
mmu::Atomic<uint32_t> g_timer_ticks{0};
void timer_handler(x86::idt::InterruptFrame*) {
  g_timer_ticks.fetch_add(1, mmu::Order::relaxed);
  x86::apic::eoi();
}
const char* lapic_timer_selfcheck() {
  x86::idt::set_handler(kTimerVector, timer_handler);
  x86::apic::timer_oneshot(1000, kTimerVector);
  const uint64_t deadline = x86::timer::now_us() + 200000;
  x86::sti();
  while (!g_timer_ticks.load(mmu::Order::relaxed) && x86::timer::now_us() < deadline) x86::cpu_relax();
  x86::cli();
  x86::apic::timer_stop();
  return g_timer_ticks.load(mmu::Order::relaxed) ? nullptr : "lapic: timer interrupt never arrived";
}

}  // namespace
}  // namespace hv

extern "C" [[noreturn]] void kernel_main(uint32_t magic, uint32_t info) {
  using namespace hv;
  x86::percpu_init_this_cpu(0, 0, reinterpret_cast<uint64_t>(boot_stack_top));
  x86::serial::init();
  // GRUB leaves the cursor after "\n\r": start a fresh line so the banner line begins with
  // "hv: " for the tests' line matching.
  x86::serial::write("\n", 1);
  x86::gdt::init_this_cpu(0, x86::gdt::bsp_ist_area());
  x86::idt::init();
  x86::idt::load_this_cpu();
  x86::pic::disable();

  const char* mb2_error = x86::mb2::parse(magic, info, g_boot);
  cmdline::set(g_boot.cmdline);
  apply_log_level();
  // The framebuffer console mirrors every line from here on; hv.fb=off keeps it dark.
  char fb_opt[8] = "on";
  cmdline::get("hv.fb", fb_opt, sizeof fb_opt);
  const char* fb_error = !g_boot.have_framebuffer ? "no framebuffer tag"
                         : strcmp(fb_opt, "off") == 0 ? "off (hv.fb=off)"
                                                      : x86::fbcon::init(g_boot.framebuffer);
  x86::log::info("hv %s booting (multiboot2, cmdline \"%s\")", kVersion, g_boot.cmdline);
  if (mb2_error) finish(false, mb2_error);
  {
    char fb[96];
    x86::fbcon::describe(fb, sizeof fb);
    if (x86::fbcon::active()) x86::log::info("console: framebuffer %s", fb);
    else x86::log::info("console: serial only, framebuffer: %s", fb_error);
  }
  x86::log::info("boot: loader \"%s\", %s, %u module(s), image 0x%lx-0x%lx", g_boot.loader_name,
            g_boot.efi ? "UEFI" : "BIOS", g_boot.module_count, reinterpret_cast<uint64_t>(_kernel_start),
            reinterpret_cast<uint64_t>(_kernel_end));
  if (g_boot.have_efi_mmap)
    x86::log::info("boot: EFI memory map with %u descriptors%s", g_boot.efi_mmap_descriptors,
              g_boot.efi_boot_services_active ? ", boot services still active" : "");
  for (unsigned i = 0; i < g_boot.module_count; i++)
    x86::log::info("boot: module %u at 0x%lx-0x%lx \"%s\"", i, g_boot.modules[i].start, g_boot.modules[i].end,
              g_boot.modules[i].cmdline);
  if (g_boot.modules_ignored)
    x86::log::warn("boot: %u more module(s) beyond hv's limit of %u ignored: hv cannot find them by name", g_boot.modules_ignored,
              x86::mb2::BootInfo::kMaxModules);

  x86::cpu::identify(g_cpu);
  x86::log::info("cpu: vendor %s, family/model/stepping 0x%x/0x%x/0x%x, vmx %s, ept %s", g_cpu.vendor, g_cpu.family,
            g_cpu.model, g_cpu.stepping, g_cpu.vmx ? "yes" : "no", x86::cpu::ept_name(g_cpu.ept));
  if (g_cpu.brand[0]) x86::log::info("cpu: \"%s\"", g_cpu.brand);
  if (g_cpu.vmx)
    x86::log::info("cpu: IA32_FEATURE_CONTROL %s, VMX outside SMX %s", g_cpu.feature_control_locked ? "locked" : "unlocked",
              g_cpu.vmx_outside_smx ? "on" : "off");
  x86::vmx::print_hardware_checklist();

  // Memory.
  const x86::pmm::Stats before = [] {
    const char* err = x86::pmm::init(g_boot);
    if (err) finish(false, err);
    return x86::pmm::stats();
  }();
  x86::log::info("memory: %lu MiB usable in %u ranges (%s)", before.usable_bytes >> 20, before.usable_ranges,
            g_boot.mmap_source);
  for (unsigned i = 0; i < g_boot.mmap_count; i++) {
    const x86::mb2::MemoryRange& r = g_boot.mmap[i];
    x86::log::info("mmap: %016lx-%016lx %s", r.base, r.base + r.length - 1, mmap_type_name(r.type));
  }
  if (g_boot.mmap_truncated) x86::log::warn("mmap: more than %u ranges, the rest ignored", x86::mb2::BootInfo::kMaxRanges);
  const uint64_t mapped = x86::paging::extend_identity_map(before.top);
  // GRUB under UEFI may leave no free page below 640 KiB (modules first): move one module up.
  if (const char* moved = x86::pmm::ensure_trampoline_page(g_boot))
    x86::log::info("pmm: no free page below 640 KiB: module \"%s\" moved above 1 MiB, its first page 0x%lx is the AP trampoline",
                   moved, x86::pmm::trampoline_page());
  if (mapped < before.top) x86::log::warn("memory above 0x%lx is not mapped and not used", mapped);
  x86::log::info("pmm: %lu MiB free, %lu MiB managed, AP trampoline page 0x%lx", x86::pmm::stats().free_frames >> 8,
            before.managed_frames >> 8, x86::pmm::trampoline_page());

  // ACPI.
  const char* acpi_error = x86::acpi::init(g_boot.rsdp, g_boot.rsdp_tag, g_acpi);
  if (acpi_error) {
    x86::log::warn("acpi: %s", acpi_error);
  } else {
    x86::log::info("acpi: RSDP revision %u from %s, OEM \"%s\", %s%s%s", g_acpi.revision, g_acpi.rsdp_source,
              g_acpi.oem_id, g_acpi.xsdt ? "XSDT" : "RSDT", g_acpi.have_madt ? ", MADT" : "",
              g_acpi.have_fadt ? ", FADT" : "");
    if (g_acpi.have_fadt)
      x86::log::info("acpi: PM1a_CNT 0x%x, PM1b_CNT 0x%x, S5 %s (SLP_TYP %u/%u)", g_acpi.pm1a_cnt, g_acpi.pm1b_cnt,
                g_acpi.have_s5 ? "found" : "not found", g_acpi.slp_typ_a, g_acpi.slp_typ_b);
    x86::power::configure(g_acpi);
    if (g_acpi.have_reset_reg)
      x86::log::info("acpi: reset register %s 0x%lx, value 0x%x",
                     g_acpi.reset_space == 0 ? "memory" : g_acpi.reset_space == 1 ? "I/O" : "PCI config",
                     g_acpi.reset_address, g_acpi.reset_value);
  }
  {
    // hv.poweroff=acpi: power off through ACPI S5 only (as on a real machine), not through
    // QEMU's isa-debug-exit; hv.poweroff=reset: reset the machine at the end instead.
    char how[16];
    if (cmdline::get("hv.poweroff", how, sizeof how)) {
      if (!strcmp(how, "acpi")) x86::power::set_method(x86::power::Method::acpi);
      else if (!strcmp(how, "reset")) x86::power::set_method(x86::power::Method::reset);
      else if (strcmp(how, "auto") != 0) x86::log::warn("unknown hv.poweroff \"%s\" ignored (auto, acpi, reset)", how);
    }
  }
  if (!x86::paging::protect_null_page()) x86::log::warn("paging: page 0 stays mapped (no memory for a page table)");

  // CPUs.
  x86::timer::calibrate();
  x86::log::info("tsc: %lu.%03lu MHz", x86::timer::tsc_khz() / 1000, x86::timer::tsc_khz() % 1000);
  x86::apic::init_bsp(g_acpi.have_madt ? g_acpi.lapic_address : 0);
  const uint32_t bsp_apic = x86::apic::id();
  x86::percpu(0).apic_id = bsp_apic;
  x86::percpu(0).online = true;
  const uint64_t lapic_khz = x86::apic::calibrate_timer();
  x86::log::info("lapic: bsp apic id %u, %s mode, timer %lu kHz", bsp_apic, x86::apic::x2apic_mode() ? "x2APIC" : "xAPIC",
            lapic_khz);

  uint32_t fallback_id = bsp_apic;
  const uint32_t* ids = &fallback_id;
  unsigned cpu_count = 1;
  if (g_acpi.have_madt && g_acpi.cpu_count) {
    ids = g_acpi.apic_ids;
    cpu_count = g_acpi.cpu_count;
    x86::log::info("cpus: %u (ACPI MADT)", cpu_count);
    if (g_acpi.cpus_ignored) x86::log::warn("cpus: %u more beyond the limit of %u ignored", g_acpi.cpus_ignored, x86::kMaxCpus);
  } else {
    x86::log::info("cpus: 1 (fallback: no MADT)");
  }

  x86::smp::Result smp{cpu_count, 1, nullptr};
  if (cmdline::has("nosmp")) {
    x86::log::info("smp: nosmp given, application processors left off");
    smp.expected = 1;
  } else {
    const uint64_t t0 = x86::timer::now_us();
    smp = x86::smp::start_aps(ids, cpu_count);
    x86::log::info("smp: %u of %u cpus online (%lu ms)", smp.online, smp.expected, (x86::timer::now_us() - t0) / 1000);
    if (smp.error) x86::log::error("smp: %s", smp.error);
  }

  run_requested_failure();

  // Verdict: every self-check runs and reports; the first failure names the result.
  const char* failure = nullptr;
  auto check = [&failure](const char* err, const char* ok_line) {
    if (err) {
      x86::log::error("selftest: %s", err);
      if (!failure) failure = err;
    } else {
      x86::log::info("selftest: %s", ok_line);
    }
  };
  const uint64_t ram_top = before.top < mapped ? before.top : mapped;
  check(pmm_selfcheck(), "pmm 4 KiB/2 MiB allocation ok");
  check(identity_map_selfcheck(ram_top), "identity map reaches the last usable page");
  check(lapic_timer_selfcheck(), "lapic timer interrupt ok");
  if (smp.online > 1) {
    const unsigned answered = x86::smp::ping_aps(200000);
    x86::log::info("selftest: IPI answered by %u of %u APs", answered, smp.online - 1);
    if (answered != smp.online - 1 && !failure) failure = "smp: not every AP answered an IPI";
  }
  if (!failure && smp.online != smp.expected) failure = "smp: not every cpu came online";
  if (failure) finish(false, failure);

  // VMX: a CPU without it (QEMU TCG, VT-x off in the firmware) ends here with its own status,
  // after the non-VMX checks above have passed.
  if (g_cpu.no_vmx_reason) {
    x86::log::info("no VMX: %s", g_cpu.no_vmx_reason);
    x86::log::plain("result: NO-VMX (boot, memory and SMP checks passed)");
    x86::power::off(x86::kExitNoVmx);
  }
  const VmxRunResult vmx = run_vmx(g_boot, !cmdline::has("hv.noguest"));
  if (vmx.status == x86::kExitNoVmx) {
    x86::log::plain("result: NO-VMX (boot, memory and SMP checks passed)");
    x86::power::off(x86::kExitNoVmx);
  }
  finish(vmx.status == x86::kExitPass, vmx.failure);
}
