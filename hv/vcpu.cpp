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
// A guest can't keep the CPU: external-interrupt exiting turns every tick and IPI into a VM
// exit, and the VMX preemption timer bounds a slice even with the LAPIC timer masked.
#include "hv/vcpu.h"

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
#include "hv/cpu_work.h"
#include "hv/exit.h"
#include "hv/live_vms.h"
#include "hv/mmu_platform.h"
#include "hv/vm.h"
#include "hv/vm_run_state.h"
#include "hv/vm_runner.h"
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
  cpu_ = x86::cpu_index();
  vpid_ = static_cast<uint16_t>(1 + vm.id() * kMaxVcpus + index);  // 0 is the host's

  run_ = &run;
  launched_ = false;
  stopped_ = false;
  failed_ = false;
  stop_reason_[0] = 0;
  fast_zap_at_hlt_ = start.fast_zap_at_hlt;
  stats_ = VcpuStats{};
  timing_.reset();
  console_.clear();
  oom_streak = 0;
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
  cr2 = 0;
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
  if (const uint32_t by = run_->stopped_by()) {
    stop(true, "stopped because vcpu%u failed (guest rip 0x%lx)", by - 1, vmread(field::kGuestRip));
    return true;
  }
  if (const char* why = run_->finish_reason()) {
    stop(false, "the VM finished (%s)", why);
    return true;
  }
  if (run_->time_is_up(x86::rdtsc())) {
    stop(true, "guest exceeded its time budget of %lu ms (rip 0x%lx)", run_->time_limit_ms(), vmread(field::kGuestRip));
    return true;
  }
  return false;
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

void Vcpu::skip_instruction() {
  vmwrite(field::kGuestRip, vmread(field::kGuestRip) + vmread(field::kExitInstructionLength));
  // Skipping an instruction ends any STI/MOV SS interrupt shadow it created (SDM 25.4.2).
  const uint64_t intr = vmread(field::kGuestInterruptibility);
  if (intr & 3) vmwrite(field::kGuestInterruptibility, intr & ~3ull);
}

void Vcpu::inject_exception(uint8_t vector, bool has_error_code, uint32_t error_code) {
  // VM-entry interruption information (SDM 25.8.3): vector, type 3 = hardware exception,
  // bit 11 deliver error code, bit 31 valid.
  uint32_t info = vector | (3u << 8) | (1u << 31);
  if (has_error_code) {
    info |= 1u << 11;
    vmwrite(field::kEntryExceptionErrorCode, error_code);
  }
  vmwrite(field::kEntryInterruptionInfo, info);
}

void Vcpu::inject_page_fault(uint64_t linear, uint32_t error_code) {
  cr2 = linear;  // loaded into the register before the entry that delivers the #PF
  inject_exception(14, true, error_code);
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
  x86::tick::consume();
  // Bounded (KVM's removed zap workers, docs/mmu.md §5): about kDeferredBudget SPTEs of queued
  // root teardown (this CPU's queue, or another's when its backlog is large; one table of
  // overshoot at most, mmu::Mmu::kTeardownOvershoot) and kDeferredBudget epoch callbacks.
  vm_->mmu().run_deferred_work(kDeferredBudget);
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
  epoch().quiescent();
  return !vm_requests_stop();
}

bool Vcpu::run() {
  run_->set_phase(index_, VmRunState::Phase::kRunning);
  VmStats& st = vm_->stats();
  while (!stopped_) {
    if (!before_entry()) break;
    if (!cpu_work::enter_guest_mode()) {
      stats_.entry_retries++;  // a flush request raced with us: before_entry() serves it
      continue;
    }
    if (x86::read_cr2() != cr2) x86::write_cr2(cr2);
    load_guest_msrs(*this);  // hv/vcpu_msrs.h: the switched MSRs, hv's values back right after
    const uint64_t t0 = x86::rdtsc();
    timing_.entering(t0);
    const int r = vmx_enter(&regs, launched_ ? 1 : 0);
    const uint64_t t1 = x86::rdtsc();
    restore_host_msrs(*this);
    cr2 = x86::read_cr2();
    cpu_work::exit_guest_mode();
    epoch().quiescent();  // the exit boundary
    if (r != kEnterExited) {
      const char* kind = r == kEnterFailInvalid ? "VMfailInvalid" : r == kEnterFailValid ? "VMfailValid" : "host RSP VMWRITE failed";
      const uint32_t err = r == kEnterFailValid ? instruction_error() : 0;
      dump_vmcs(launched_ ? "VMRESUME failed" : "VMLAUNCH failed");
      stop(true, "VM entry failed: %s, VM-instruction error %u (%s)", kind, err, instruction_error_name(err));
      break;
    }
    launched_ = true;
    exits++;
    stats_.exits++;
    st.guest_tsc += t1 - t0;
    stats_.guest_tsc += t1 - t0;
    const unsigned basic = vmread(field::kExitReason) & 0xFFFF;
    timing_.exited(basic, t1);
    switch (basic) {
      case kExitEptViolation: stats_.ept_violations++; break;
      case kExitExternalInterrupt: stats_.external_interrupts++; break;
      case kExitPreemptionTimer: stats_.preemption_timer++; break;
      default: break;
    }
    dispatch_exit(*this);
    if (!stopped_) sync_ia32e_mode();
    const uint64_t t2 = x86::rdtsc();
    st.host_exit_tsc += t2 - t1;
    stats_.host_tsc += t2 - t1;
  }
  timing_.print(vm_->id(), index_);
  return !failed_;
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
    release_vcpu_msrs(*this);
  }
}

}  // namespace hv
