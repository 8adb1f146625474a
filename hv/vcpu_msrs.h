// A vCPU's model-specific registers in the kernel: the policy's per-vCPU state
// (hv/msr_policy.h), hv's own values of the switched MSRs, and the MSR bitmap.
//
// Switching (KERNEL_GS_BASE, STAR, LSTAR, CSTAR, SFMASK, TSC_AUX, SPEC_CTRL): none of these is
// in the VMCS. hv saves and restores them by hand around every guest slice, right next to VM
// entry (load_guest_msrs) and right after VM exit (restore_host_msrs), rather than with the
// VMCS MSR-load/store lists:
//   - only MSRs whose guest value differs from hv's are written at all (for a guest that never
//     sets them, nothing but one RDMSR of KERNEL_GS_BASE per exit), where the lists would load
//     and store every listed MSR at every entry and exit;
//   - hv's value is back in every switched MSR before any exit handler, interrupt handler or
//     other vCPU runs on this CPU: no guest value is ever seen in root mode, and a vCPU that
//     stops or parks leaves nothing behind. (KVM keeps guest values loaded until it returns to
//     user space; hv could do the same, since its root mode never executes SYSCALL, SWAPGS or
//     RDTSCP, but the strict form is simpler to argue and the cost is a WRMSR pair per changed
//     MSR per exit.)
// The guest's values: STAR, LSTAR, CSTAR, SFMASK, TSC_AUX and SPEC_CTRL change only by WRMSR,
// which exits (hv/msr_policy.cpp: write_direct is false), so hv always knows them; KERNEL_GS_BASE
// also changes by SWAPGS without an exit, so restore_host_msrs reads it back after every exit.
// hv's values are read on the vCPU's own CPU when the vCPU is set up (a vCPU never moves).
#pragma once

#include <stdint.h>

#include "arch/x86/cpu.h"
#include "hv/msr_policy.h"

namespace hv {

class Vcpu;

struct VcpuMsrs {
  msr::Config config;
  msr::State state;
  // hv's own values of the switched MSRs on this vCPU's CPU.
  uint64_t host_kernel_gs_base = 0, host_star = 0, host_lstar = 0, host_cstar = 0, host_sfmask = 0,
           host_tsc_aux = 0, host_spec_ctrl = 0;
  // Which switched MSRs load_guest_msrs wrote (restore_host_msrs puts hv's value back).
  uint32_t loaded = 0;
  uint64_t bitmap_pa = 0;  // 4 KiB MSR bitmap (0: none; every RDMSR/WRMSR exits)
};

// hv/exit_msr.cpp. init: on the vCPU's CPU, before its VMCS is filled: config from the host and
// VcpuFeatures, reset state (TSC from the VM's origin), hv's values, the bitmap. nullptr or why not.
const char* init_vcpu_msrs(Vcpu& vcpu, bool use_bitmap, bool rdtscp);
void release_vcpu_msrs(Vcpu& vcpu);

// The switched MSRs, one bit each in VcpuMsrs::loaded.
enum : uint32_t { kLoadedKgs = 1, kLoadedStar = 2, kLoadedLstar = 4, kLoadedCstar = 8, kLoadedSfmask = 16,
                  kLoadedTscAux = 32, kLoadedSpecCtrl = 64 };

// Right before VM entry, interrupts off: the guest's value into each switched MSR where it
// differs from hv's. Inline: it runs at every entry.
inline void load_guest_msrs(VcpuMsrs& m) {
  const msr::State& s = m.state;
  uint32_t loaded = 0;
  if (s.kernel_gs_base != m.host_kernel_gs_base) {
    x86::wrmsr(msr::kKernelGsBase, s.kernel_gs_base);
    loaded |= kLoadedKgs;
  }
  if (s.star != m.host_star) {
    x86::wrmsr(msr::kStar, s.star);
    loaded |= kLoadedStar;
  }
  if (s.lstar != m.host_lstar) {
    x86::wrmsr(msr::kLstar, s.lstar);
    loaded |= kLoadedLstar;
  }
  if (s.cstar != m.host_cstar) {
    x86::wrmsr(msr::kCstar, s.cstar);
    loaded |= kLoadedCstar;
  }
  if (s.sfmask != m.host_sfmask) {
    x86::wrmsr(msr::kSfmask, s.sfmask);
    loaded |= kLoadedSfmask;
  }
  if (m.config.rdtscp && s.tsc_aux != m.host_tsc_aux) {
    x86::wrmsr(msr::kTscAux, s.tsc_aux);
    loaded |= kLoadedTscAux;
  }
  if (m.config.spec_ctrl && s.spec_ctrl != m.host_spec_ctrl) {
    x86::wrmsr(msr::kSpecCtrl, s.spec_ctrl);
    loaded |= kLoadedSpecCtrl;
  }
  m.loaded = loaded;
}

// Right after VM exit, before anything else of hv runs: the guest's KERNEL_GS_BASE read back
// (SWAPGS and a direct WRMSR change it without an exit), then hv's value into every MSR that
// holds a guest value. Inline: it runs at every exit.
inline void restore_host_msrs(VcpuMsrs& m) {
  const uint64_t kgs = x86::rdmsr(msr::kKernelGsBase);
  m.state.kernel_gs_base = kgs;
  if (kgs != m.host_kernel_gs_base) x86::wrmsr(msr::kKernelGsBase, m.host_kernel_gs_base);
  const uint32_t loaded = m.loaded;
  if (!(loaded & ~uint32_t{kLoadedKgs})) {
    m.loaded = 0;
    return;  // the common case: no MSR but KERNEL_GS_BASE differs from hv's
  }
  if (loaded & kLoadedStar) x86::wrmsr(msr::kStar, m.host_star);
  if (loaded & kLoadedLstar) x86::wrmsr(msr::kLstar, m.host_lstar);
  if (loaded & kLoadedCstar) x86::wrmsr(msr::kCstar, m.host_cstar);
  if (loaded & kLoadedSfmask) x86::wrmsr(msr::kSfmask, m.host_sfmask);
  if (loaded & kLoadedTscAux) x86::wrmsr(msr::kTscAux, m.host_tsc_aux);
  if (loaded & kLoadedSpecCtrl) x86::wrmsr(msr::kSpecCtrl, m.host_spec_ctrl);
  m.loaded = 0;
}

}  // namespace hv
