// The vCPU run loop (see vcpu.h).
//
// Per iteration:
//   safe point: cross-CPU requests (TLB flushes), a new tick slice, bounded deferred MMU work
//     (root teardown, epoch callbacks), EPTP reload if the root changed, an epoch quiescent
//     state (no read-side section may be open across a VM entry: the guest can run for an
//     unbounded time), the VM's stop and finish requests and its time limit (VmRunState);
//   guest mode published (cpu_work::enter_guest_mode: a flush request that raced with us is
//     seen here, and we go round again), then vmx_enter(): the guest runs;
//   exit boundary: guest mode left, another quiescent state, then the dispatch table
//     (hv/exit_dispatch.cpp).
// After a quiet exit (its handler changed only registers and RIP) the next entry may skip the
// safe point and the interrupt evaluation: the exit fast path, hv/fast_entry.h says when.
// A guest can't keep the CPU: external-interrupt exiting turns every tick and IPI into a VM
// exit, and the VMX preemption timer bounds a slice even with the LAPIC timer masked.
#include "hv/vcpu.h"
#include "hv/exit_profile.h"

#include <stdarg.h>

#include "arch/x86/cpu.h"
#include "arch/x86/format.h"
#include "arch/x86/log.h"
#include "arch/x86/percpu.h"
#include "arch/x86/pmm.h"
#include "arch/x86/tick.h"
#include "arch/x86/timer.h"
#include "arch/x86/vmx/dump.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"
#include "arch/x86/vmx/invalidate.h"
#include "arch/x86/xsave.h"
#include "hv/apicv.h"
#include "hv/cmdline.h"
#include "hv/guest_stop_report.h"
#include "hv/hypercall.h"
#include "hv/cr_rules.h"
#include "hv/cpu_work.h"
#include "hv/exit.h"
#include "hv/live_vms.h"
#include "hv/migrate.h"
#include "hv/mmu_platform.h"
#include "hv/pml.h"
#include "hv/trace.h"
#include "hv/vm.h"
#include "hv/vm_run_state.h"
#include "hv/vm_runner.h"
#include "hv/vm_stat.h"
#include "mmu/epoch.h"

namespace hv {

using namespace x86::vmx;

namespace {
// EPTP (SDM 25.6.11): memory type WB (6) in bits 2:0, page-walk length - 1 in bits 5:3,
// bit 6 enables the accessed/dirty flags.
uint64_t make_eptp(uint64_t root, bool ad) { return root | 6 | (3u << 3) | (ad ? (1u << 6) : 0); }
constexpr unsigned kDeferredBudget = 64;
}  // namespace

const char* Vcpu::init(Vm& vm, unsigned index, const Capabilities& caps, const VcpuStart& start, VmRunState& run) {
  vm_ = &vm;
  caps_ = &caps;
  index_ = index;
  counters_ = &vm.stats().of(index);
  cpu_ = x86::cpu_index();
  vpid_ = static_cast<uint16_t>(1 + vm.id() * kMaxVcpus + index);  // 0 is the host's

  run_ = &run;
  launched_ = false;
  stopped_ = false;
  failed_ = false;
  stop_reason_[0] = 0;
  fast_zap_at_hlt_ = start.fast_zap_at_hlt;
  stats_ = VcpuStats{};
  features_ = vcpu_features(caps);
  event_ = event::Pending{};
  reinjecting_ = false;
  xcr0 = 1;
  interrupt_window_ = false;
  nmi_window_ = false;
  timing_.reset();
  console_.clear();
  oom_streak = 0;
  paused_for_migration_ = halted_at_pause_ = resume_halted_ = false;
  const uint64_t root = vm.mmu().load_root(index);
  if (!root) return "out of memory for the EPT root";
  eptp_ = make_eptp(root, caps.ept_ad);

  vmcs_pa_ = x86::pmm::alloc_4k(true);
  if (!vmcs_pa_) return "out of memory for the VMCS";
  *reinterpret_cast<volatile uint32_t*>(vmcs_pa_) = caps.revision_id;
  // VMCLEAR first: it initializes the region's launch state to "clear" (SDM 25.11.3).
  if (vmclear(vmcs_pa_) != Status::kOk) return "VMCLEAR of the new VMCS failed";
  if (vmptrld(vmcs_pa_) != Status::kOk) return "VMPTRLD of the new VMCS failed";
  if (const char* why = setup_vmcs(start)) return why;
  virtual_nmis_ = (vmread(field::kPinBasedControls) & pin::kVirtualNmis) != 0;
  fast_ = FastEntry{};
  epoch_ = &epoch();
  host_xcr0_ = x86::xsave::host_xcr0();
#ifdef HV_EXIT_PROFILE
  exit_profile::g_reason = static_cast<unsigned>(cmdline::get_number("hv.exit-profile", kExitCpuid));
#endif
  cpuid_cache.clear();
  char fast_mode[16] = "1";
  cmdline::get("hv.fast-entry", fast_mode, sizeof fast_mode);
  fast_.enabled = fast_mode[0] != '0';
  fast_.blind = fast_mode[0] == 'b';
  fast_.in_guest_mode = fast_.enabled && fast_mode[0] != 'l';  // hv.fast-entry=leave
  min_slice_ticks_ = (x86::timer::tsc_khz() * kMinSliceUs / 1000) >> caps.preemption_timer_shift;
  fast_window_ticks_ = x86::timer::tsc_khz() * x86::tick::period_us() / 1000;
  if (start.corrupt_guest_state) {
    // CR0.NE is fixed to 1 in VMX operation (IA32_VMX_CR0_FIXED0 bit 5; unrestricted guest
    // exempts only PE and PG): the checks on the guest-state area (SDM 27.3.1.1) fail, and
    // VM entry ends in an exit with reason 33 and bit 31 set.
    vmwrite(field::kGuestCr0, vmread(field::kGuestCr0) & ~uint64_t{1u << 5});
    x86::log::info("test: vm%u vcpu%u: guest CR0.NE cleared in the VMCS, VM entry must fail", vm.id(), index);
  }

  // A recycled VPID or EPTP may still have translations cached from an earlier user. From
  // here on remote flushes of this VM reach this CPU's EPTP (hv/cpu_work.h).
  cpu_work::set_loaded_ept(vm.id(), eptp_);
  invept_context(caps, eptp_);
  if (caps.vpid) invvpid_context(caps, vpid_);

  regs = GuestRegs{};
  regs.rax = start.rax;
  regs.rbx = start.rbx;
  regs.rcx = start.rcx;
  regs.rdx = start.rdx;
  regs.rsi = start.rsi;
  regs.rdi = start.rdi;
  return nullptr;
}

void Vcpu::stop(bool failure, const char* fmt, ...) {
  if (stopped_) return;
  va_list ap;
  va_start(ap, fmt);
  x86::vformat(stop_reason_, sizeof stop_reason_, fmt, ap);
  va_end(ap);
  stopped_ = true;
  failed_ = failure;
  if (failure) request_vm_stop();
}

// The first vCPU that fails stops the whole VM: the others see the request at their next safe
// point, and the IPI makes sure that comes soon even if their guest never exits by itself.
void Vcpu::request_vm_stop() {
  if (run_ && run_->request_stop(index_)) kick_vcpus(*run_, index_);
}

void Vcpu::finish_vm(const char* why) {
  if (!run_) return;
  run_->request_finish(why);
  kick_vcpus(*run_, index_);
}

void Vcpu::console_put(uint8_t c) {
  const unsigned id = vm_->id();
  console_.put(c, [id](const char* text) {
    // vm0 is the memtouch VM, whose lines the boot tests know as "guest: ...".
    if (id == 0) x86::log::plain("guest: %s", text);
    else x86::log::plain("vm%u: guest: %s", id, text);
  });
}

void Vcpu::console_flush() {
  const unsigned id = vm_->id();
  console_.flush([id](const char* text) {
    if (id == 0) x86::log::plain("guest: %s", text);
    else x86::log::plain("vm%u: guest: %s", id, text);
  });
}

bool Vcpu::vm_requests_stop() {
  // One TSC read for the three clocks looked at here (every exit passes this way). hv.stat-ms:
  // the VM's live counter line, printed by whichever of its vCPUs gets here first once a period
  // is due (hv/vm_stat_clock.h); off, each claim is one load and a compare.
  uint64_t elapsed = 0;
  const uint64_t now = x86::rdtsc();
  if (vm_->stat_clock.claim(now, &elapsed)) print_vm_stat(*vm_, elapsed / (x86::timer::tsc_khz() ?: 1));
  // Each only where it was asked for: the checks are inline loads, the polls are calls.
  if (vm_->stress.armed()) vm_stress_poll(*this, now);  // hv.stress-* (hv/vm_stress.h)
  if (vm_->nmi_button.armed()) nmi_button_poll(*this, now);  // hv.nmi-ms (hv/devices/nmi_button.h)
  if (vm_->migration) migrate_poll(*this, now);  // hv.migrate-ms: the trigger and the pre-copy steps (hv/migrate.h)
  if (const uint32_t by = run_->stopped_by()) {
    stop(true, "stopped because vcpu%u failed (guest rip 0x%lx)", by - 1, vmread(field::kGuestRip));
    return true;
  }
  if (const char* why = run_->finish_reason()) {
    stop(false, "the VM finished (%s)", why);
    return true;
  }
  if (run_->time_is_up(now)) {
    stop(true, "guest exceeded its time budget of %lu ms (rip 0x%lx)", run_->time_limit_ms(), vmread(field::kGuestRip));
    return true;
  }
  // The stop-and-copy phase of a migration: every vCPU leaves its run loop here, at a safe
  // point (no exit half handled), and its job saves its state (hv/migrate.h). A vCPU asleep in
  // halt() is marked so that it sleeps again wherever it resumes.
  if (vm_->migration && migrate_pause_requested(*this)) {
    paused_for_migration_ = true;
    halted_at_pause_ = run_->phase(index_) == VmRunState::Phase::kParked &&
                       !(vm_->sipi[index_].raw() & (SipiLatch::kInit | SipiLatch::kWaiting));
    stop(false, "paused for live migration");
    return true;
  }
  return false;
}

void Vcpu::resume_after_aborted_migration() {
  if (!paused_for_migration_) return;
  paused_for_migration_ = false;
  stopped_ = failed_ = false;
  stop_reason_[0] = 0;
  resume_halted_ = halted_at_pause_;
  halted_at_pause_ = false;
}

bool Vcpu::park() {
  run_->set_phase(index_, VmRunState::Phase::kParked);
  for (;;) {
    // What an idle CPU does (cross-CPU requests, a quiescent state, deferred MMU work), since
    // this CPU runs nothing else meanwhile: a parked vCPU must never hold up a flush or a
    // grace period.
    cpu_work::service();
    x86::tick::consume();
    idle_work();
    if (run_->take_wake(index_)) {
      run_->set_phase(index_, VmRunState::Phase::kRunning);
      return true;
    }
    if (vm_requests_stop()) return false;
    // Sleep until an interrupt (a kick: wake-up, stop, flush request; or the tick). Interrupts
    // are off here, and STI delays them until after the next instruction, so an IPI sent
    // after the checks above is taken by the HLT: no wake-up is lost between check and sleep.
    if (!run_->wake_pending(index_)) asm volatile("sti; hlt; cli" ::: "memory");
  }
}

void Vcpu::inject_exception(uint8_t vector, bool has_error_code, uint32_t error_code) {
  if (stopped_) return;
  bool triple = false;
  const event::Pending first = event_;
  event_ = event::raise(first, vector, has_error_code, error_code, &triple);
  reinjecting_ = false;
  if (triple) {
    // A contributory fault or #PF while the CPU delivers #DF: shutdown (SDM Vol. 3A, 6.15,
    // interrupt 8). A VM has no one to reset it, so it stops, with both vectors in the report.
    dump_vmcs("guest triple fault");
    stop(true, "guest triple fault: %s (vector %u, error code 0x%x) raised while delivering #DF (vector %u), rip 0x%lx",
         event::vector_name(vector), vector, error_code, event::info_vector(first.info), vmread(field::kGuestRip));
  }
}

void Vcpu::inject_page_fault(uint64_t linear, uint32_t error_code) {
  // A #PF that becomes a #DF must not change CR2 (the #DF handler sees the faulting address of
  // the first #PF in the combination, which is what the guest's CR2 already holds).
  if (event::combine(event_, event::kPf) == event::Outcome::kSerial) regs.cr2 = linear;  // vmx_enter loads it just before the entry
  inject_exception(event::kPf, true, error_code);
}

void Vcpu::commit_pending_event() {
  uint32_t info = event_.info;
  const event::Type type = event::info_type(info);
  if (type == event::Type::kHardwareException) {
    const uint8_t v = event::info_vector(info);
    // VM entry requires "deliver error code" exactly for the vectors that push one and only
    // in protected mode (a real-mode guest under unrestricted guest gets no error code).
    const bool pe = (vmread(field::kGuestCr0) & cr::kCr0Pe) != 0;
    const bool ec = pe && (v == event::kCp ? (info & event::kInfoErrorCode) != 0 : event::has_error_code(v));
    info = ec ? (info | event::kInfoErrorCode) : (info & ~event::kInfoErrorCode);
    // Hardware pushes RF = 1 for faults; VM entry pushes the RFLAGS field as it is.
    if (event::sets_rf(v)) {
      constexpr uint64_t kRf = 1u << 16;
      const uint64_t rflags = vmread(field::kGuestRflags);
      if (!(rflags & kRf)) vmwrite(field::kGuestRflags, rflags | kRf);
    }
  }
  if (type == event::Type::kNmi) {
    // An NMI whose delivery exited (re-injected) may have left (virtual-)NMI blocking set in
    // the saved interruptibility state; VM entry refuses to inject an NMI with that bit set
    // (SDM 27.3.1.5), and the blocking belongs to the delivery that is now repeated. Clear it.
    constexpr uint64_t kBlockingNmi = 1u << 3;
    const uint64_t intr = vmread(field::kGuestInterruptibility);
    if (intr & kBlockingNmi) vmwrite(field::kGuestInterruptibility, intr & ~kBlockingNmi);
  }
  if (info & event::kInfoErrorCode) vmwrite(field::kEntryExceptionErrorCode, event_.error_code);
  if (type == event::Type::kSoftwareInterrupt || type == event::Type::kSoftwareException ||
      type == event::Type::kPrivilegedSoftwareException)
    vmwrite(field::kEntryInstructionLength, event_.instruction_length);
  vmwrite(field::kEntryInterruptionInfo, info);
}

uint64_t Vcpu::visible_cr0() const {
  const uint64_t mask = vmread(field::kCr0GuestHostMask);
  return (vmread(field::kGuestCr0) & ~mask) | (vmread(field::kCr0ReadShadow) & mask);
}

uint64_t Vcpu::visible_cr4() const {
  const uint64_t mask = vmread(field::kCr4GuestHostMask);
  return (vmread(field::kGuestCr4) & ~mask) | (vmread(field::kCr4ReadShadow) & mask);
}

// When the guest turns paging on with EFER.LME set, the CPU sets EFER.LMA without a VM exit.
// "Load IA32_EFER" then requires the "IA-32e mode guest" entry control to match LMA at the
// next entry, so copy LMA (saved by "save IA32_EFER" at every exit) into the control.
void Vcpu::sync_ia32e_mode() {
  const bool lma = (vmread(field::kGuestEfer) >> 10) & 1;
  const uint64_t entry = vmread(field::kEntryControls);
  const bool ctl = (entry & entry_ctl::kIa32eModeGuest) != 0;
  if (lma != ctl) vmwrite(field::kEntryControls, lma ? entry | entry_ctl::kIa32eModeGuest : entry & ~uint64_t{entry_ctl::kIa32eModeGuest});
}

bool Vcpu::before_entry() {
  cpu_work::service();
  exit_profile::mark(exit_profile::kCpuWork);
  x86::tick::consume();
  exit_profile::mark(exit_profile::kTick);
  // Bounded (KVM's removed zap workers, docs/mmu.md §5): about kDeferredBudget SPTEs of queued
  // root teardown (this CPU's queue, or another's when its backlog is large; one table of
  // overshoot at most, mmu::Mmu::kTeardownOvershoot) and kDeferredBudget epoch callbacks.
  vm_->mmu().run_deferred_work(kDeferredBudget);
  exit_profile::mark(exit_profile::kDeferred);
  // A fast zap (invalidate all roots) makes the MMU hand out a fresh root here: switch the
  // EPTP. INVEPT both: the old EPTP so that this CPU caches translations only for the EPTP it
  // has loaded (what cpu_work's single-context remote flush relies on), the new one because
  // its table page may be a recycled one that this CPU cached under the same EPTP value.
  uint64_t root = vm_->mmu().load_root(index_);
  // The page limit may refuse the fresh root a fast zap asks for while old trees are still on
  // their way back: reclaim (teardown from any CPU's queue, the epoch polled) and try again,
  // answering other CPUs' requests in between (one of them may wait for our flush), a bounded
  // number of times, before stopping the VM.
  for (unsigned tries = 0; !root && tries < GuestMmu::kReclaimRetries && vm_->mmu().reclaim(GuestMmu::kReclaimBudget);
       tries++) {
    cpu_work::service();
    root = vm_->mmu().load_root(index_);
  }
  if (!root) {
    const mmu::MmuStats q = vm_->mmu().stats();
    stop(true, "out of memory for an EPT root (MMU pages %lu, limit %lu, %lu invalid root(s), %lu awaiting reclaim)",
         q.table_pages_live, q.table_pages_limit, q.roots_invalid, q.pages_awaiting_reclaim);
    return false;
  }
  const uint64_t eptp = make_eptp(root, caps_->ept_ad);
  if (eptp != eptp_) {
    invept_context(*caps_, eptp_);
    eptp_ = eptp;
    cpu_work::set_loaded_ept(vm_->id(), eptp_);
    vmwrite(field::kEptPointer, eptp_);
    invept_context(*caps_, eptp_);
    stats_.root_switches++;
  }
  exit_profile::mark(exit_profile::kRoot);
  epoch_->quiescent(cpu_);
  exit_profile::mark(exit_profile::kQuiescent);
  // hv.dirty-ring: a ring at its soft limit holds the vCPU here until its consumer reaps.
  if (dring.ring && !dirty_ring_wait(*this, [](Vcpu& v) { return v.vm_requests_stop(); })) return false;
  return !vm_requests_stop();
}

// The exit fast path (hv/fast_entry.h says why each check is there).
inline bool Vcpu::fast_entry_ok(uint64_t now) const {
  // The exit's side: a quiet handler, no event for the next entry, the VM not being migrated
  // (its pause and pre-copy steps are polled at every full pass, as before the fast path).
  if (!fast_.quiet_exit || !fast_.entry_quiet || event_.valid() || stopped_ || vm_->migration) return false;
  // Time: before the earliest deadline of the last full pass, and within the window.
  if (now >= fast_.until) return false;
  // Other CPUs: a wake-up (IRR, PIR, NMI, INIT, SIPI), a stop or finish request, a fast zap.
  if (run_->wake_pending(index_) || run_->stopped_by() || run_->finish_requested()) return false;
  if (vm_->sipi[index_].raw() & (SipiLatch::kInit | SipiLatch::kWaiting)) return false;
  // Deferred MMU work waiting (a teardown queued, pages in limbo or the epoch's): the full
  // pass runs a bounded step of it at every exit, as before the fast path, so that a guest
  // polling for its memory to come back (a loop of STAT hypercalls) sees it come back.
  return vm_->mmu().root_current(index_) && !dring.ring && vm_->mmu().deferred_idle(cpu_);
}

inline void Vcpu::fast_slice(uint64_t now) {
  if (preempt_default_ && fast_.slice_deadline != ~0ull && !fast_.blind) load_slice(fast_.slice_deadline, now);
}

// The guest-mode loop's standing conditions (hv/fast_entry.h): none of what it skips is needed.
// PML: a harvest waits for this CPU to leave guest mode after draining (hv/pml.cpp). The trace
// records every entry and exit. SPEC_CTRL: the guest's value stays out of hv's code. The dirty
// ring and a migration already keep every entry a full one (fast_entry_ok).
inline bool Vcpu::guest_mode_loop_ok() const {
  return fast_.in_guest_mode && !pml.page_pa && !trace::g_mask && !(msrs.loaded & kLoadedSpecCtrl);
}

// The exit reasons the guest-mode loop may handle; exit_in_guest_mode looks closer. Matching
// the full reason leaves out entry failures (bit 31).
inline bool in_guest_mode_kind(uint32_t reason) {
  return reason == kExitCpuid || reason == kExitVmcall || reason == kExitIoInstruction;
}

// The exit's accounting, on both paths: the guest's slice [t0, t1) and the exit-timing sample
// (its interval ends at the next entry, ExitTiming::entering).
inline void Vcpu::note_exit(const ExitInfo& e, uint64_t t0, uint64_t t1) {
  counters_->guest_tsc += t1 - t0;
  exit_profile::select(e.basic);
  timing_.exited(e.basic, e.qualification, t1);
}

// And the host's time [t1, t2) from the exit to the end of its handling.
inline void Vcpu::note_exit_handled(uint64_t t1, uint64_t t2) {
  counters_->host_exit_tsc += t2 - t1;
}

inline Vcpu::InGuest Vcpu::exit_in_guest_mode(uint32_t reason, uint64_t t0, uint64_t t1) {
  ExitInfo e;
  e.reason = reason;
  e.basic = static_cast<uint16_t>(e.reason & 0xFFFF);
  e.qualification = 0;
  // The kinds the loop handles, told apart before their handler runs: handlers that touch
  // no guest memory and no MMU state and answer quietly (registers and RIP only). None of
  // these exits happens while an event is delivered, so there is no IDT-vectoring
  // information to take.
  ExitHandler handler;
  switch (e.reason) {
    case kExitCpuid:
      handler = handle_cpuid;
      break;
    case kExitVmcall:
      if (!hypercall_reads_only(regs.rax)) return InGuest::kNo;
      handler = handle_hypercall;
      break;
    case kExitIoInstruction: {
      // IN or OUT (not a string one, which reads guest memory) on a port no device claims
      // or a quiet device's.
      e.qualification = vmread(field::kExitQualification);
      if (io_qual::is_string(e.qualification)) return InGuest::kNo;
      const IoDevice* dev = vm_->io.find(io_qual::port(e.qualification));
      if (dev && !dev->quiet) return InGuest::kNo;
      handler = handle_io;
      break;
    }
    default:
      return InGuest::kNo;
  }
  // The exit's accounting, as on the ordinary path (there dispatch_exit counts the reason).
  note_exit(e, t0, t1);
  counters_->exits[e.basic]++;
  exit_profile::mark(exit_profile::kExitInfo);
  fast_.quiet_exit = false;
  handler(*this, e);
  exit_profile::mark(exit_profile::kHandler);
  // LMA may have changed in the guest slice (CR0.PG is the guest's): as after every exit.
  sync_ia32e_mode();
  const uint64_t t2 = x86::rdtsc();
  note_exit_handled(t1, t2);
  exit_profile::mark(exit_profile::kIa32e);
  // What a fast entry requires, and no flush request waiting (enter_guest_mode's check).
  if (!fast_entry_ok(t2) || !cpu_work::flush_idle()) return InGuest::kHandled;
  fast_.entries++;
  fast_.in_guest_entries++;
  fast_slice(t2);
  exit_profile::mark(exit_profile::kFast);
  return InGuest::kReenter;
}

bool Vcpu::run() {
  run_->set_phase(index_, VmRunState::Phase::kRunning);
  bool fast = false;  // the exit fast path (hv/fast_entry.h): this entry skips the full pass
  uint64_t t_fast = 0;  // the host TSC at which it was decided
  while (!stopped_) {
    if (fast) {
      fast_.entries++;
      fast_slice(t_fast);
      exit_profile::mark(exit_profile::kFast);
    } else {
      // Acquire: pairs with a sender's post_wake after its IRR, PIR, NMI or SIPI-latch write;
      // everything below looks at those. Taken here, not only in HLT, so that the fast path
      // sees a wake-up only while nothing has looked since.
      if (run_->wake_pending(index_)) run_->take_wake(index_);
      if (!before_entry()) break;
      // A vCPU that was asleep in HLT when its VM was paused (migrated, or a migration
      // abandoned) sleeps again before its first entry here, as if the HLT had just exited.
      if (resume_halted_) {
        resume_halted_ = false;
        if (!halt()) break;
        continue;
      }
      // INIT, or waiting for SIPI (hv/vcpu_sipi.cpp): after a wait, round again to the safe point.
      if (vm_->sipi[index_].raw() & (SipiLatch::kInit | SipiLatch::kWaiting)) {
        if (!ap_events()) break;
        continue;
      }
      exit_profile::mark(exit_profile::kStopChecks);
      evaluate_interrupts();
      exit_profile::mark(exit_profile::kInject);
    }
    fast = false;
    if (!cpu_work::enter_guest_mode()) {
      stats_.entry_retries++;  // a flush request raced with us: before_entry() serves it
      continue;
    }
    // The guest's XCR0 only while it runs (arch/x86/xsave.h: hv's XCR0 is a superset, so the
    // switch back never disables a component that holds guest state). Interrupts are off here
    // and hv's handlers use no extended state anyway.
    const uint64_t host_xcr0 = host_xcr0_;
    const bool switch_xcr0 = features_.xsave && xcr0 != host_xcr0;
    if (switch_xcr0) x86::xsave::xsetbv(0, xcr0);
    exit_profile::mark(exit_profile::kEnterGuest);
    load_guest_msrs(msrs);  // hv/vcpu_msrs.h: the switched MSRs, hv's values back right after
    exit_profile::mark(exit_profile::kMsrsIn);
    uint64_t t0 = x86::rdtsc();
    timing_.entering(t0);
    if (trace::g_mask) trace_entry(t0);
    exit_profile::mark(exit_profile::kEntry);
    // The guest-mode loop (hv/fast_entry.h): quiet exits of a few kinds are handled right
    // here, with the guest's MSRs and XCR0 still loaded and this CPU still in guest mode for
    // cpu_work, and the guest entered again, until an exit of another kind or a reason for a
    // full pass.
    const bool in_guest_loop = guest_mode_loop_ok();
    InGuest handled;  // kHandled: the loop handled the last exit but cannot re-enter
    int r;
    uint64_t t1;
    for (;;) {
      handled = InGuest::kNo;
      r = vmx_enter(&regs, launched_ ? 1 : 0);
      t1 = x86::rdtsc();
      exit_profile::exited(t1);
      if (r != kEnterExited || !in_guest_loop) break;
      launched_ = true;
      // Only the loop's kinds go further (an EPT violation must not pay for the loop).
      const uint32_t reason = static_cast<uint32_t>(vmread(field::kExitReason));
      if (!in_guest_mode_kind(reason)) break;
      handled = exit_in_guest_mode(reason, t0, t1);
      if (handled != InGuest::kReenter) break;
      t0 = x86::rdtsc();
      timing_.entering(t0);
      exit_profile::mark(exit_profile::kEntry);
    }
    restore_host_msrs(msrs);
    if (switch_xcr0) x86::xsave::xsetbv(0, host_xcr0);
    // Before "outside guest mode" is published: a harvest's drain waits for exactly that
    // (hv/pml.cpp). One VMREAD when PML is on; nothing otherwise.
    exit_profile::mark(exit_profile::kMsrsBack);
    if (pml.page_pa) pml_drain(*this);
    cpu_work::exit_guest_mode();
    epoch_->quiescent(cpu_);  // the exit boundary
    exit_profile::mark(exit_profile::kLeaveGuest);
    if (r != kEnterExited) {
      const char* kind = r == kEnterFailInvalid ? "VMfailInvalid" : r == kEnterFailValid ? "VMfailValid" : "host RSP VMWRITE failed";
      const uint32_t err = r == kEnterFailValid ? instruction_error() : 0;
      dump_vmcs(launched_ ? "VMRESUME failed" : "VMLAUNCH failed");
      stop(true, "VM entry failed: %s, VM-instruction error %u (%s)", kind, err, instruction_error_name(err));
      break;
    }
    launched_ = true;
    if (handled == InGuest::kHandled) continue;  // the guest-mode loop took it: a full pass next
    // The exit reason and qualification, read once for everything below (the timing's kind,
    // the trace, the dispatcher, the event code and the handler).
    ExitInfo e;
    e.reason = static_cast<uint32_t>(vmread(field::kExitReason));
    e.basic = static_cast<uint16_t>(e.reason & 0xFFFF);
    e.qualification = vmread(field::kExitQualification);
    const unsigned basic = e.basic;
    note_exit(e, t0, t1);
    if (trace::on(trace::kCatExit))
      trace::record(trace::kExit, vm_->id(), static_cast<uint8_t>(index_), t1, basic, e.qualification);
    switch (basic) {
      case kExitExternalInterrupt: stats_.external_interrupts++; break;
      case kExitPreemptionTimer: stats_.preemption_timer++; break;
      default: break;
    }
    exit_profile::mark(exit_profile::kExitInfo);
    fast_.quiet_exit = false;
    dispatch_exit(*this, e);
    if (!stopped_) sync_ia32e_mode();
    const uint64_t t2 = x86::rdtsc();
    note_exit_handled(t1, t2);
    exit_profile::mark(exit_profile::kIa32e);
    fast = fast_.enabled && fast_entry_ok(t2);
    t_fast = t2;
    exit_profile::mark(exit_profile::kFast);
  }
  if (trace::on(trace::kCatExit)) trace::record(trace::kVcpuStop, vm_->id(), static_cast<uint8_t>(index_), x86::rdtsc(), failed_, 0);
  if (!paused_for_migration_) print_run_reports();
#ifdef HV_EXIT_PROFILE
  {
    const exit_profile::PerCpu& c = exit_profile::self();
    char buf[640];
    size_t o = 0;
    uint64_t sum = 0;
    for (unsigned s = 0; s < exit_profile::kStages && c.exits; s++) {
      sum += c.ticks[s] / c.exits;
      o += x86::format(buf + o, sizeof buf - o, " %s=%lu", exit_profile::kStageNames[s], c.ticks[s] / c.exits);
    }
    x86::log::info("vm%u: vcpu%u: exit-profile: %lu exits of reason %u, mean ticks per stage (sum %lu):%s", vm_->id(),
                   index_, c.exits, exit_profile::g_reason, sum, o ? buf : " none");
  }
#endif
  if (failed_ && vm_->report_guest_state) print_guest_stop_report(*this);  // the VMCS is still current
  return !failed_;
}

void Vcpu::print_run_reports() {
  timing_.print(vm_->id(), index_);
  // The exit fast path (hv/fast_entry.h): entries that skipped the full pass.
  const uint64_t exits = counters_->total_exits();
  x86::log::info("vm%u: vcpu%u: fast entries: %lu of %lu (%lu%%), %lu of them in guest mode%s", vm_->id(), index_,
                 fast_.entries, exits, exits ? fast_.entries * 100 / exits : 0,
                 fast_.in_guest_entries,
                 !fast_.enabled ? ", off (hv.fast-entry=0)" : !fast_.in_guest_mode ? ", loop off (hv.fast-entry=leave)" : "");
  apicv_report(*this);  // hv/apicv.h: the LAPIC path and its exits
  pml_report(*this);    // hv/pml.h: PML entries and log-full exits
  dirty_ring_report(*this);
}

// The entry's trace records (hv/trace.h): the event about to be injected, then the entry.
void Vcpu::trace_entry(uint64_t tsc) {
  if (trace::on(trace::kCatIrq)) {
    const uint64_t info = vmread(field::kEntryInterruptionInfo);
    // Valid, and an external interrupt (type 0) or an NMI (type 2): what the interrupt
    // platform injected (exceptions re-injected by the event code are not "irq").
    const uint64_t type = (info >> 8) & 7;
    if ((info & (1u << 31)) && (type == 0 || type == 2))
      trace::record(trace::kInject, vm_->id(), static_cast<uint8_t>(index_), tsc, info & 0xFF, type);
  }
  if (trace::on(trace::kCatExit)) trace::record(trace::kEntry, vm_->id(), static_cast<uint8_t>(index_), tsc, 0, 0);
}

void Vcpu::release() {
  if (vmcs_pa_) {
    vmclear(vmcs_pa_);
    // This CPU stops caching the VM's translations: remote flushes of the VM need not reach
    // it any more.
    invept_context(*caps_, eptp_);
    cpu_work::set_loaded_ept(0, 0);
    x86::pmm::free_4k(vmcs_pa_);
    vmcs_pa_ = 0;
    pml_release(*this);
    dirty_ring_release(*this);
    release_vcpu_msrs(*this);
  }
}

}  // namespace hv
