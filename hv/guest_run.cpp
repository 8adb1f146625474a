// Multiboot guests, each in its own VM (see guest_loader.h), described for the runner
// (hv/vm_runner.h), which runs them, prints their verdicts and summaries and frees them.
//
// A VM: a 64 MiB RAM pool, 2 MiB-aligned; slot 0 (hv's) maps its first 32 MiB at
// guest-physical 0; the other 32 MiB are the guest's to map with memslot hypercalls
// (docs/hypercalls.md). Devices: the 16550 at 0x3F8 and the exit port 0xF4.
//
// hv.run=guest-A runs one VM (vm1); hv.run=guest-A,guest-B,... runs several at once (vm1,
// vm2, ...), each on CPUs of its own, with hv.vcpus=N vCPUs each (default 1). vCPU 0 starts in
// the multiboot state; vCPU i > 0 at the same entry with EAX = HV_AP_MAGIC, EBX = i, ECX = N
// (docs/hypercalls.md "Several vCPUs"), once vCPU 0 is set up (VcpuLaunch::kWithVcpu0, as a
// boot CPU starts the others). When a VM's vCPU 0 stops, that VM is over: its other vCPUs are
// asked to finish (RunVm::vcpu0_ends_vm). Every VM gets the time limit hv.time-limit-ms.
#include "arch/x86/format.h"
#include "arch/x86/log.h"
#include "arch/x86/smp.h"
#include "arch/x86/string.h"
#include "hv/bench_vm.h"
#include "hv/boot_modules.h"
#include "hv/cmdline.h"
#include "hv/guest_loader.h"
#include "hv/guest_phys_bits.h"
#include "hv/hypercall.h"
#include "hv/mmio_scratch.h"
#include "hv/vm_runner.h"

namespace hv {

namespace {

constexpr uint64_t kPoolBytes = 64ull << 20;
constexpr uint64_t kBootRamBytes = 32ull << 20;
constexpr uint64_t kApStackTop = 0x8000;  // unused by the library (it sets its own), harmless

// A word that exists only in hv's own memory (its .data, at a host-physical address inside
// hv's image from 0x200000): the isolation guest (tests/guests/guest_isolation.cpp) scans its
// guest-physical space for it and fails if it ever reads it. The guest carries only its
// complement, so the value can't come from the guest's own image.
volatile uint64_t g_isolation_marker = 0x68764D61726B6572ull;  // "hvMarker"

// Creates the VM of `rv` for GRUB module `name` and loads the image. nullptr or why not.
const char* create_vm(RunVm& rv, const x86::mb2::BootInfo& boot, const char* name, const x86::vmx::Capabilities& caps) {
  const x86::mb2::Module* mod = find_module(boot, name);
  if (!mod) {
    x86::format(rv.why, sizeof rv.why, "no GRUB module named \"%s\"", name);
    return rv.why;
  }
  // hv.backing and hv.pool-mib (hv/bench_vm.h); the defaults without them.
  const BenchVmConfig bench = bench_vm_config(kPoolBytes, caps.ept_1g ? 3 : 2);
  // hv.bench-zap-gib's alias slots are hv's, added after init: the default page limit counts them.
  rv.vm.add_hv_slots(bench.hv_slot_bytes, bench.hv_slot_ranges);
  if (const char* err =
          rv.vm.init_pool(rv.id, bench.pool_bytes, kBootRamBytes, bench.max_level, guest_phys_bits(), bench.align_1g))
    return err;
  rv.vm.devices = true;
  rv.vm.uart.reset(rv.id);
  add_scratch_mmio(rv.vm);  // HV_SCRATCH_MMIO_GPA (hv/mmio_scratch.h)
  uint64_t entry = 0;
  if (const char* err = load_multiboot(rv.vm, reinterpret_cast<const uint8_t*>(mod->start), mod->end - mod->start, &entry)) {
    x86::format(rv.why, sizeof rv.why, "%s: %s", name, err);
    return rv.why;
  }
  x86::log::info("vm%u: multiboot guest %s, %lu bytes, entry 0x%lx; RAM %lu MiB in slot 0 of a %lu MiB pool; %u vCPU(s)", rv.id,
                 name, mod->end - mod->start, entry, rv.vm.ram_bytes() >> 20, rv.vm.pool_bytes() >> 20, rv.vcpus);
  const unsigned n = rv.vcpus;
  for (unsigned i = 0; i < n; i++) {
    VcpuStart& s = rv.start[i];
    s.rip = entry;
    if (i == 0) {
      // Multiboot leaves ESP undefined; give the guest a harmless value inside its RAM.
      s.rsp = 0x8000;
      s.rax = kMultibootBootMagic;
      s.rbx = kMultibootInfoGpa;
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
  rv.vcpu0_ends_vm = true;
  return bench_vm_prepare(rv.vm);  // hv.bench-* only (hv/bench_vm.h)
}

}  // namespace

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
