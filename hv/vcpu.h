// A virtual CPU: its VMCS, the guest registers that the VMCS does not hold, and the run loop.
//
// A vCPU runs on the physical CPU that created it (its VMCS is current there; the runner,
// hv/vm_runner.h, places vCPUs on CPUs); run() loops "safe point -> VM entry -> VM exit ->
// dispatch" until a handler stops it. Stopping is how every guest-caused problem ends (unknown
// exit, failed entry, triple fault, unbacked memory, the VM's time limit): the vCPU records why
// and returns; hv itself keeps going. A vCPU that stops with a failure stops its VM: it claims
// the VM's stop request (VmRunState) and kicks the other vCPUs, which stop at their next safe
// point. Before it runs, a vCPU may be parked (park(): set up on its CPU, waiting for a
// wake-up: a secondary vCPU waiting to be started, later a halted vCPU).
#pragma once

#include <stdint.h>

#include "arch/x86/vmx/capabilities.h"
#include "arch/x86/vmx/guest_regs.h"
#include "arch/x86/vmx/instructions.h"
#include "arch/x86/vmx/vmcs_fields.h"
#include "hv/console_line.h"
#include "hv/cpuid_cache.h"
#include "hv/dirty_log.h"
#include "hv/event_inject.h"
#include "hv/exit.h"
#include "hv/exit_timing.h"
#include "hv/fast_entry.h"
#include "hv/pml.h"
#include "hv/vcpu_features.h"
#include "hv/vcpu_msrs.h"
#include "hv/vm_stats.h"

namespace mmu {
class Epoch;
}

namespace hv {

class Vm;
class VmRunState;
struct VcpuState;

// The architectural state a vCPU starts in (besides what hv/vmcs_setup.cpp fixes: 32-bit
// protected mode, flat segments, paging off) and the test knobs of its first run.
struct VcpuStart {
  uint64_t rip = 0;
  uint64_t rsp = 0;
  // General registers handed to the guest (memtouch: RBX RAM size, RSI mode, RDX vCPU index,
  // RCX vCPU count, RDI base of its 1 GiB slot; multiboot: EAX magic, EBX info address).
  uint64_t rax = 0, rbx = 0, rcx = 0, rdx = 0, rsi = 0, rdi = 0;
  // The VM's time limit in µs (0: none), filled in by the runner (hv.time-limit-ms; the limit
  // itself is checked VM-wide, VmRunState::time_is_up). With a limit, the VMX preemption timer
  // bounds every guest slice (hv/vmcs_setup.cpp), so the limit is noticed even when a guest
  // never exits by itself.
  uint64_t time_budget_us = 0;
  bool corrupt_guest_state = false;  // hv.test=bad-guest-state: VM entry must fail
  bool fast_zap_at_hlt = false;      // the vCPU's first HLT invalidates every EPT root
  // Start with RFLAGS.IF = 1. No interrupt reaches the guest either way (external-interrupt
  // exiting sends them all to hv), but Bochs 2.7 only re-evaluates its interrupt mask when IF
  // changes at VM entry, before it considers the guest in VMX non-root mode: a guest entered
  // with IF = 0 from a host with IF = 0 never gets an external-interrupt exit there, and only
  // the VMX preemption timer ends its slices (the same happens, in Bochs, after the guest
  // executes CLI). Off for guests whose entry state says IF = 0.
  bool interrupts_enabled = false;
  // Start in 64-bit mode instead (Linux's 64-bit boot protocol, hv/linux_loader.h): paging on
  // with `cr3` (identity tables the loader built in guest RAM), CR4.PAE, EFER.LME/LMA, the
  // "IA-32e mode guest" entry control, GDTR = the loader's GDT, CS = `cs` (a 64-bit code
  // descriptor there) and DS/ES/SS/FS/GS = `ds`. Off: 32-bit protected mode, paging off.
  struct LongMode {
    bool on = false;
    uint64_t cr3 = 0, gdt_base = 0;
    uint16_t gdt_limit = 0, cs = 0, ds = 0;
  } long_mode;
};

// Per-vCPU counters that only the vCPU's summary shows (exits, EPT violations and time are in
// its slice of the VM's counters, hv/vm_stats.h). Single writer: only the vCPU's own CPU
// writes them, and the runner reads them after the vCPU finished (VmRunState: release/acquire),
// so they are plain integers (hv/counter.h).
struct VcpuStats {
  uint64_t external_interrupts = 0;  // ticks and IPIs that ended a guest slice
  uint64_t preemption_timer = 0;
  uint64_t root_switches = 0;        // fresh EPT roots loaded (fast zaps)
  uint64_t entry_retries = 0;        // a flush request came in just before VM entry
  uint64_t interrupts_injected = 0;  // external interrupts from the vLAPIC (hv/irq_inject.cpp)
  uint64_t nmis_injected = 0;
  uint64_t halts = 0;                // HLTs that slept
  uint64_t nmi_windows = 0;          // NMI-window exits (an NMI waited for the guest's IRET)
  uint64_t inits = 0;                // INIT states entered (hv/vcpu_sipi.cpp; an AP's first wait counts)
  uint64_t sipis = 0;                // starts by a STARTUP IPI
};

class Vcpu {
 public:
  // Allocates and fills the VMCS on the calling CPU. `run` is the VM's shared run state
  // (stop, finish, time limit, wake-ups). nullptr or why not.
  const char* init(Vm& vm, unsigned index, const x86::vmx::Capabilities& caps, const VcpuStart& start, VmRunState& run);
  // Waits on this CPU, outside the guest, until the vCPU is woken (VmRunState::post_wake and
  // an IPI: hv/vm_runner.h wake_vcpu). Meanwhile the CPU serves cross-CPU requests and idles
  // (deferred MMU work, epoch quiescent states). True when woken; false when the VM's stop or
  // finish request or its time limit came first (the vCPU is then stopped, with the reason).
  bool park();
  // Runs until stopped. Returns true when the guest ended normally (it reported a result).
  bool run();
  // The end-of-run lines (exit costs, LAPIC path, PML, dirty ring). run() prints them, except
  // for a vCPU paused for a migration: the migration's report does, after the downtime
  // (hv/migrate.cpp print_report), as they only read counters.
  void print_run_reports();
  // VMCLEAR and free the VMCS (on the CPU that ran it).
  void release();
  // Injected LAPIC vectors so far (the software path's count; hv/apicv.cpp reports it).
  uint64_t interrupts_injected() const { return stats_.interrupts_injected; }

  // --- used by exit handlers ---
  void stop(bool failure, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
  // Ends the whole VM without a failure (the guest powered off): every other vCPU stops as
  // passed at its next safe point, with `why` (a string that outlives the VM) in its reason.
  void finish_vm(const char* why);
  bool stopped() const { return stopped_; }
  bool failed() const { return failed_; }
  const char* stop_reason() const { return stop_reason_; }
  // Skip the instruction that caused the exit (VM-exit instruction length), completing it as
  // the CPU would: the STI/MOV SS shadow ends, RFLAGS.RF is cleared, and with RFLAGS.TF = 1
  // (and DEBUGCTL.BTF = 0) the single-step #DB is made pending (pending debug exceptions BS),
  // so that it is delivered right after the skipped instruction (SDM Vol. 3C, 27.7.3).
  void skip_instruction();
  // The same for an instruction hv emulated whose length the exit does not give (EPT
  // violations: the emulator decoded it): RIP becomes `next_rip` (the caller wraps it as the
  // mode requires), then shadow, RF and single-step as above.
  void complete_instruction(uint64_t next_rip);
  // Inject a hardware exception at the next entry (vector, optional error code). When an event
  // is already waiting (the one whose delivery caused this exit: IDT-vectoring information,
  // hv/exit_dispatch.cpp), the double-fault rules combine the two (hv/event_inject.h): the new
  // exception, a #DF, or a triple fault, which stops the VM with a report.
  void inject_exception(uint8_t vector, bool has_error_code, uint32_t error_code);
  // Inject a #PF for `linear` (the guest's CR2 at delivery: regs.cr2, which vmx_enter loads
  // into the register, as it saves it at every exit; the VMCS has no CR2 field) with `error_code`.
  void inject_page_fault(uint64_t linear, uint32_t error_code);
  // The event that the next VM entry injects, if any (valid() false: none). Right after an
  // exit it is the event whose delivery the exit interrupted: a handler can ask whether the
  // exit happened during event delivery (then the access that exited was the CPU's, reading the
  // IDT or pushing a frame, not the instruction's at RIP).
  const event::Pending& pending_event() const { return event_; }
  bool exit_during_event_delivery() const { return reinjecting_; }
  // Called by dispatch_exit(): before the handler (the interrupted event becomes the pending
  // one) and after it (the pending event written into the VM-entry fields).
  // `idt_vectoring`: the exit's IDT-vectoring information field. The common case (no event
  // was being delivered, no NMI blocking to recover after an IRET's EPT violation) inline.
  void begin_exit_events(const ExitInfo& exit, uint32_t idt_vectoring);
  void commit_events() {
    // VM exits clear the valid bit of the entry field (SDM 28.2.x): with no event, nothing to
    // write (the common case, inline).
    if (!stopped_ && event_.valid()) commit_pending_event();
  }

  // Interrupts (hv/irq_inject.cpp): HLT sleeps until an interrupt can be taken (true), or the
  // vCPU was stopped meanwhile (false). Called by handle_hlt after the HLT was skipped.
  bool halt();
  // INIT/SIPI (hv/vcpu_sipi.cpp): a SIPI exit (reason 4) from the wait-for-SIPI activity state
  // starts the vCPU at `vector` as a latched SIPI would.
  void sipi_exit(uint8_t vector);
  void count_nmi_window() { stats_.nmi_windows++; }
  // Called by a handler whose exit changed nothing but the guest's registers and RIP: the next
  // entry may be a fast one (hv/fast_entry.h says what else must hold).
  void quiet_exit() { fast_.quiet_exit = true; }

  // The guest's CR0 and CR4 as it reads them (the read shadows over the bits hv owns).
  uint64_t visible_cr0() const;
  uint64_t visible_cr4() const;
  // What this vCPU offers (hv/vcpu_features.h), fixed at init().
  const VcpuFeatures& features() const { return features_; }

  Vm& vm() { return *vm_; }
  unsigned index() const { return index_; }
  // This vCPU's slice of its VM's counters (hv/vm_stats.h): only this vCPU writes it.
  VmCounters& counters() { return *counters_; }
  const x86::vmx::Capabilities& caps() const { return *caps_; }
  unsigned cpu() const { return cpu_; }
  // Takes the "fast zap at HLT" request (true once, if VcpuStart asked for it).
  bool take_fast_zap() {
    const bool z = fast_zap_at_hlt_;
    fast_zap_at_hlt_ = false;
    return z;
  }
  uint64_t eptp() const { return eptp_; }
  const VcpuStats& vstats() const { return stats_; }
  const ExitTiming& timing() const { return timing_; }
  // Port 0xE9 (the memtouch guest's console): one line buffer per vCPU, so no two vCPUs or VMs
  // share one. Lines print as "guest: ..." for vm0 (memtouch, as the boot tests know them) and
  // "vmN: guest: ..." for any other VM. Single writer: only this vCPU's exits (on its own CPU) feed it; the runner
  // flushes it after the vCPU finished (the finished edge of VmRunState orders the two).
  void console_put(uint8_t c);
  void console_flush();
  // Consecutive EPT violations that failed for lack of page-table pages and were sent back to
  // the guest to retry after reclaim (hv/exit_ept.cpp); reset by a fault that succeeds.
  unsigned oom_streak = 0;
  x86::vmx::GuestRegs regs = {};
  // The guest's XCR0 (XSETBV, hv/exit_xsetbv.cpp): loaded before every entry and hv's own
  // restored after every exit when the two differ (arch/x86/xsave.h). 1 (x87 only) at reset.
  uint64_t xcr0 = 1;
  // The CPUID exit's answers (hv/cpuid_cache.h), emptied when the vCPU is set up.
  cpuid::Cache cpuid_cache;
  // The guest's MSRs that the VMCS does not hold, the policy state, the MSR bitmap
  // (hv/vcpu_msrs.h; filled by setup_vmcs, switched around every guest slice).
  VcpuMsrs msrs;
  // The hardware APIC path (hv/apicv.h): on for this vCPU, and what the VMCS holds now.
  struct Apicv {
    bool on = false;
    bool posted = false;         // posted interrupts (notification vector, acknowledge on exit)
    bool x2apic = false;         // "virtualize x2APIC mode" set, x2APIC reads/writes let through
    bool xapic_access = false;   // "virtualize APIC accesses" set (xAPIC mode, the APIC enabled)
    bool vid = false;            // "virtual-interrupt delivery" set (off: hv injects, TPR threshold)
    uint8_t tpr_threshold = 0;   // TPR threshold last written (without virtual-interrupt delivery)
    uint16_t status = 0;         // guest interrupt status (RVI, SVI) last written
    uint64_t eoi_exit[4] = {};   // EOI-exit bitmap last written
    // The page's IRR and ISR words at the last entry: which vectors the CPU delivered since
    // (apicv_vectoring: an exit during a virtual interrupt's delivery, hv/apicv_policy.h).
    uint32_t irr_entry[8] = {}, isr_entry[8] = {};
    // Counters (single writer: this vCPU), printed by apicv_report when the vCPU ends.
    uint64_t entries_with_vector = 0;  // entries with a vector the CPU delivers (RVI above PPR)
    uint64_t eoi_exits = 0, apic_write_exits = 0;
    uint64_t guard_eoi_exits = 0;      // EOI-induced exits of edge vectors: the IF = 0 guard's (apicv_policy.h)
    uint64_t apic_access_exits = 0;    // accesses to the APIC-access page the CPU left to hv (reason 44)
    uint64_t tpr_threshold_exits = 0;  // TPR below threshold (reason 43; without virtual-interrupt delivery)
    uint64_t acked_exits = 0;          // external-interrupt exits that carried their vector
    uint64_t vectoring_fixes = 0;      // abandoned virtual-interrupt deliveries undone (apicv_vectoring)
    uint64_t vectoring_dropped = 0;    // external-interrupt reports that could not be re-injected
  } apicv;

  // Page-modification logging (hv/pml.h): the vCPU's log and its counters.
  VcpuPml pml;
  // The vCPU's dirty ring (hv/dirty_log.h, hv.dirty-ring=N).
  VcpuDirtyRing dring;

  // --- live migration (hv/migrate.h, hv/vm_state.h) ---
  // The vCPU stopped at a safe point because its VM is being migrated (not a failure).
  bool paused_for_migration() const { return paused_for_migration_; }
  // The migration was abandoned (another vCPU of the VM ended meanwhile): run this vCPU again
  // as it was, with its VMCS still current. A vCPU paused asleep in HLT goes back to sleep.
  void resume_after_aborted_migration();

 private:
  friend void save_vcpu_state(Vcpu& vcpu, VcpuState& s);
  friend void restore_vcpu_state(Vcpu& vcpu, const VcpuState& s);
  const char* setup_vmcs(const VcpuStart& start);
  bool before_entry();
  void commit_pending_event();
  void begin_exit_events_slow(const ExitInfo& exit, uint32_t idt_vectoring);
  // Right before VM entry: timer poll, NMI / external-interrupt injection, interrupt window,
  // preemption timer bounded by the LAPIC timer (hv/irq_inject.cpp).
  void evaluate_interrupts();
  // hv.trace: the injected event and the entry (hv/trace.h).
  void trace_entry(uint64_t tsc);
  // INIT and STARTUP at a safe point (hv/vcpu_sipi.cpp): a pending INIT puts the vCPU into the
  // INIT state, and a vCPU in wait-for-SIPI sleeps here until a SIPI starts it. False when the
  // vCPU stopped instead (the VM's stop, finish or time limit; INIT to vCPU 0).
  bool ap_events();
  void enter_init_state();
  void start_at_sipi(uint8_t vector);
  // The VM's requests seen at a safe point (stop, finish, time limit): true when this vCPU
  // must stop now (it is then stopped, with the reason).
  bool vm_requests_stop();
  void sync_ia32e_mode();
  void request_vm_stop();
  // The exit fast path (hv/fast_entry.h): may the next entry skip the safe point and the
  // interrupt evaluation? `now` is the host TSC. And on a fast entry, the preemption timer
  // from the deadline that shortened the full pass's slice.
  bool fast_entry_ok(uint64_t now) const;
  void fast_slice(uint64_t now);
  // The guest-mode loop (hv/fast_entry.h, "Without leaving guest mode"): handles the exit that
  // ended the slice entered at host TSC t0 (its exit at t1) without leaving guest mode, when
  // it is one of the kinds that may. kNo: not one, nothing done; kReenter: handled, enter
  // again at once; kHandled: handled, and the next entry is a full pass.
  enum class InGuest : uint8_t { kNo, kReenter, kHandled };
  InGuest exit_in_guest_mode(uint32_t reason, uint64_t t0, uint64_t t1);
  // May this entry's exits be handled without leaving guest mode (the loop's standing
  // conditions; the per-exit ones are exit_in_guest_mode's)?
  bool guest_mode_loop_ok() const;
  // An exit's counters and exit-timing sample, and the host time of its handling (hv/vcpu.cpp).
  void note_exit(const ExitInfo& e, uint64_t t0, uint64_t t1);
  void note_exit_handled(uint64_t t1, uint64_t t2);
  // Loads the VMX preemption timer for a slice that ends no later than `deadline` (host TSC,
  // ~0: none) but lasts at least kMinSliceUs, and at most the default slice (below).
  void load_slice(uint64_t deadline, uint64_t now);

  Vm* vm_ = nullptr;
  // &vm_->stats().of(index_), kept so that the exit path reaches its counters without going
  // through Vm (incomplete here, and one more dependent load on every exit).
  VmCounters* counters_ = nullptr;
  const x86::vmx::Capabilities* caps_ = nullptr;
  unsigned index_ = 0;
  unsigned cpu_ = 0;
  uint64_t vmcs_pa_ = 0;
  uint64_t eptp_ = 0;
  uint16_t vpid_ = 0;
  bool launched_ = false;
  bool stopped_ = false;
  bool failed_ = false;
  VmRunState* run_ = nullptr;
  bool fast_zap_at_hlt_ = false;
  VcpuFeatures features_;
  event::Pending event_;     // injected at the next entry (commit_events)
  bool reinjecting_ = false; // event_ is the one whose delivery this exit interrupted
  bool interrupt_window_ = false;  // "interrupt-window exiting" is set in the VMCS
  bool nmi_window_ = false;        // "NMI-window exiting" is set in the VMCS
  bool virtual_nmis_ = false;      // the pin-based "virtual NMIs" control is on (NMI-window possible)
  uint64_t preempt_default_ = 0;   // VMX preemption timer per slice (0: the timer is off)
  uint64_t preempt_loaded_ = 0;    // the value in the VMCS now
  FastEntry fast_;                 // the exit fast path (hv/fast_entry.h)
  mmu::Epoch* epoch_ = nullptr;    // hv/mmu_platform.h epoch(), looked up once
  uint64_t host_xcr0_ = 0;         // x86::xsave::host_xcr0(), fixed before any guest runs
  static constexpr uint64_t kMinSliceUs = 10;  // shortest guest slice a deadline may ask for
  uint64_t min_slice_ticks_ = 1;   // kMinSliceUs in preemption-timer ticks
  uint64_t fast_window_ticks_ = 0; // one tick period in TSC ticks (hv/fast_entry.h)
  ConsoleLine console_;
  VcpuStats stats_;
  ExitTiming timing_;  // exit-to-entry cost by reason, printed when run() returns
  bool paused_for_migration_ = false;
  bool halted_at_pause_ = false;  // the pause came while the vCPU slept in halt()
  bool resume_halted_ = false;    // run() sleeps in halt() before its first entry
  char stop_reason_[200] = {};
};

// Inline: every instruction exit completes its instruction (the guest-mode loop's too).
inline void Vcpu::skip_instruction() {
  complete_instruction(x86::vmx::vmread(x86::vmx::field::kGuestRip) + x86::vmx::vmread(x86::vmx::field::kExitInstructionLength));
}

inline void Vcpu::complete_instruction(uint64_t next_rip) {
  x86::vmx::vmwrite(x86::vmx::field::kGuestRip, next_rip);
  // Skipping an instruction ends any STI/MOV SS interrupt shadow it created (SDM 25.4.2).
  const uint64_t intr = x86::vmx::vmread(x86::vmx::field::kGuestInterruptibility);
  if (intr & 3) x86::vmx::vmwrite(x86::vmx::field::kGuestInterruptibility, intr & ~3ull);
  // The instruction completed: RF is cleared as after any completed instruction (it only
  // suppressed an instruction breakpoint on this one), and a single-step trap is due.
  // BS (bit 14) in the pending-debug-exceptions field makes VM entry deliver the #DB with
  // DR6.BS set before the next instruction, as the SDM prescribes for a VMM that emulates an
  // instruction while RFLAGS.TF = 1 (Vol. 3C, 27.7.3). With DEBUGCTL.BTF = 1 TF traps only on
  // branches, and hv skips no branch. Hardware data or I/O breakpoints the skipped instruction
  // would have hit are not reported (docs/guest-platform.md, section 4).
  constexpr uint64_t kRf = 1u << 16, kTf = 1u << 8, kBtf = 1u << 1, kPendingBs = 1u << 14;
  const uint64_t rflags = x86::vmx::vmread(x86::vmx::field::kGuestRflags);
  if (rflags & kRf) x86::vmx::vmwrite(x86::vmx::field::kGuestRflags, rflags & ~kRf);
  if ((rflags & kTf) && !(x86::vmx::vmread(x86::vmx::field::kGuestDebugCtl) & kBtf))
    x86::vmx::vmwrite(x86::vmx::field::kGuestPendingDebug, x86::vmx::vmread(x86::vmx::field::kGuestPendingDebug) | kPendingBs);
}

// Inline: every full pass and every fast entry with a deadline load the slice.
// At least Vcpu::kMinSliceUs of guest time: a timer due sooner (a hostile 1 ns period, a PIT
// programmed with a count of 1) fires at the next entry instead, so the guest always runs
// between two timer interrupts and an interrupt storm costs hv one exit per slice, not a
// livelock of zero-length slices.
inline void Vcpu::load_slice(uint64_t deadline, uint64_t now) {
  uint64_t ticks = preempt_default_;
  if (deadline != ~0ull) {
    const uint64_t min_slice = min_slice_ticks_;
    uint64_t left = deadline > now ? (deadline - now) >> caps_->preemption_timer_shift : 0;
    if (left < min_slice) left = min_slice ? min_slice : 1;
    if (left < ticks) ticks = left;
  }
  // The field keeps its value across entries: write it only when it changes.
  if (ticks != preempt_loaded_) {
    x86::vmx::vmwrite(x86::vmx::field::kGuestPreemptionTimer, ticks);
    preempt_loaded_ = ticks;
  }
}

// Basic exit reason 48 is an EPT violation, whose qualification bit 12 says "NMI unblocking due
// to IRET" (SDM 28.2.3).
inline void Vcpu::begin_exit_events(const ExitInfo& exit, uint32_t idt_vectoring) {
  if (!(idt_vectoring & event::kInfoValid) &&
      !(virtual_nmis_ && exit.basic == 48 && (exit.qualification & (uint64_t{1} << 12)))) {
    event_ = event::Pending{};
    reinjecting_ = false;
    return;
  }
  begin_exit_events_slow(exit, idt_vectoring);
}

}  // namespace hv
