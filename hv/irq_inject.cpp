// Interrupts into the guest (see irq_inject.h and hv/devices/vlapic.h).
//
// At every VM entry (Vcpu::evaluate_interrupts, interrupts off, after the safe point):
//   1. the LAPIC timer is polled against the guest TSC (an expiry sets its vector in the IRR);
//   2. if an event is already in the VM-entry interruption field (an event being re-injected
//      after an exit that interrupted its delivery, or an exception a handler raised), nothing
//      else is injected: it goes first, and the window logic below asks for the next exit;
//   3. a latched NMI (an NMI IPI, LINT1 in NMI mode) is injected when nothing else is being
//      injected and the guest is not blocking NMIs (interruptibility: no STI or MOV-SS shadow,
//      no NMI blocking). Otherwise, with "virtual NMIs" (pin-based control, used where the CPU
//      has it), "NMI-window exiting" makes the guest exit as soon as it can take one (exit
//      reason 8: after the IRET that ends its NMI handler, after a MOV-SS shadow, or right
//      after the delivery of the event being injected); only an STI shadow alone waits for
//      the interrupt window instead, because a CPU may or may not let an STI shadow hold back
//      an NMI-window exit (SDM 26.3/25.2: "a logical processor may also prevent such a VM
//      exit if there is blocking of events by STI"), and an exit right after entry, with the
//      shadow still there, would repeat forever; IF = 1 in a shadow, so that window opens
//      after one instruction. Injection sets virtual-NMI blocking; the guest's IRET clears it,
//      and an exit in between keeps it in the interruptibility field (and hv/vcpu.cpp sets it
//      back when an IRET that unblocked NMIs exits before it completes). Without virtual NMIs
//      a blocked NMI simply waits for a later entry;
//   4. the highest IRR vector above PPR is injected as an external interrupt (type 0; IRR ->
//      ISR) when RFLAGS.IF = 1 and there is no STI or MOV-SS shadow (the SDM's conditions,
//      which VM entry also checks, 27.3.1.5); otherwise "interrupt-window exiting" is set so
//      the guest exits as soon as it can take it (exit reason 7), and cleared again when
//      nothing waits;
//      On the hardware APIC path (hv.apicv=on, hv/apicv.h) this step is the CPU's: hv folds
//      the PIR into the IRR and writes PPR, RVI/SVI and the EOI-exit bitmap instead
//      (apicv_before_entry), and the CPU delivers when the guest can take the vector; while
//      the guest cannot (IF = 0, a shadow) and a vector waits, the interrupt window is opened
//      all the same (see below: Bochs 2.7 delivers virtual interrupts with IF = 0);
//   5. the VMX preemption timer (already the time-budget bound) is lowered to the timer's next
//      deadline, so a timer that expires while the guest runs ends its slice on time.
// The guest never uses the HLT activity state: HLT exits and Vcpu::halt() sleeps in hv.
#include "hv/irq_inject.h"

#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/tick.h"
#include "arch/x86/timer.h"
#include "arch/x86/vmx/instructions.h"
#include "arch/x86/vmx/vmcs_fields.h"
#include "hv/apicv.h"
#include "hv/cpu_work.h"
#include "hv/devices/chipset.h"
#include "hv/event_inject.h"
#include "hv/live_vms.h"
#include "hv/vcpu.h"
#include "hv/exit_profile.h"
#include "hv/vm.h"
#include "hv/vm_run_state.h"

namespace hv {

using namespace x86::vmx;

namespace {
constexpr uint64_t kRflagsIf = 1u << 9;
constexpr uint64_t kBlockingSti = 1u << 0, kBlockingMovSs = 1u << 1, kBlockingNmi = 1u << 3;
// Primary processor-based control "NMI-window exiting" (SDM Vol. 3C, 25.6.2); allowed only with
// the pin-based "virtual NMIs" (Vcpu::virtual_nmis_).
constexpr uint64_t kProcNmiWindowExiting = 1u << 22;
}  // namespace

uint64_t guest_tsc_now(const Vcpu& vcpu) { return x86::rdtsc() + vcpu.msrs.state.tsc_offset; }

void lapic_apply(Vcpu& vcpu, const WriteEffect& fx) {
  if (fx.send) apic_deliver(vcpu.vm(), fx.msg, static_cast<int>(vcpu.index()));
  if (fx.eoi_level_vector >= 0) ioapic_eoi(vcpu.vm(), static_cast<uint8_t>(fx.eoi_level_vector));
}

void Vcpu::evaluate_interrupts() {
  Vlapic& l = vm_->lapic[index_];
  const uint64_t now = guest_tsc_now(*this);
  l.timer_poll(now);
  // The chipset's time-driven lines (PIT channel 0, RTC) are raised here when due: a device
  // only sees time when it is touched (hv/devices/chipset.h), so every vCPU looks at the clock
  // before it enters the guest, and its slice ends no later than the chipset's next deadline.
  // The IOAPIC turns a raised line into an apic_deliver, which sets an IRR (of this vCPU or
  // another, which it wakes) before the evaluation below.
  // Polls only when something may be due (hv/deadline_cache.h); ~0: nothing will be.
  const uint64_t host_now = x86::rdtsc();
  const uint64_t chipset_deadline = chipset_poll_due(*vm_, host_now);  // host TSC

  // The hardware path (hv/apicv.h): the PIR folded, RVI/SVI, PPR and the EOI-exit bitmap
  // written; the CPU delivers the LAPIC's vectors itself, so step 4 below is skipped for them
  // (unless virtual-interrupt delivery is off for the xAPIC page: then hv injects, and the TPR
  // threshold makes a TPR write that unmasks a waiting vector exit).
  exit_profile::mark(exit_profile::kTimers);
  if (apicv.on) apicv_before_entry(*this);
  exit_profile::mark(exit_profile::kApicv);

  bool busy = (vmread(field::kEntryInterruptionInfo) & event::kInfoValid) != 0;
  const bool busy_before = busy;
  // The guest's interruptibility and RFLAGS only when something waits to be injected: most
  // entries (after a CPUID, an I/O port access, a hypercall) have nothing to inject.
  uint64_t intr = 0, rflags = 0;
  bool have_guest_state = false;
  const auto guest_state = [&] {
    if (have_guest_state) return;
    intr = vmread(field::kGuestInterruptibility);
    rflags = vmread(field::kGuestRflags);
    have_guest_state = true;
  };
  bool window = false, nmi_window = false;
  if (l.nmi_pending()) {
    guest_state();
    const uint64_t blocking = intr & (kBlockingSti | kBlockingMovSs | kBlockingNmi);
    if (!busy && !blocking && l.take_nmi()) {
      vmwrite(field::kEntryInterruptionInfo, event::make_info(event::kNmi, event::Type::kNmi, false));
      stats_.nmis_injected++;
      busy = true;
    } else if (!busy && blocking == kBlockingSti && (rflags & kRflagsIf)) {
      window = true;  // see 3. above: the STI shadow ends after one instruction
    } else if (virtual_nmis_) {
      nmi_window = true;
    }
  }
  // On the hardware path the CPU delivers the LAPIC's vectors (step 4 is skipped for them):
  // the highest deliverable one is looked for only when the PIC's ExtINT depends on it.
  const int v = apicv.vid ? -1 : l.deliverable();
  // The 8259's interrupt, for the vCPU wired to it (vCPU 0, when its LAPIC takes ExtINT): the
  // LAPIC's own vectors first, then the PIC's (the INTA cycle happens only when the guest can
  // take the interrupt now, so a request is never acknowledged and then held).
  const bool extint = index_ == 0 && l.takes_extint() && (apicv.vid ? l.deliverable() : v) < 0 && pic_output(*vm_);
  if (extint) {
    guest_state();
    if (!busy && (rflags & kRflagsIf) && !(intr & (kBlockingSti | kBlockingMovSs))) {
      const int pv = pic_intack(*vm_);
      if (pv >= 0) {
        vmwrite(field::kEntryInterruptionInfo, event::make_info(static_cast<uint8_t>(pv), event::Type::kExternalInterrupt, false));
        stats_.interrupts_injected++;
      }
    } else {
      window = true;
    }
  }
  if (v >= 0) {
    guest_state();
    if (!busy && (rflags & kRflagsIf) && !(intr & (kBlockingSti | kBlockingMovSs))) {
      l.ack(static_cast<uint8_t>(v));
      vmwrite(field::kEntryInterruptionInfo, event::make_info(static_cast<uint8_t>(v), event::Type::kExternalInterrupt, false));
      stats_.interrupts_injected++;
    } else {
      window = true;
    }
  }
  // Hardware path: while the guest cannot take an interrupt and a vector waits in the IRR,
  // interrupt-window exiting keeps the CPU from recognizing a virtual interrupt (SDM 30.2.1:
  // recognition needs the control clear); the exit when the guest can take one clears it again.
  // A correct CPU never delivers with IF = 0 anyway; Bochs 2.7 does when a physical interrupt
  // arrives while a virtual one is recognized (hv/apicv_policy.h), and an EOI in the guest's
  // IF = 0 handler is what makes a waiting vector recognized. One exit per such stretch.
  if (apicv.vid && (apicv.status & 0xFF)) {
    guest_state();
    if (!(rflags & kRflagsIf) || (intr & (kBlockingSti | kBlockingMovSs))) window = true;
  }
  if (window != interrupt_window_ || nmi_window != nmi_window_) {
    uint64_t procv = vmread(field::kProcBasedControls);
    procv = window ? procv | proc::kInterruptWindowExiting : procv & ~uint64_t{proc::kInterruptWindowExiting};
    procv = nmi_window ? procv | kProcNmiWindowExiting : procv & ~kProcNmiWindowExiting;
    vmwrite(field::kProcBasedControls, procv);
    interrupt_window_ = window;
    nmi_window_ = nmi_window;
  }
  // The earliest of the LAPIC timer's deadline (guest TSC, 0: none) and the chipset's, in
  // host TSC: it bounds the guest's slice, and the fast path's window (hv/fast_entry.h).
  uint64_t deadline = chipset_deadline;
  if (const uint64_t d = l.timer_deadline()) {
    const uint64_t d_host = d - msrs.state.tsc_offset;
    if (d_host < deadline) deadline = d_host;
  }
  if (preempt_default_) load_slice(deadline, host_now);
  // What the fast path needs from this pass: whether it left anything waiting (an event to
  // inject, a window, an NMI, a vector in RVI for the CPU to deliver), and until when nothing
  // time-driven can fall due (the deadline above, the VM's time limit, the window).
  fast_.entry_quiet = !busy_before && !busy && !window && !nmi_window && !l.nmi_pending() &&
                      !(apicv.vid && (apicv.status & 0xFF));
  uint64_t until = host_now + fast_window_ticks_;
  if (deadline < until && !fast_.blind) until = deadline;
  if (const uint64_t limit = run_->deadline(); limit && limit < until) until = limit;
  fast_.until = until;
  fast_.slice_deadline = deadline;
}

bool Vcpu::halt() {
  Vlapic& l = vm_->lapic[index_];
  // A LAPIC the guest never enabled can raise nothing: such a guest (hv's memtouch guest, the
  // exit benchmarks, guests that predate the interrupt platform) continues at once, as HLT
  // did before there were interrupts (docs/guest-platform.md section 8).
  if (!l.hw_enabled() || !l.sw_enabled()) return true;
  const bool if_set = (vmread(field::kGuestRflags) & kRflagsIf) != 0;
  const bool nmi_blocked = (vmread(field::kGuestInterruptibility) & kBlockingNmi) != 0;
  if (!if_set && vm_->vcpu_count == 1 && !l.nmi_pending() && !vm_->nmi_button.armed()) {
    // Nothing can end this HLT: only an NMI, SMI, INIT or reset would, and a one-vCPU VM
    // without a chipset has no source of any of them (unless hv.nmi-ms presses the NMI button:
    // LINT1 may bring one). Stop with a report instead of waiting for the time limit.
    stop(true, "vCPU halted with interrupts disabled (rip 0x%lx): nothing can wake it", vmread(field::kGuestRip));
    return false;
  }
  run_->set_phase(index_, VmRunState::Phase::kParked);
  const uint64_t spin_window = x86::timer::tsc_khz() * x86::tick::period_us() / 1000;
  stats_.halts++;
  for (;;) {
    run_->take_wake(index_);  // acquire: pairs with the sender's post_wake after its IRR write
    const uint64_t now = guest_tsc_now(*this);
    l.timer_poll(now);
    // The chipset's time-driven lines too (see evaluate_interrupts): a PIT or RTC interrupt
    // routed to this vCPU lands in its IRR here.
    uint64_t chipset_deadline = ~0ull;
    if (vm_->chipset.tsc_hz) {
      chipset_poll(*vm_, x86::rdtsc());
      chipset_deadline = chipset_next_deadline(*vm_);
    }
    if (l.posted()) l.sync_posted();  // hardware path: what other CPUs (and the polls above) posted
    // An NMI ends the HLT unless the guest blocks NMIs (inside its NMI handler); an INIT
    // always does (the run loop's safe point then takes it, hv/vcpu_sipi.cpp).
    if ((if_set && (l.deliverable() >= 0 || (index_ == 0 && l.takes_extint() && pic_output(*vm_)))) ||
        (l.nmi_pending() && !nmi_blocked) || vm_->sipi[index_].init_pending())
      break;
    // Like park(): serve the CPU's requests and deferred work, so a halted vCPU never holds up
    // a flush or a grace period.
    cpu_work::service();
    x86::tick::consume();
    idle_work();
    if (vm_requests_stop()) return false;
    const uint64_t d = l.timer_deadline();
    const uint64_t host_now = x86::rdtsc();
    const bool chipset_soon = chipset_deadline != ~0ull && chipset_deadline - host_now < spin_window;
    if ((d && d - now < spin_window) || chipset_soon) {
      // The timer fires before the next tick could wake us: wait for it here (bounded by a
      // tick period), checking for wake-ups.
      asm volatile("pause" ::: "memory");
      continue;
    }
    // An IPI after the checks above is taken by the HLT (STI's one-instruction delay), so no
    // wake-up is lost; the tick ends the sleep at least once per period.
    if (!run_->wake_pending(index_)) asm volatile("sti; hlt; cli" ::: "memory");
  }
  run_->set_phase(index_, VmRunState::Phase::kRunning);
  return true;
}

}  // namespace hv
