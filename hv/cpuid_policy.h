// The CPUID policy: what a guest's CPUID returns, leaf by leaf, built from the host's CPUID
// and what hv really virtualizes (hv/vcpu_features.h). Pure code: the host's CPUID comes in
// through a callback, so the whole policy runs in host unit tests against fake CPUs
// (tests/unit/cpuid_policy_test.cpp). The table of decisions, one reason per bit or group, is
// in cpuid_policy.cpp and docs/guest-platform.md section 1.
//
// The rule: a feature is advertised only when the guest really gets it. Passed-through bits are
// instructions that run natively in VMX non-root operation with no state hv has to manage;
// virtualized bits are ones hv implements (TSC_ADJUST, the hypervisor leaves, the topology);
// everything else, and every leaf or bit hv does not know, is zero.
#pragma once

#include <stdint.h>

#include "hv/vcpu_features.h"

namespace hv::cpuid {

struct Regs {
  uint32_t eax, ebx, ecx, edx;
  bool operator==(const Regs&) const = default;
};

// The host's CPUID (the kernel passes x86::cpuid; tests pass a fake CPU).
using HostCpuid = Regs (*)(void* ctx, uint32_t leaf, uint32_t subleaf);

// Highest basic leaf the policy knows; 0x1F (V2 extended topology) and above stay hidden.
inline constexpr uint32_t kMaxBasicLeaf = 0x16;
// Highest extended leaf (0x80000008: address sizes).
inline constexpr uint32_t kMaxExtendedLeaf = 0x80000008;
// The hypervisor range: 0x40000000 (signature, highest hypervisor leaf) to 0x40000010 (timing,
// as VMware and KVM publish it).
inline constexpr uint32_t kHypervisorBase = 0x40000000;
inline constexpr uint32_t kTimingLeaf = 0x40000010;
// The rate of the virtual LAPIC timer (the "bus" frequency), in kHz: 1 GHz, one count per
// nanosecond. Published at 0x40000010 EBX and as the core crystal clock of leaf 0x15/0x16 (on
// Intel parts with leaf 0x15 the LAPIC timer runs at the crystal clock). The virtual LAPIC of
// the interrupt-platform issue must count at this rate.
inline constexpr uint32_t kLapicTimerKhz = 1000000;

struct Inputs {
  HostCpuid host = nullptr;
  void* host_ctx = nullptr;
  VcpuFeatures features;
  unsigned vcpu_index = 0;  // the vCPU's (x2)APIC ID
  unsigned vcpu_count = 1;  // vCPUs of the VM: all cores of one package, one thread per core
  uint64_t tsc_khz = 0;     // the guest's TSC rate (the host's: hv offsets, never scales); 0 unknown
  unsigned phys_bits = 36;  // the guest's MAXPHYADDR (hv/guest_phys_bits.h)
  // Guest state CPUID reflects (SDM: CPUID.1:ECX.OSXSAVE is CR4.OSXSAVE; leaf 0xD EBX is the
  // size of the XSAVE area for the current XCR0).
  bool guest_cr4_osxsave = false;
  uint64_t guest_xcr0 = 1;
};

// What the guest sees for CPUID(leaf, subleaf).
Regs guest_cpuid(const Inputs& in, uint32_t leaf, uint32_t subleaf);

// The leaves a guest may enumerate, for tests and documentation: the highest basic and
// extended leaf the guest is told about, given the host.
uint32_t max_basic_leaf(const Inputs& in);
uint32_t max_extended_leaf(const Inputs& in);

// Masks of the bits the policy may pass through or set, per register of leaf 1 and leaf 7.0 and
// 0x80000001 (anything outside is zero whatever the host has): the invariants of the unit tests.
struct Allowed {
  uint32_t l1_ecx, l1_edx, l7_ebx, l7_ecx, l7_edx, e1_ecx, e1_edx;
};
Allowed allowed_bits(const VcpuFeatures& f);

}  // namespace hv::cpuid
