// The vCPU side of INIT and STARTUP (hv/sipi_latch.h says what is latched and why hv waits for
// SIPI in software rather than in the VMX wait-for-SIPI activity state).
//
// At every safe point of the run loop (Vcpu::run, before the entry), a vCPU whose latch shows
// an INIT or the waiting state comes here:
//   - INIT: the vCPU takes the architectural INIT state (SDM Vol. 3A, 9.1.1, table "IA-32
//     Processor States Following Power-up, Reset, or INIT", column INIT), then waits. vCPU 0
//     is the exception: an INIT of the boot CPU restarts it at the reset vector, in firmware,
//     and hv's VMs have none; the VM stops with a report (a clean stop, not a crash of hv).
//   - waiting: the vCPU sleeps outside the guest like a halted one (serving cross-CPU requests
//     and deferred MMU work, woken by the sender's wake-up IPI, the tick, or the VM's stop),
//     until a STARTUP is latched; then CS.selector = V << 8, CS.base = V << 12, IP = 0 in real
//     mode (unrestricted guest), and the loop goes round to its safe point again before entry.
// A SIPI exit (reason 4: only if a VMCS ever entered the wait-for-SIPI activity state, which hv
// never does) starts the vCPU the same way (handle_sipi, hv/exit_events.cpp).
//
// What INIT keeps (the table's "unchanged" entries): x87/SSE/AVX state and XCR0, the MTRRs and
// PAT, SYSENTER_*, DEBUGCTL, the TSC (offset), the MSRs hv switches (STAR, LSTAR, ...), CR0.CD
// and CR0.NW, the LAPIC's ID and its mode in IA32_APIC_BASE (SDM 11.4.7.3, 11.12.5.1). What it
// sets: real mode at F000:FFF0 (CS.base FFFF0000), EFLAGS 2, CR0 = ET (+ CD/NW as they were),
// CR2 = CR3 = CR4 = 0, EFER = 0, GDTR/IDTR base 0 limit FFFF, LDTR and TR usable with base 0
// limit FFFF, DR0-DR3 = 0, DR6 = FFFF0FF0, DR7 = 400, general registers 0 except EDX = the
// CPUID.1 signature, no pending event, the LAPIC reset but for its ID.
#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/tick.h"
#include "arch/x86/timer.h"
#include "arch/x86/vmx/instructions.h"
#include "arch/x86/vmx/vmcs_fields.h"
#include "hv/cpu_work.h"
#include "hv/cr_rules.h"
#include "hv/live_vms.h"
#include "hv/vcpu.h"
#include "hv/vm.h"
#include "hv/vm_run_state.h"

namespace hv {

using namespace x86::vmx;

namespace {
// Real-mode segment access rights after INIT (present, S, DPL 0): code execute/read accessed,
// data read/write accessed, LDT, busy 32-bit TSS.
constexpr uint32_t kArCode = 0x9B, kArData = 0x93, kArLdt = 0x82, kArTss = 0x8B;
constexpr uint64_t kProcNmiWindow = 1u << 22;  // primary processor-based control (SDM 25.6.2)
}  // namespace

void Vcpu::enter_init_state() {
  using namespace field;
  // The LAPIC: reset except its ID; a hardware-disabled or x2APIC-mode LAPIC stays so
  // (IA32_APIC_BASE is not changed by INIT).
  Vlapic& l = vm_->lapic[index_];
  const bool enabled = l.hw_enabled(), x2 = l.x2apic();
  l.reset(l.id(), x86::timer::tsc_khz(), features_.tsc_deadline);
  if (!enabled || x2) l.set_mode(enabled, x2);

  const Capabilities& c = *caps_;
  const uint64_t cr0 = cr::kCr0Et | (visible_cr0() & (cr::kCr0Cd | cr::kCr0Nw));
  const uint64_t cr0_mask = vmread(kCr0GuestHostMask);
  // The real CR0 keeps what VMX operation fixes (NE, ...; PE and PG are free under unrestricted
  // guest); the guest reads its own value through the shadow.
  vmwrite(kGuestCr0, (cr0 | cr::kCr0Ne | (c.cr0_fixed0 & ~(cr::kCr0Pe | cr::kCr0Pg))) & c.cr0_fixed1);
  vmwrite(kCr0ReadShadow, cr0 & cr0_mask);
  vmwrite(kGuestCr4, (cr::kCr4Vmxe | c.cr4_fixed0) & c.cr4_fixed1);
  vmwrite(kCr4ReadShadow, 0);
  vmwrite(kGuestCr3, 0);
  vmwrite(kGuestEfer, 0);
  vmwrite(kEntryControls, vmread(kEntryControls) & ~uint64_t{entry_ctl::kIa32eModeGuest});

  struct Seg {
    uint32_t sel, base, limit, ar;
  };
  const Seg segs[] = {
      {kGuestCsSel, kGuestCsBase, kGuestCsLimit, kGuestCsAr}, {kGuestSsSel, kGuestSsBase, kGuestSsLimit, kGuestSsAr},
      {kGuestDsSel, kGuestDsBase, kGuestDsLimit, kGuestDsAr}, {kGuestEsSel, kGuestEsBase, kGuestEsLimit, kGuestEsAr},
      {kGuestFsSel, kGuestFsBase, kGuestFsLimit, kGuestFsAr}, {kGuestGsSel, kGuestGsBase, kGuestGsLimit, kGuestGsAr},
  };
  for (const Seg& s : segs) {
    const bool cs = s.sel == kGuestCsSel;
    vmwrite(s.sel, cs ? 0xF000 : 0);
    vmwrite(s.base, cs ? 0xFFFF0000ull : 0);
    vmwrite(s.limit, 0xFFFF);
    vmwrite(s.ar, cs ? kArCode : kArData);
  }
  vmwrite(kGuestLdtrSel, 0);
  vmwrite(kGuestLdtrBase, 0);
  vmwrite(kGuestLdtrLimit, 0xFFFF);
  vmwrite(kGuestLdtrAr, kArLdt);
  vmwrite(kGuestTrSel, 0);
  vmwrite(kGuestTrBase, 0);
  vmwrite(kGuestTrLimit, 0xFFFF);
  vmwrite(kGuestTrAr, kArTss);
  vmwrite(kGuestGdtrBase, 0);
  vmwrite(kGuestGdtrLimit, 0xFFFF);
  vmwrite(kGuestIdtrBase, 0);
  vmwrite(kGuestIdtrLimit, 0xFFFF);
  vmwrite(kGuestRflags, 0x2);
  vmwrite(kGuestRip, 0xFFF0);
  vmwrite(kGuestRsp, 0);
  vmwrite(kGuestDr7, 0x400);
  // DR0-DR3 and DR6 are the guest's in the physical registers while this CPU runs it (hv
  // never touches them, docs/guest-platform.md section 4): reset them there.
  asm volatile("mov %0, %%dr0; mov %0, %%dr1; mov %0, %%dr2; mov %0, %%dr3" ::"r"(0ull));
  asm volatile("mov %0, %%dr6" ::"r"(0xFFFF0FF0ull));
  vmwrite(kGuestInterruptibility, 0);
  vmwrite(kGuestActivityState, 0);
  vmwrite(kGuestPendingDebug, 0);
  vmwrite(kEntryInterruptionInfo, 0);
  // No event, no window: what was pending is gone with the INIT.
  event_ = event::Pending{};
  reinjecting_ = false;
  const uint64_t procv = vmread(kProcBasedControls);
  vmwrite(kProcBasedControls, procv & ~(uint64_t{proc::kInterruptWindowExiting} | kProcNmiWindow));
  interrupt_window_ = false;
  nmi_window_ = false;
  regs = x86::vmx::GuestRegs{};
  regs.rdx = x86::cpuid(1).eax;  // the processor signature (hv's CPUID passes leaf 1 EAX through)
  stats_.inits++;
}

void Vcpu::start_at_sipi(uint8_t vector) {
  using namespace field;
  vmwrite(kGuestCsSel, static_cast<uint64_t>(vector) << 8);
  vmwrite(kGuestCsBase, static_cast<uint64_t>(vector) << 12);
  vmwrite(kGuestRip, 0);
  stats_.sipis++;
  // A SIPI page outside guest RAM is the guest's mistake, not hv's: the first fetch is an EPT
  // violation on memory that is not RAM, which stops the VM with a report (hv/exit_ept.cpp).
  const uint64_t gpa = static_cast<uint64_t>(vector) << 12;
  if (!vm_->gpa_to_host(gpa, 4096))
    x86::log::warn("vm%u: vcpu%u: SIPI vector 0x%02x: page 0x%lx is not guest RAM", vm_->id(), index_, vector, gpa);
  else
    x86::log::info("vm%u: vcpu%u: SIPI vector 0x%02x: starts in real mode at %04x:0000", vm_->id(), index_, vector,
                   static_cast<unsigned>(vector) << 8);
}

void Vcpu::sipi_exit(uint8_t vector) {
  // Only from the wait-for-SIPI activity state: whatever hv latched is superseded.
  vm_->sipi[index_].set_running();
  enter_init_state();
  start_at_sipi(vector);
  vmwrite(field::kGuestActivityState, 0);
}

bool Vcpu::ap_events() {
  SipiLatch& latch = vm_->sipi[index_];
  if (latch.take_init()) {
    if (index_ == 0) {
      stop(true, "INIT to vcpu0, the boot CPU (a reset: it would restart in firmware, which hv's VMs do not have), rip 0x%lx",
           vmread(field::kGuestRip));
      return false;
    }
    enter_init_state();
  }
  if (!latch.waiting()) return true;
  // Wait for SIPI, like park(): serve the CPU's requests and deferred work, sleep until a
  // wake-up IPI (the sender's, after its latch CAS: wake_vcpu's fence orders the two), a tick,
  // or the VM's stop.
  run_->set_phase(index_, VmRunState::Phase::kParked);
  for (;;) {
    run_->take_wake(index_);  // acquire: pairs with the sender's post_wake
    if (latch.take_init()) enter_init_state();  // INIT while waiting: the INIT state again
    const int v = latch.take_sipi();
    if (v >= 0) {
      start_at_sipi(static_cast<uint8_t>(v));
      break;
    }
    cpu_work::service();
    x86::tick::consume();
    idle_work();
    if (vm_requests_stop()) return false;
    // An IPI after the checks above is taken by the HLT (STI's one-instruction shadow).
    if (!run_->wake_pending(index_)) asm volatile("sti; hlt; cli" ::: "memory");
  }
  run_->set_phase(index_, VmRunState::Phase::kRunning);
  return true;
}

}  // namespace hv
