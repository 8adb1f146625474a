// Multiboot guests, each in its own VM (see guest_loader.h), described for the runner
// (hv/vm_runner.h), which runs them, prints their verdicts and summaries and frees them.
//
// A VM: boot RAM of hv.guest-mem MiB (default 32) in slot 0 (hv's) at guest-physical 0, the
// first part of a RAM pool, 2 MiB-aligned, that has 32 MiB more for the guest to map with
// memslot hypercalls (docs/hypercalls.md): 64 MiB by default; hv.pool-mib sets the pool
// instead (hv/bench_vm.h). Devices on the VM's I/O bus (hv/guest_ports.h): the 16550 at
// 0x3F8, the exit port 0xF4, fw_cfg at 0x510 (hv/devices/fw_cfg.h), besides the console and result
// ports every VM has. The guest's command line is its GRUB module's line, or its name and the
// words after "--" on hv's command line; hv.guest-mods=A,B names GRUB modules it gets as its
// multiboot modules (docs/guest-platform.md section 6).
//
// hv.run=guest-A runs one VM (vm1); hv.run=guest-A,guest-B,... runs several at once (vm1,
// vm2, ...), each on CPUs of its own, with hv.vcpus=N vCPUs each (default 1). vCPU 0 starts in
// the multiboot state; vCPU i > 0 at the same entry with EAX = HV_AP_MAGIC, EBX = i, ECX = N
// (docs/hypercalls.md "Several vCPUs"), once vCPU 0 is set up (VcpuLaunch::kWithVcpu0, as a
// boot CPU starts the others); with hv.ap-start=sipi they wait for INIT/SIPI instead, as on a
// PC (set_ap_start_sipi, hv/vm_runner.h). When a VM's vCPU 0 stops, that VM is over: its other
// vCPUs are asked to finish (RunVm::vcpu0_ends_vm). Every VM gets the time limit hv.time-limit-ms.
#include "arch/x86/format.h"
#include "arch/x86/log.h"
#include "arch/x86/pmm.h"
#include "arch/x86/smp.h"
#include "arch/x86/string.h"
#include "hv/bench_vm.h"
#include "hv/devices/acpi.h"
#include "hv/boot_modules.h"
#include "hv/cmdline.h"
#include "hv/guest_image.h"
#include "hv/guest_loader.h"
#include "hv/linux_loader.h"
#include "hv/guest_ports.h"
#include "hv/multiboot_info.h"
#include "hv/guest_phys_bits.h"
#include "hv/hypercall.h"
#include "hv/devices/mmio_scratch.h"
#include "hv/devices/vlapic_mmio.h"
#include "hv/migrate.h"
#include "hv/vm_runner.h"

namespace hv {

namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kDefaultBootRamMib = 32;
constexpr uint64_t kMaxBootRamMib = 3072;           // slot 0 stays below 3 GiB (32-bit mmap, HV_GPA_LIMIT)
constexpr uint64_t kGuestSlotPoolBytes = 32 * kMiB;  // the pool beyond slot 0: the guest's memslots
constexpr uint64_t kApStackTop = 0x8000;  // unused by the library (it sets its own), harmless

// A word that exists only in hv's own memory (its .data, at a host-physical address inside
// hv's image from 0x200000): the isolation guest (tests/guests/guest_isolation.cpp) scans its
// guest-physical space for it and fails if it ever reads it. The guest carries only its
// complement, so the value can't come from the guest's own image.
volatile uint64_t g_isolation_marker = 0x68764D61726B6572ull;  // "hvMarker"

// Each VM's command line ("NAME ARGS") and module list, alive while the VM is built.
char g_cmdlines[kMaxVms][kMbMaxString];
MultibootModule g_modules[kMbMaxModules];

const char* skip_blanks(const char* s) {
  while (module_blank(*s)) s++;
  return s;
}

// The guest's command line: its GRUB module's line ("NAME" and the module's arguments), or
// "NAME" and the words after "--" on hv's command line when there is a "--".
const char* guest_cmdline(RunVm& rv, const x86::mb2::Module& mod, const char* name, char* buf) {
  const char* args = cmdline::guest_args();
  const char* line = skip_blanks(mod.cmdline ? mod.cmdline : name);
  size_t n = 0;
  if (args) {
    n = strlen(name);
    const size_t a = strlen(args);
    if (n + 1 + a >= kMbMaxString) {
      x86::format(rv.why, sizeof rv.why, "%s: the guest's arguments after \"--\" are longer than %lu bytes", name,
                  kMbMaxString - 2 - n);
      return nullptr;
    }
    memcpy(buf, name, n);
    if (a) {
      buf[n++] = ' ';
      memcpy(buf + n, args, a);
      n += a;
    }
  } else {
    n = strlen(line);
    if (n >= kMbMaxString) {
      x86::format(rv.why, sizeof rv.why, "%s: the GRUB module's command line is longer than %lu bytes", name, kMbMaxString - 1);
      return nullptr;
    }
    memcpy(buf, line, n);
  }
  // No trailing blanks (GRUB's line may have some).
  while (n && module_blank(buf[n - 1])) n--;
  buf[n] = 0;
  return buf;
}

// hv.guest-mods=A,B,...: the GRUB modules handed to the guest. Count, or -1 with rv.why set.
int guest_modules(RunVm& rv, const x86::mb2::BootInfo& boot) {
  char list[256];
  if (!cmdline::get("hv.guest-mods", list, sizeof list) || !list[0]) return 0;
  unsigned count = 0;
  for (char* p = list; *p;) {
    char* name = p;
    while (*p && *p != ',') p++;
    if (*p) *p++ = 0;
    if (!*name) continue;
    if (count == kMbMaxModules) {
      x86::format(rv.why, sizeof rv.why, "hv.guest-mods: at most %u modules", kMbMaxModules);
      return -1;
    }
    const x86::mb2::Module* m = find_module(boot, name);
    if (!m) {
      x86::format(rv.why, sizeof rv.why, "hv.guest-mods: no GRUB module named \"%s\"", name);
      return -1;
    }
    g_modules[count++] = MultibootModule{reinterpret_cast<const uint8_t*>(m->start), m->end - m->start,
                                         skip_blanks(m->cmdline ? m->cmdline : name)};
  }
  return static_cast<int>(count);
}

// hv.guest-mem (boot RAM, slot 0) and the pool around it. nullptr or why not (rv.why).
const char* guest_memory(RunVm& rv, uint64_t* boot_bytes, uint64_t* default_pool) {
  const uint64_t mib = cmdline::get_number("hv.guest-mem", kDefaultBootRamMib);
  if (mib < 2 || mib % 2 || mib > kMaxBootRamMib) {
    x86::format(rv.why, sizeof rv.why, "hv.guest-mem=%lu: the guest's RAM must be 2 to %lu MiB, in 2 MiB steps", mib,
                kMaxBootRamMib);
    return rv.why;
  }
  *boot_bytes = mib * kMiB;
  *default_pool = *boot_bytes + kGuestSlotPoolBytes;
  return nullptr;
}

// Loads a multiboot v1 image into the VM of `rv` and fills its vCPUs' start states (vCPU 0 the
// multiboot state, the others hv's AP protocol). nullptr or why not (rv.why).
const char* load_multiboot_vm(RunVm& rv, const char* name, const uint8_t* image, uint64_t image_bytes, const char* line,
                              int nmods) {
  MultibootBoot mb;
  mb.cmdline = line;
  mb.modules = g_modules;
  mb.module_count = static_cast<unsigned>(nmods);
  MultibootLoaded loaded;
  if (const char* err = load_multiboot(rv.vm, image, image_bytes, mb, &loaded)) {
    x86::format(rv.why, sizeof rv.why, "%s: %s", name, err);
    return rv.why;
  }
  const uint64_t entry = loaded.entry;
  x86::log::info("vm%u: multiboot guest %s, %lu bytes, entry 0x%lx; RAM %lu MiB in slot 0 of a %lu MiB pool; %u vCPU(s)", rv.id,
                 name, image_bytes, entry, rv.vm.ram_bytes() >> 20, rv.vm.pool_bytes() >> 20, rv.vcpus);
  x86::log::info("vm%u: image at [0x%lx, 0x%lx), multiboot information at 0x%lx (%lu bytes with %d module(s)), command line \"%s\"",
                 rv.id, loaded.image_start, loaded.image_end, loaded.info_gpa, loaded.block_bytes, nmods, line);
  const unsigned n = rv.vcpus;
  for (unsigned i = 0; i < n; i++) {
    VcpuStart& s = rv.start[i];
    s.rip = entry;
    if (i == 0) {
      // Multiboot leaves ESP undefined; give the guest a value inside its RAM that is not in
      // its image: just below the information (free RAM or hv's reserved pages).
      s.rsp = loaded.info_gpa;
      s.rax = kMultibootBootMagic;
      s.rbx = loaded.info_gpa;
    } else {
      s.rsp = kApStackTop;
      s.rax = HV_AP_MAGIC;
      s.rbx = i;
      s.rcx = n;
      // No interrupt ever reaches the guest (external-interrupt exiting), but under Bochs a
      // guest entered with IF = 0 only leaves on the preemption timer (see VcpuStart), which
      // would make every remote flush to it wait a whole slice. vCPUs > 0 are hv's own
      // protocol, so their entry state may say IF = 1 (docs/hypercalls.md).
      s.interrupts_enabled = true;
      rv.launch[i] = VcpuLaunch::kWithVcpu0;
    }
  }
  return nullptr;
}

// Loads a Linux kernel (bzImage or PVH ELF) into the VM of `rv`: the kernel's command line is
// the guest's line without its first word (the module's name), the initrd is the first module
// of hv.guest-mods. vCPU 0 only: the others wait for INIT/SIPI (create_vm). nullptr or why not
// (rv.why).
const char* load_linux_vm(RunVm& rv, const char* name, GuestImageKind kind, const uint8_t* image, uint64_t image_bytes,
                          const char* line, int nmods) {
  LinuxBoot lb;
  lb.cmdline = module_args(line);
  if (nmods > 0) {
    lb.initrd = g_modules[0].data;
    lb.initrd_bytes = g_modules[0].size;
  }
  rv.vm.report_guest_state = true;  // registers, last exit and console lines on an abnormal stop
  LinuxLoaded loaded;
  VcpuStart& s = rv.start[0];
  if (const char* err = load_linux(rv.vm, kind, image, image_bytes, lb, &s, &loaded)) {
    x86::format(rv.why, sizeof rv.why, "%s: %s: %s", name, guest_image_kind_name(kind), err);
    return rv.why;
  }
  x86::log::info("vm%u: Linux guest %s (%s, %lu bytes), entry 0x%lx (%s); RAM %lu MiB in slot 0 of a %lu MiB pool; %u vCPU(s)",
                 rv.id, name, guest_image_kind_name(kind), image_bytes, loaded.entry,
                 kind == GuestImageKind::kPvhElf ? "PVH: 32-bit, paging off" : "64-bit", rv.vm.ram_bytes() >> 20,
                 rv.vm.pool_bytes() >> 20, rv.vcpus);
  x86::log::info("vm%u: kernel at [0x%lx, 0x%lx), initrd %lu bytes at 0x%lx, %s at 0x%lx, RSDP at 0x%lx, command line \"%s\"",
                 rv.id, loaded.image_start, loaded.image_end, loaded.initrd_bytes, loaded.initrd_addr,
                 kind == GuestImageKind::kPvhElf ? "start info" : "zero page", loaded.info_gpa, rv.vm.acpi_rsdp_gpa,
                 lb.cmdline);
  return nullptr;
}

// The devices of a multiboot or Linux guest's VM, claimed on its buses before any vCPU runs
// (hv/io_bus.h): the 16550, fw_cfg (with the guest's arguments `args`), the multiboot ports,
// the chipset, ACPI, the scratch MMIO device (its bytes kept when `reset_scratch` is false: a
// migration target) and the xAPIC page. nullptr or why not.
const char* add_guest_devices(RunVm& rv, const char* args, bool reset_scratch) {
  rv.vm.uart.reset(rv.id);
  FwCfg::Config fw;
  fw.ram_bytes = rv.vm.ram_bytes();
  fw.cpus = static_cast<uint16_t>(rv.vcpus);
  fw.args = args;
  fw.mem = fw_cfg_guest_memory(rv.vm);
  if (const char* err = rv.vm.fw_cfg.init(fw)) return err;
  if (const char* err = claim_multiboot_ports(rv.vm)) return err;
  if (const char* err = add_chipset(rv.vm, rv.vcpus)) return err;  // hv/devices/chipset.h
  if (const char* err = add_acpi(rv.vm, rv.vcpus)) return err;  // RSDP/MADT/FADT/MP in 0xF0000, PM1a ports (hv/devices/acpi.h)
  add_scratch_mmio(rv.vm, reset_scratch);  // HV_SCRATCH_MMIO_GPA (hv/devices/mmio_scratch.h)
  add_lapic_mmio(rv.vm);    // the xAPIC page (hv/devices/vlapic_mmio.h)
  rv.vm.unbacked_policy = true;  // docs/hypercalls.md "Unbacked and read-only memory"
  return nullptr;
}

// Creates the VM of `rv` for the hv.run entry `entry` and loads the image. The entry is a GRUB
// module's name, or "IMAGE:LINE": the image of module IMAGE with the command line of module LINE
// (its GRUB line; the file itself is not read). So several VMs run one image, each copied into
// its own memory, with command lines of their own (two Linux VMs, each with its own hv.cmd,
// from one 50 MB vmlinux that GRUB loads once). nullptr or why not.
const char* create_vm(RunVm& rv, const x86::mb2::BootInfo& boot, const char* entry, const x86::vmx::Capabilities& caps) {
  char name[48];
  const char* colon = entry;
  while (*colon && *colon != ':') colon++;
  const size_t name_len = static_cast<size_t>(colon - entry);
  if (!*colon) colon = nullptr;
  if (name_len >= sizeof name) {
    x86::format(rv.why, sizeof rv.why, "hv.run: the module name in \"%s\" is too long", entry);
    return rv.why;
  }
  memcpy(name, entry, name_len);
  name[name_len] = 0;
  const x86::mb2::Module* mod = find_module(boot, name);
  if (!mod) {
    x86::format(rv.why, sizeof rv.why, "no GRUB module named \"%s\"", name);
    return rv.why;
  }
  const x86::mb2::Module* line_mod = mod;
  if (colon) {
    line_mod = find_module(boot, colon + 1);
    if (!line_mod || !colon[1]) {
      x86::format(rv.why, sizeof rv.why, "hv.run=%s: no GRUB module named \"%s\" for the command line", entry, colon + 1);
      return rv.why;
    }
  }
  uint64_t boot_bytes = 0, default_pool = 0;
  if (const char* err = guest_memory(rv, &boot_bytes, &default_pool)) return err;
  // hv.backing and hv.pool-mib (hv/bench_vm.h); the defaults without them.
  const BenchVmConfig bench = bench_vm_config(default_pool, caps.ept_1g ? 3 : 2);
  if (bench.pool_bytes < boot_bytes) {
    x86::format(rv.why, sizeof rv.why, "hv.pool-mib=%lu is smaller than the guest's RAM (hv.guest-mem=%lu)",
                bench.pool_bytes / kMiB, boot_bytes / kMiB);
    return rv.why;
  }
  // Refuse up front, with the numbers, what hv's memory can't hold (the pool is allocated
  // with 2 MiB of alignment slack).
  const uint64_t free_bytes = x86::pmm::stats().free_frames * x86::pmm::k4K;
  if (!bench.align_1g && bench.pool_bytes + x86::pmm::k2M > free_bytes) {
    x86::format(rv.why, sizeof rv.why,
                "hv.guest-mem=%lu: the VM's RAM pool needs %lu MiB and hv has %lu MiB free; the VM is not started",
                boot_bytes / kMiB, bench.pool_bytes / kMiB, free_bytes / kMiB);
    return rv.why;
  }
  // hv.bench-zap-gib's alias slots are hv's, added after init: the default page limit counts them.
  rv.vm.add_hv_slots(bench.hv_slot_bytes, bench.hv_slot_ranges);
  if (const char* err = rv.vm.init_pool(rv.id, bench.pool_bytes, boot_bytes, bench.max_level, guest_phys_bits(), bench.align_1g))
    return err;

  // With "IMAGE:LINE" the line module's first word (its name) stands where the image's would.
  const char* const line = guest_cmdline(rv, *line_mod, name, g_cmdlines[rv.id - 1]);
  if (!line) return rv.why;
  const int nmods = guest_modules(rv, boot);
  if (nmods < 0) return rv.why;

  // The VM's devices, claimed on its I/O bus before any vCPU runs (hv/io_bus.h).
  if (const char* err = add_guest_devices(rv, module_args(line), true)) return err;

  const uint8_t* const image = reinterpret_cast<const uint8_t*>(mod->start);
  const uint64_t image_bytes = mod->end - mod->start;
  const GuestImageKind kind = guest_image_kind(image, image_bytes);
  const char* err = nullptr;
  switch (kind) {
    case GuestImageKind::kMultiboot: err = load_multiboot_vm(rv, name, image, image_bytes, line, nmods); break;
    case GuestImageKind::kLinuxBzImage:
    case GuestImageKind::kPvhElf: err = load_linux_vm(rv, name, kind, image, image_bytes, line, nmods); break;
    default:
      x86::format(rv.why, sizeof rv.why,
                  "%s: no multiboot v1 header (magic 0x1BADB002 with a valid checksum) in the first 8 KiB, no Linux "
                  "setup header (\"HdrS\" at 0x202), not an ELF64 kernel: not a guest image hv can load",
                  name);
      return rv.why;
  }
  if (err) return err;
  // The APs of a Linux guest wait for INIT/SIPI (the kernel starts them through its local APIC,
  // as firmware leaves them); a multiboot guest's use hv's own protocol unless hv.ap-start=sipi
  // (hv/vm_runner.h set_ap_start_sipi).
  const unsigned n = rv.vcpus;
  bool sipi = kind != GuestImageKind::kMultiboot;
  char ap_start[8];
  if (cmdline::get("hv.ap-start", ap_start, sizeof ap_start)) {
    if (strcmp(ap_start, "sipi") != 0 && strcmp(ap_start, "hv") != 0) {
      x86::format(rv.why, sizeof rv.why, "hv.ap-start=%s: expected hv or sipi", ap_start);
      return rv.why;
    }
    sipi = !strcmp(ap_start, "sipi");
  }
  if (sipi && kind == GuestImageKind::kMultiboot) {
    if (const char* e = set_ap_start_sipi(rv, caps)) return e;
  } else if (kind != GuestImageKind::kMultiboot && n > 1) {
    if (!sipi) {
      x86::format(rv.why, sizeof rv.why, "%s: a Linux guest's APs start by INIT/SIPI (hv.ap-start=hv is for multiboot guests)", name);
      return rv.why;
    }
    if (const char* e = set_ap_start_sipi(rv, caps)) return e;
  }
  if (sipi && n > 1)
    x86::log::info("vm%u: %u AP vCPU(s) wait for INIT/SIPI (%s)", rv.id, n - 1,
                   kind == GuestImageKind::kMultiboot ? "hv.ap-start=sipi" : "a Linux guest");
  rv.vcpu0_ends_vm = true;
  return bench_vm_prepare(rv.vm);  // hv.bench-* only (hv/bench_vm.h)
}

}  // namespace

const char* build_migration_target(RunVm& a, RunVm& b) {
  // What VmRunner::add does for a VM, then what create_vm does for the memory and devices; the
  // image is not loaded (the memory copy brings it), the start description is the source's.
  run_vm_reset(b, a.id, a.name, a.vcpus);
  for (unsigned i = 0; i < kMaxVcpus; i++) {
    b.start[i] = a.start[i];
    b.launch[i] = a.launch[i];
    b.job[i] = RunVm::Job{&b, i, nullptr, 0, 0};
  }
  b.vcpu0_ends_vm = a.vcpu0_ends_vm;
  b.ready = true;
  const uint64_t pool = a.vm.pool_bytes();
  const uint64_t boot_bytes = a.vm.slot(0).npages * x86::pmm::k4K;
  // Room for a copy: the same check as at creation, with the numbers (2 MiB of alignment slack).
  const uint64_t free_bytes = x86::pmm::stats().free_frames * x86::pmm::k4K;
  if (pool + x86::pmm::k2M > free_bytes) {
    x86::format(b.why, sizeof b.why, "no room for a copy: the target's RAM pool needs %lu MiB and hv has %lu MiB free",
                pool / kMiB, free_bytes / kMiB);
    return b.why;
  }
  // Not zeroed: pre-copy round 1 copies the whole pool before the target can run (migrate.cpp);
  // zeroing it first is a pass over the pool in the middle of the source's safe point.
  if (const char* err = b.vm.init_pool(a.id, pool, boot_bytes, a.vm.max_level(), a.vm.mmu().guest_phys_bits(), false,
                                       false)) {
    x86::format(b.why, sizeof b.why, "the target VM: %s", err);
    b.vm.destroy();
    return b.why;
  }
  if (const char* err = add_guest_devices(b, module_args(g_cmdlines[a.id - 1]), false)) {
    x86::format(b.why, sizeof b.why, "the target VM's devices: %s", err);
    b.vm.destroy();
    return b.why;
  }
  b.vm.report_guest_state = a.vm.report_guest_state;
  b.vm.acpi_rsdp_gpa = a.vm.acpi_rsdp_gpa;
  return nullptr;
}

const char* run_multiboot_guest(const x86::mb2::BootInfo& boot, const char* list, const x86::vmx::Capabilities& caps) {
  static char names[kMaxVms][48];
  // "guest-A" or "guest-A,guest-B,...".
  unsigned count = 0;
  for (const char* p = list; *p; count++) {
    if (count == kMaxVms) {
      x86::log::warn("hv.run: at most %u VMs; \"%s\" and after ignored", kMaxVms, p);
      break;
    }
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
  if (max > kMaxVcpus) max = kMaxVcpus;
  if (!max) return "hv.run: fewer CPUs than VMs";
  unsigned n = static_cast<unsigned>(cmdline::get_number("hv.vcpus", 1));
  if (n < 1) n = 1;
  if (n > max) {
    x86::log::warn("hv.vcpus=%u but only %u CPU(s) per VM: %u used", n, max, max);
    n = max;
  }

  VmRunner runner(caps);
  bool created = true;
  for (unsigned v = 0; v < count && created; v++) {
    RunVm& rv = *runner.add(v + 1, names[v], n);
    if (const char* err = create_vm(rv, boot, names[v], caps)) {
      runner.fail(rv, err);
      created = false;
    } else {
      runner.ready(rv);
    }
  }
  if (created)
    x86::log::info("vm1: hv's isolation marker 0x%lx is at host-physical 0x%lx (no guest may read it)", g_isolation_marker,
                   reinterpret_cast<uint64_t>(&g_isolation_marker));
  return runner.run();
}

}  // namespace hv
