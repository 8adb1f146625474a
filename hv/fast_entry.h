// The exit fast path (issue 13): after an exit whose handler changed nothing but the guest's
// registers and RIP (a CPUID, a VMCALL that only reads, an access to a port no device
// claims), the vCPU enters the guest again without the safe point (Vcpu::before_entry: remote
// requests, hv's tick, deferred MMU work, the root, the quiescent state, the VM's stop checks
// and polls, INIT/SIPI) and without evaluating interrupts (Vcpu::evaluate_interrupts), when
// nothing those look at can have changed since the last full pass. What can change them, and
// what the fast path looks at instead (Vcpu::fast_entry_ok):
//
//   - the exit's own handler: it declares the exit quiet (Vcpu::quiet_exit), or the exit takes
//     the full path. A handler that queued an event for injection is never quiet.
//   - other CPUs: an IRR or PIR bit, an NMI, INIT or SIPI for this vCPU come with a posted
//     wake-up (VmRunState::post_wake), which the full path takes and the fast path only reads;
//     a stop or finish request is a word of VmRunState; a fast zap changes the root generation
//     (mmu::Mmu::vcpu_root_current); a flush request is seen by cpu_work::enter_guest_mode,
//     which every entry passes. The senders' IPIs would end the next guest slice on a correct
//     CPU anyway, but Bochs 2.7 can leave an IPI pending while its guest runs with IF = 0
//     (hv/vcpu.h, VcpuStart::interrupts_enabled), so the fast path reads the words itself.
//   - deferred MMU work (a root teardown queued, pages in limbo, epoch callbacks of this CPU):
//     its inline hint (GuestMmu::deferred_idle). While there is some, every entry is a full
//     one, so it progresses at every exit as before; a guest that waits for its memory to
//     come back in a loop of STAT hypercalls sees it come back as fast.
//   - time: the LAPIC timer, the PIT and RTC, the VM's time limit, hv's tick and everything
//     polled at the safe point (hv.stat-ms, the stress, NMI-button and migration polls). The
//     full pass sets `until`, the earliest of the timer and chipset deadlines, the VM's time
//     limit and one tick period from now; a fast entry happens only before it. So the deadlines are met as after a full
//     pass, and the polls run at least once per tick period however fast the guest exits: as
//     often as for a guest that never exits, whose slices the tick (or the preemption timer)
//     ends.
//   - what the last full pass left waiting: an event to inject, an interrupt or NMI window, a
//     vector in RVI, a pending NMI. The guest's own progress (an STI, an IRET, a virtualized
//     EOI) changes what those mean, so any of them makes every entry a full one (entry_quiet).
//
// The VMX preemption timer: when a deadline shortened the full pass's slice, a fast entry
// shortens it again from that deadline (Vcpu::fast_slice), so a timer fires as late as after a
// full pass and no later. hv.fast-entry=0 turns the fast path off (the benchmark's baseline).
//
// Without leaving guest mode (the guest-mode loop, Vcpu::exit_in_guest_mode; KVM re-enters
// from its fast path the same way, "EXIT_FASTPATH_REENTER_GUEST"). Some quiet exits are
// handled before the exit's bookkeeping, right after VM exit, and the guest is entered again
// from there: CPUID, a VMCALL that only reads (hypercall_reads_only: VERSION, POOL_INFO,
// VCPU_INFO) and an IN or OUT (not a string one) on a port no device claims or a quiet
// device's. Their handlers touch no guest memory and no MMU state, and they are told apart
// by reason, RAX and port before the handler runs. What the loop skips, and why that is safe:
//   - the switched MSRs (hv/vcpu_msrs.h) and XCR0 keep the guest's values: hv's code never
//     executes SYSCALL, SWAPGS, RDTSCP or RDPID and uses no extended state
//     (-mgeneral-regs-only); every link of hv.elf checks that (cmake/check_kernel_insns.py).
//     Not when the guest's SPEC_CTRL differs from hv's: hv's code does not run under the
//     guest's speculation controls.
//   - cpu_work's guest state stays odd ("in guest mode") throughout: hv's code runs on hv's
//     page tables and uses no translation of the guest's EPTP, so a requester that waits for
//     this CPU's flush or exit loses nothing; it has sent this CPU an IPI, and the loop also
//     looks at the request words before each re-entry (cpu_work::flush_idle) and leaves.
//     Not with PML: a harvest waits for the vCPU to leave guest mode after its drain.
//   - the epoch's quiescent state: a grace period does not depend on it (mmu/epoch.h).
//   - the exit's event code: none of these exits happens during event delivery.
// What the loop keeps: every counter and the exit-timing sample (exit_cost_* measures the
// loop), the IA-32e mode control (CR0.PG is the guest's, so LMA may change in any slice), and
// all of Vcpu::fast_entry_ok before each re-entry. Any other exit, or a failed check, leaves
// the loop through the ordinary path (restoring the MSRs, leaving guest mode); an exit the
// loop already handled then goes straight to a full pass. Not with the trace on (it records
// every entry and exit). hv.fast-entry=leave turns the loop off and keeps the rest.
// Not EPT violations, although most are quiet: the fault path waits for the MMU lock, and a
// writer may hold it while it waits for this CPU's flush (cpu_work::flush_ept); in guest mode
// this CPU would not answer until it got the lock. Outside guest mode it need not answer.
#pragma once

#include <stdint.h>

namespace hv {

struct FastEntry {
  bool enabled = true;        // hv.fast-entry (default 1)
  // hv.fast-entry=blind, a broken fast path for the tests' sake: `until` ignores the deadlines
  // (only the window bounds it), so a timer can fire up to a tick late. guest-lapic's
  // cpuid-wait group must catch it (guest-lapic-fastblind-bochs).
  bool blind = false;
  bool quiet_exit = false;    // this exit's handler changed nothing but registers and RIP
  bool entry_quiet = false;   // the last full pass left nothing waiting
  uint64_t until = 0;         // host TSC: no fast entry from here on
  uint64_t slice_deadline = 0;  // host TSC of the deadline that shortened the slice (0: none)
  // hv.fast-entry=leave turns the guest-mode loop off: every exit leaves guest mode (the
  // benchmark's baseline for the loop, hv-2m-leave).
  bool in_guest_mode = true;
  uint64_t entries = 0;       // fast entries (the vCPU's report)
  uint64_t in_guest_entries = 0;  // of them, by the guest-mode loop
};

}  // namespace hv
