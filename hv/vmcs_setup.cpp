// Filling a fresh VMCS: controls, host state and the guest's initial state.
//
// The guest starts in 32-bit protected mode with paging off, flat segments, at `start.rip`
// (possible only with "unrestricted guest", SDM 26.3.1.1), and switches to long mode itself.
// Rules that VM entry checks and that are easy to get wrong (SDM 27.2-27.3, all enforced by
// Bochs as by hardware):
//   - guest CR0.NE and CR4.VMXE must be 1 (IA32_VMX_CR*_FIXED0): they are set in the real
//     registers and owned by the host through the guest/host masks, so the guest reads them
//     from the read shadows (NE as it set it, VMXE as 0) and can't change them without an exit;
//   - guest TR must be usable and busy (type 11); LDTR may be unusable;
//   - the VMCS link pointer must be all ones;
//   - the host TR selector must be non-zero (our per-CPU TSS), host segment selectors have
//     RPL = TI = 0, host CR4.VMXE = 1;
//   - "load IA32_EFER" on entry: guest EFER.LMA must equal "IA-32e mode guest".
#include "arch/x86/cpu.h"
#include "arch/x86/format.h"
#include "arch/x86/gdt.h"
#include "arch/x86/percpu.h"
#include "arch/x86/tick.h"
#include "arch/x86/timer.h"
#include "arch/x86/vmx/controls.h"
#include "arch/x86/vmx/guest_regs.h"
#include "arch/x86/vmx/instructions.h"
#include "arch/x86/vmx/vmcs_fields.h"
#include "hv/apicv.h"
#include "hv/vcpu.h"
#include "hv/vcpu_features.h"
#include "hv/vm.h"

namespace hv {
namespace {

using namespace x86::vmx;
using namespace x86::vmx::field;

constexpr uint64_t kCr0Pe = 1u << 0, kCr0Et = 1u << 4, kCr0Ne = 1u << 5, kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Vmxe = 1u << 13;

struct [[gnu::packed]] DescriptorTableRegister {
  uint16_t limit;
  uint64_t base;
};

// Collects the first failing VMWRITE so setup can report it (field and VM-instruction error).
struct Writer {
  uint32_t failed_field = 0;
  bool failed = false;
  void operator()(uint32_t f, uint64_t v) {
    if (vmwrite(f, v) != Status::kOk && !failed) {
      failed = true;
      failed_field = f;
    }
  }
};

uint64_t tss_base_from_gdt(uint64_t gdt_base, uint16_t selector) {
  const uint64_t* d = reinterpret_cast<const uint64_t*>(gdt_base + (selector & ~7u));
  const uint64_t lo = d[0], hi = d[1];
  return ((lo >> 16) & 0xFFFFFF) | (((lo >> 56) & 0xFF) << 24) | ((hi & 0xFFFFFFFF) << 32);
}

// Why setup_vmcs() failed, one buffer per CPU: every CPU sets up its own vCPU's VMCS, several
// at once, and a shared buffer would let one CPU's message overwrite another's before it is
// printed. The message stays valid until the same CPU sets up its next VMCS (the runner
// reports a failed vCPU before it starts another on that CPU).
char g_why[x86::kMaxCpus][kWhySize];

}  // namespace

const char* Vcpu::setup_vmcs(const VcpuStart& start) {
  const Capabilities& c = *caps_;
  char* const why = g_why[x86::cpu_index()];

  // ---- controls ------------------------------------------------------------------------
  uint32_t pinv = 0, procv = 0, proc2v = 0, exitv = 0, entryv = 0;
  // The hardware APIC path (hv/apicv.h): TPR shadow, virtual-interrupt delivery, APIC-register
  // virtualization, posted interrupts with "acknowledge interrupt on exit"; "virtualize x2APIC
  // mode" follows the guest's APIC mode (apicv_mode_changed). Off: none of them.
  const bool hw_apic = apicv_enabled(c);
  apicv = Apicv{};
  apicv.on = hw_apic;
  const bool hw_posted = apicv_posted(c);
  apicv.posted = hw_posted;
  // "Acknowledge interrupt on exit": needed by posted interrupts; hv.apicv-ack-exit=1 sets it
  // without them too, so the exit path that dispatches the acknowledged vector (exit_events.cpp)
  // runs where the CPU has no posted interrupts (Bochs).
  const bool hw_ack = hw_posted || (hw_apic && c.ack_interrupt_on_exit && apicv_ack_exit_forced());
  // External interrupts and NMIs must come to the host, not the guest's IDT.
  // "Virtual NMIs" where the CPU has it (hv/irq_inject.cpp): the guest's NMI blocking is
  // tracked by the CPU and NMI-window exiting becomes available.
  const ControlRequest pin_req{"pin-based", c.pin,
                               pin::kExternalInterruptExiting | pin::kNmiExiting | (hw_posted ? pin::kPostedInterrupts : 0u),
                               (c.preemption_timer && start.time_budget_us ? pin::kPreemptionTimer : 0u) | pin::kVirtualNmis};
  // Every I/O instruction exits (no bitmaps). RDMSR/WRMSR exit unless the MSR bitmap lets them
  // through (hv/msr_policy.h: read_direct/write_direct); without bitmaps every one exits, which
  // the policy handles too. The TSC runs with an offset (guest TSC = host TSC + offset: it
  // starts near 0 for the VM, and IA32_TSC writes move it); RDTSC does not exit.
  // HLT exits; MWAIT/MONITOR exit so a guest can't park the physical CPU. RDPMC exits: the
  // performance counters are the host's (hv offers no virtual PMU), so the guest gets #GP.
  // Control registers and events (hv/exit_cr.cpp, docs/guest-platform.md sections 3 and 4):
  // CR8 accesses exit (no TPR shadow: the real CR8 is hv's LAPIC TPR); MOV DR does not exit
  // (DR0-DR3 and DR6 are the guest's: hv never reads or writes them, and VMX leaves them as
  // they are across exits); DR7 and IA32_DEBUGCTL are switched by the debug-controls pair, so
  // the guest's breakpoints survive its exits; "enable INVPCID" where the vCPU offers it.
  // With the TPR shadow, CR8 is VTPR in the virtual-APIC page: no exits.
  const uint32_t cr_proc = hw_apic ? proc::kUseTprShadow : proc::kCr8LoadExiting | proc::kCr8StoreExiting;
  const uint32_t ev_proc2 = features_.invpcid ? proc2::kEnableInvpcid : 0u;
  const uint32_t ev_exit = exit_ctl::kSaveDebugControls, ev_entry = entry_ctl::kLoadDebugControls;
  const ControlRequest proc_req{
      "processor-based", c.proc,
      proc::kHltExiting | proc::kUnconditionalIoExiting | proc::kActivateSecondary | proc::kMwaitExiting |
          proc::kMonitorExiting | proc::kRdpmcExiting | proc::kUseTscOffsetting | cr_proc,
      proc::kUseMsrBitmaps};
  // "Enable RDTSCP" exactly when the CPUID policy advertises RDTSCP (VcpuFeatures): without it
  // RDTSCP and RDPID are #UD in the guest, as CPUID then says.
  const uint32_t apicv_proc2 = hw_apic ? proc2::kApicRegisterVirtualization | proc2::kVirtualInterruptDelivery : 0u;
  // "Enable PML" with hv.dirty=pml (hv/pml.h): dirty_log_init chose pml only if the CPU has it.
  const uint32_t pml_proc2 = pml_enabled() ? proc2::kEnablePml : 0u;
  const ControlRequest proc2_req{"secondary", c.proc2,
                                 proc2::kEnableEpt | proc2::kUnrestrictedGuest | apicv_proc2 | pml_proc2,
                                 (c.vpid ? proc2::kEnableVpid : 0u) | ev_proc2 |
                                     (features_.rdtscp ? proc2::kEnableRdtscp : 0u)};
  // The guest's PAT is a VMCS field, loaded at entry and saved at exit where the CPU has the
  // controls (hv/msr_policy.h); DR7 and DEBUGCTL likewise, always (ev_exit, ev_entry above).
  const ControlRequest exit_req{"VM-exit", c.exit,
                                exit_ctl::kHostAddressSpaceSize | exit_ctl::kSaveEfer | exit_ctl::kLoadEfer | ev_exit |
                                    (hw_ack ? exit_ctl::kAckInterruptOnExit : 0u),
                                exit_ctl::kSavePat | exit_ctl::kLoadPat};
  const ControlRequest entry_req{"VM-entry", c.entry, entry_ctl::kLoadEfer | ev_entry, entry_ctl::kLoadPat};
  const ControlRequest* reqs[] = {&pin_req, &proc_req, &proc2_req, &exit_req, &entry_req};
  uint32_t* outs[] = {&pinv, &procv, &proc2v, &exitv, &entryv};
  for (unsigned i = 0; i < 5; i++)
    if (compute_controls(*reqs[i], *outs[i], why, kWhySize)) return why;
  // The TRUE_* MSRs let CR3-load/store exiting be 0; with the default MSRs they may be forced
  // on, which is harmless (those exits are handled) but worth knowing about.
  // The guest starts outside long mode, unless its loader asks for the 64-bit entry (then
  // CR0.PG, CR4.PAE and EFER.LME/LMA below agree with the control, as VM entry checks).
  const VcpuStart::LongMode& lm = start.long_mode;
  entryv &= ~entry_ctl::kIa32eModeGuest;
  if (lm.on) entryv |= entry_ctl::kIa32eModeGuest;
  // The MSR policy's state, hv's values of the switched MSRs, the MSR bitmap (hv/vcpu_msrs.h).
  if (const char* e = init_vcpu_msrs(*this, procv & proc::kUseMsrBitmaps, (proc2v & proc2::kEnableRdtscp) != 0)) return e;

  Writer w;
  w(kPinBasedControls, pinv);
  w(kProcBasedControls, procv);
  w(kSecondaryControls, proc2v);
  w(kExitControls, exitv);
  w(kEntryControls, entryv);
  w(kExceptionBitmap, 0);
  w(kPageFaultErrorMask, 0);
  w(kPageFaultErrorMatch, 0);
  w(kCr3TargetCount, 0);
  w(kExitMsrStoreCount, 0);
  w(kExitMsrLoadCount, 0);
  w(kEntryMsrLoadCount, 0);
  w(kEntryInterruptionInfo, 0);
  w(kVmcsLinkPointer, ~0ull);
  w(kEptPointer, eptp_);
  if (msrs.bitmap_pa) w(kMsrBitmap, msrs.bitmap_pa);
  w(kTscOffset, msrs.state.tsc_offset);
  if (proc2v & proc2::kEnableVpid) w(kVpid, vpid_);
  if (proc2v & proc2::kEnablePml) {
    if (const char* e = pml_setup(*this)) return e;
  }
  if (const char* e = dirty_ring_setup(*this)) return e;
  if (pinv & pin::kPreemptionTimer) {
    // Counts down at the TSC rate >> shift (IA32_VMX_MISC[4:0], SDM 26.5.1) from this value,
    // reloaded at every entry: a VM exit after at most one tick period (10 ms) of guest time,
    // so a guest that never exits comes back to its time budget and its requests even where
    // the LAPIC timer tick is masked or lost.
    const uint64_t ticks = (x86::timer::tsc_khz() * x86::tick::period_us() / 1000) >> c.preemption_timer_shift;
    preempt_default_ = ticks > 0xFFFFFFFF ? 0xFFFFFFFF : (ticks ? ticks : 1);
    preempt_loaded_ = preempt_default_;
    w(kGuestPreemptionTimer, preempt_default_);
  } else {
    preempt_default_ = preempt_loaded_ = 0;
  }

  // The bits of CR0 and CR4 hv owns (hv/exit_cr.cpp says why each): a guest write that changes
  // one of them against its read shadow exits and hv completes it. CR0: NE and whatever else
  // FIXED0/FIXED1 pin besides PE and PG; the guest starts with NE = 1 (as after reset: the
  // shadow says what the real bit is). CR4: VMXE, SMXE, OSXSAVE without XSAVE, and the bits the
  // CPU does not have; all of them read 0.
  const uint64_t cr0_owned = kCr0Ne | (c.cr0_fixed0 & ~(kCr0Pe | kCr0Pg)) | (~c.cr0_fixed1 & 0xFFFFFFFFull);
  constexpr uint64_t kCr4Smxe = 1u << 14, kCr4Osxsave = 1u << 18;
  const uint64_t cr4_owned =
      kCr4Vmxe | kCr4Smxe | c.cr4_fixed0 | ~c.cr4_fixed1 | (features_.xsave ? 0 : kCr4Osxsave);
  w(kCr0GuestHostMask, cr0_owned);
  w(kCr0ReadShadow, (kCr0Pe | kCr0Et | kCr0Ne) & cr0_owned);
  w(kCr4GuestHostMask, cr4_owned);
  w(kCr4ReadShadow, 0);

  // ---- host state ------------------------------------------------------------------------
  DescriptorTableRegister gdtr{}, idtr{};
  asm volatile("sgdt %0" : "=m"(gdtr));
  asm volatile("sidt %0" : "=m"(idtr));
  uint16_t tr = 0;
  asm volatile("str %0" : "=r"(tr));
  w(kHostCr0, x86::read_cr0());
  w(kHostCr3, x86::read_cr3());
  w(kHostCr4, x86::read_cr4());
  w(kHostCsSel, x86::gdt::kCodeSelector);
  w(kHostSsSel, x86::gdt::kDataSelector);
  w(kHostDsSel, x86::gdt::kDataSelector);
  w(kHostEsSel, x86::gdt::kDataSelector);
  w(kHostFsSel, 0);
  w(kHostGsSel, 0);
  w(kHostTrSel, tr);
  w(kHostFsBase, x86::rdmsr(x86::msr::kFsBase));  // the per-CPU base lives in GS: both kept as they are
  w(kHostGsBase, x86::rdmsr(x86::msr::kGsBase));
  w(kHostTrBase, tss_base_from_gdt(gdtr.base, tr));
  w(kHostGdtrBase, gdtr.base);
  w(kHostIdtrBase, idtr.base);
  w(kHostSysenterCs, 0);
  w(kHostSysenterEsp, 0);
  w(kHostSysenterEip, 0);
  w(kHostEfer, x86::rdmsr(msr::kEfer));
  if (exitv & exit_ctl::kLoadPat) w(kHostPat, x86::rdmsr(msr::kPat));
  w(kHostRip, reinterpret_cast<uint64_t>(&vmx_exit_point));
  w(kHostRsp, 0);  // written by vmx_enter before every entry

  // ---- guest state: 32-bit protected mode, paging off, flat ----------------------------
  const uint32_t code_ar = ar::kTypeCodeExecRead | ar::kAccessed | ar::kS | ar::kP | ar::kDb | ar::kG;
  const uint32_t data_ar = ar::kTypeDataReadWrite | ar::kAccessed | ar::kS | ar::kP | ar::kDb | ar::kG;
  struct Seg {
    uint32_t sel, base, limit, ar;
  };
  const Seg segs[] = {
      {kGuestCsSel, kGuestCsBase, kGuestCsLimit, kGuestCsAr}, {kGuestSsSel, kGuestSsBase, kGuestSsLimit, kGuestSsAr},
      {kGuestDsSel, kGuestDsBase, kGuestDsLimit, kGuestDsAr}, {kGuestEsSel, kGuestEsBase, kGuestEsLimit, kGuestEsAr},
      {kGuestFsSel, kGuestFsBase, kGuestFsLimit, kGuestFsAr}, {kGuestGsSel, kGuestGsBase, kGuestGsLimit, kGuestGsAr},
  };
  // 64-bit code: L = 1 and D = 0 (SDM 3.4.5).
  const uint32_t code64_ar = (code_ar & ~ar::kDb) | ar::kL;
  for (const Seg& s : segs) {
    const bool cs = s.sel == kGuestCsSel;
    w(s.sel, lm.on ? (cs ? lm.cs : lm.ds) : (cs ? 0x08 : 0x10));
    w(s.base, 0);
    w(s.limit, 0xFFFFFFFF);
    w(s.ar, cs ? (lm.on ? code64_ar : code_ar) : data_ar);
  }
  w(kGuestLdtrSel, 0);
  w(kGuestLdtrBase, 0);
  w(kGuestLdtrLimit, 0);
  w(kGuestLdtrAr, ar::kUnusable);
  w(kGuestTrSel, 0);
  w(kGuestTrBase, 0);
  w(kGuestTrLimit, 0x67);
  w(kGuestTrAr, ar::kTypeBusyTss32 | ar::kP);
  w(kGuestGdtrBase, lm.on ? lm.gdt_base : 0);
  w(kGuestGdtrLimit, lm.on ? lm.gdt_limit : 0xFFFF);
  w(kGuestIdtrBase, 0);
  w(kGuestIdtrLimit, 0xFFFF);
  // Unrestricted guest exempts PE and PG from CR0_FIXED0 (SDM 26.3.1.1): paging stays off.
  // The 64-bit entry has PG on (PG and PAE are not hv-owned bits: the guest reads them as set).
  constexpr uint64_t kCr4Pae = 1u << 5, kEferLme = 1u << 8, kEferLma = 1u << 10;
  w(kGuestCr0, ((kCr0Pe | kCr0Et | kCr0Ne | (lm.on ? kCr0Pg : 0)) | (c.cr0_fixed0 & ~(kCr0Pg | kCr0Pe))) & c.cr0_fixed1);
  w(kGuestCr3, lm.on ? lm.cr3 : 0);
  w(kGuestCr4, (kCr4Vmxe | (lm.on ? kCr4Pae : 0) | c.cr4_fixed0) & c.cr4_fixed1);
  w(kGuestDr7, 0x400);
  w(kGuestRflags, start.interrupts_enabled ? 0x202 : 0x2);  // bit 1 is reserved as 1; bit 9 IF
  w(kGuestRip, start.rip);
  w(kGuestRsp, start.rsp);
  w(kGuestEfer, lm.on ? kEferLme | kEferLma : 0);
  w(kGuestDebugCtl, 0);
  w(kGuestPat, hv::msr::kPatReset);
  w(kGuestSysenterCs, 0);
  w(kGuestSysenterEsp, 0);
  w(kGuestSysenterEip, 0);
  w(kGuestInterruptibility, 0);
  w(kGuestActivityState, 0);
  w(kGuestPendingDebug, 0);

  if (!w.failed && hw_apic) {
    if (!msrs.bitmap_pa) return "APIC virtualization needs the MSR bitmap";
    if (const char* e = apicv_setup_vmcs(*this)) return e;
  }

  if (w.failed) {
    x86::format(why, kWhySize, "VMWRITE of field 0x%04x failed (VM-instruction error %u: %s)", w.failed_field,
                instruction_error(), instruction_error_name(instruction_error()));
    return why;
  }
  return nullptr;
}

}  // namespace hv
