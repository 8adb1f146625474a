// VMXON / VMXOFF per CPU (see root_mode.h).
#include "arch/x86/vmx/root_mode.h"

#include "arch/x86/cpu.h"
#include "arch/x86/format.h"
#include "arch/x86/percpu.h"
#include "arch/x86/pmm.h"
#include "arch/x86/vmx/instructions.h"
#include "arch/x86/xsave.h"

namespace x86::vmx {
namespace {

constexpr uint64_t kCr4Vmxe = 1u << 13;

struct CpuRoot {
  uint64_t vmxon_pa = 0;
  bool on = false;
};
CpuRoot g_root[x86::kMaxCpus];
unsigned g_on_count = 0;
char g_why[x86::kMaxCpus][128];

}  // namespace

const char* enter_root_mode(const Capabilities& caps) {
  const unsigned cpu = x86::cpu_index();
  CpuRoot& r = g_root[cpu];
  if (r.on) return nullptr;

  uint64_t fc = x86::rdmsr(msr::kFeatureControl);
  if (!(fc & feature_control::kLock)) {
    // Unlocked (some firmware leaves it so): allow VMX outside SMX and lock, as the SDM asks
    // before VMXON. The MSR is per logical processor on some parts, hence on every CPU.
    fc |= feature_control::kLock | feature_control::kVmxOutsideSmx;
    x86::wrmsr(msr::kFeatureControl, fc);
  } else if (!(fc & feature_control::kVmxOutsideSmx)) {
    format(g_why[cpu], sizeof g_why[cpu], "IA32_FEATURE_CONTROL 0x%lx: locked with VMX disabled", fc);
    return g_why[cpu];
  }

  // CR0/CR4 bits that VMX operation pins (SDM A.7, A.8): a 1 in FIXED0 must be 1, a 0 in
  // FIXED1 must be 0. The boot code already set CR0.NE (Bochs enforces it, like hardware).
  const uint64_t cr0 = (x86::read_cr0() | caps.cr0_fixed0) & caps.cr0_fixed1;
  const uint64_t cr4 = ((x86::read_cr4() | kCr4Vmxe) | caps.cr4_fixed0) & caps.cr4_fixed1;
  if (!(cr4 & kCr4Vmxe)) return "IA32_VMX_CR4_FIXED1 does not allow CR4.VMXE";
  x86::write_cr0(cr0);
  x86::write_cr4(cr4);
  // CR4.OSXSAVE and hv's XCR0, so that guests can have their own XCR0 (arch/x86/xsave.h).
  x86::xsave::enable_on_this_cpu(x86::xsave::kGuestComponents);

  if (!r.vmxon_pa) {
    r.vmxon_pa = pmm::alloc_4k(true);
    if (!r.vmxon_pa) return "out of memory for the VMXON region";
  }
  // Bit 31 of the first dword must be 0 in a VMXON region (it marks shadow VMCSs).
  *reinterpret_cast<volatile uint32_t*>(r.vmxon_pa) = caps.revision_id;

  const Status s = vmxon(r.vmxon_pa);
  if (s != Status::kOk) {
    format(g_why[cpu], sizeof g_why[cpu], "VMXON failed (%s) with region 0x%lx, CR0 0x%lx, CR4 0x%lx",
           s == Status::kFailInvalid ? "VMfailInvalid" : "VMfailValid", r.vmxon_pa, cr0, cr4);
    x86::write_cr4(x86::read_cr4() & ~kCr4Vmxe);
    return g_why[cpu];
  }
  r.on = true;
  __atomic_add_fetch(&g_on_count, 1, __ATOMIC_RELAXED);
  return nullptr;
}

void leave_root_mode() {
  CpuRoot& r = g_root[x86::cpu_index()];
  if (!r.on) return;
  vmxoff();
  x86::write_cr4(x86::read_cr4() & ~kCr4Vmxe);
  r.on = false;
  __atomic_sub_fetch(&g_on_count, 1, __ATOMIC_RELAXED);
  pmm::free_4k(r.vmxon_pa);
  r.vmxon_pa = 0;
}

bool in_root_mode() { return g_root[x86::cpu_index()].on; }
unsigned cpus_in_root_mode() { return __atomic_load_n(&g_on_count, __ATOMIC_RELAXED); }

}  // namespace x86::vmx
