// The memtouch VM (see memtouch_vm.h): its memory layout, image and start state.
//
// Guest layout (guest-physical): the image at 64 KiB, RAM = 64 MiB in two slots:
//   [0, 2 MiB)      backing deliberately 4 KiB-misaligned: only 4 KiB leaves fit;
//   [2 MiB, 64 MiB) backing 2 MiB-aligned: 2 MiB leaves (1 GiB would need a 1 GiB slot).
// With EPT 1 GiB pages and a free 1 GiB-aligned GiB of host memory (Bochs: mem=3072), a third
// slot [1 GiB, 2 GiB) whose gpa and backing are both 1 GiB-aligned: its first fault installs a
// 1 GiB leaf. Each vCPU's stack and page tables are its own (tests/guests/memtouch_entry.asm).
#include "hv/memtouch_vm.h"

#include "arch/x86/log.h"
#include "arch/x86/pmm.h"
#include "arch/x86/smp.h"
#include "arch/x86/string.h"
#include "hv/cmdline.h"
#include "hv/guest_abi.h"
#include "hv/guest_phys_bits.h"
#include "hv/vm_runner.h"

namespace hv {
namespace {

constexpr unsigned kVmId = 0;
constexpr uint64_t kGuestLoadGpa = 0x10000;
constexpr uint64_t kGuestStackTop = 0x80000;
constexpr uint64_t kGuestStackBytes = 4 * 0x4000;  // four 16 KiB stacks below kGuestStackTop
constexpr uint64_t kGuestRam = 64ull << 20;
constexpr uint64_t kHugeSlotGpa = 1ull << 30;
constexpr uint64_t kHugeSlotBytes = 1ull << 30;

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

// One vCPU per online CPU, at most kMaxVcpus, at most hv.vcpus=N.
unsigned vcpu_count() {
  unsigned n = x86::smp::cpus_online();
  if (n > kMaxVcpus) n = kMaxVcpus;
  const uint64_t want = cmdline::get_number("hv.vcpus", n);
  if (want >= 1 && want < n) n = static_cast<unsigned>(want);
  return n;
}

// Is a 1 GiB-aligned GiB of host memory free?
bool huge_block_free() {
  return x86::pmm::stats().top >= 2 * kHugeSlotBytes &&
         x86::pmm::aligned_run_free(kHugeSlotBytes / x86::pmm::k4K, kHugeSlotBytes);
}

}  // namespace

const char* run_memtouch(const x86::mb2::Module& mod, const x86::vmx::Capabilities& caps) {
  VmRunner runner(caps);
  const unsigned n = vcpu_count();
  RunVm& rv = *runner.add(kVmId, "guest-memtouch", n);
  const uint64_t size = mod.end - mod.start;
  const bool huge = caps.ept_1g && huge_block_free();
  const Vm::SlotSpec slots[] = {
      {"low", 0, 2ull << 20, true},
      {"high", 2ull << 20, kGuestRam - (2ull << 20), false},
      {"huge", kHugeSlotGpa, kHugeSlotBytes, false, true},
  };
  if (const char* err = rv.vm.init(kVmId, slots, huge ? 3 : 2, caps.ept_1g ? 3 : 2, guest_phys_bits())) {
    runner.fail(rv, err);
    return runner.run();
  }
  void* dst = rv.vm.gpa_to_host(kGuestLoadGpa, size);
  if (!dst || size > kGuestStackTop - kGuestStackBytes - kGuestLoadGpa) {
    runner.fail(rv, "the guest image does not fit below its stacks");
    return runner.run();
  }
  // Writing the backing is not mapping it: the EPT stays empty until the guest faults.
  memcpy(dst, reinterpret_cast<const void*>(mod.start), size);
  x86::log::info("vm0: %u vCPU%s (vcpu i on cpu i), %lu MiB guest RAM in %u slots (4K-only backing 0x%lx, 2M-aligned "
                 "backing 0x%lx), image %lu bytes at 0x%lx",
                 n, n == 1 ? "" : "s", rv.vm.ram_bytes() >> 20, rv.vm.slot_count(), rv.vm.slot(0).backing_hpa,
                 rv.vm.slot(1).backing_hpa, size, kGuestLoadGpa);
  if (huge)
    x86::log::info("vm0: 1 GiB slot at gpa 0x%lx, 1G-aligned backing 0x%lx (1 GiB leaves fit)", kHugeSlotGpa,
                   rv.vm.slot(2).backing_hpa);

  char test[32] = {};
  cmdline::get("hv.test", test, sizeof test);
  const bool bad_state = !strcmp(test, "bad-guest-state");
  const uint64_t mode = guest_mode();
  for (unsigned i = 0; i < n; i++) {
    VcpuStart& s = rv.start[i];
    s.rip = kGuestLoadGpa;
    s.rsp = kGuestStackTop;
    s.rbx = kGuestRam;
    s.rsi = mode;
    s.rdx = i;
    s.rcx = n;
    s.rdi = huge ? kHugeSlotGpa : 0;
    s.corrupt_guest_state = bad_state && i == 0;
    s.interrupts_enabled = true;  // memtouch never looks at IF (see VcpuStart)
    // With several vCPUs, vCPU 0's HLT invalidates every root (a fast zap): the other vCPUs
    // are in the guest then, so their CPUs must answer the teardown's remote flushes, load a
    // fresh root at their next entry and fault their memory in again.
    s.fast_zap_at_hlt = n > 1 && i == 0;
  }
  runner.ready(rv);
  return runner.run();
}

}  // namespace hv
