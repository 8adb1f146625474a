// The exit-path profile (issue 13, item 6): where the TSC ticks of a VM exit go, stage by stage,
// from the exit to the next entry. Off by default: every mark compiles to nothing. On with
//   cmake --preset kernel -DHV_EXIT_PROFILE=ON && cmake --build --preset kernel
// each stage boundary reads the TSC, and every vCPU prints at its end the mean ticks of each
// stage over its CPUID exits ("vmN: vcpuI: exit-profile: ..."), or over the exits of the basic
// reason hv.exit-profile=N asks for (48: EPT violations): a uniform exit whose whole
// cost tools/hv bench --guest reports as exit_cost_cpuid (each mark adds about ten ticks).
#pragma once

#include <stdint.h>

#ifdef HV_EXIT_PROFILE
#include "arch/x86/cpu.h"
#include "arch/x86/percpu.h"
#endif

namespace hv::exit_profile {

// In the order the loop passes them (Vcpu::run, before_entry, dispatch_exit, evaluate_interrupts).
enum Stage : unsigned {
  kMsrsBack,       // host MSRs and XCR0 back after the exit
  kLeaveGuest,     // PML drain, cpu_work::exit_guest_mode, the exit-boundary quiescent state
  kExitInfo,       // exit reason and qualification, exit timing, trace, counters
  kDispatch,       // dispatch_exit up to the event code (per-reason counter)
  kEvents,         // begin_exit_events (IDT-vectoring information)
  kHandler,        // the exit's handler
  kCommit,         // commit_events
  kIa32e,          // sync_ia32e_mode, the host-time accounting
  kFast,           // the fast path's checks and, on a fast entry, its preemption timer (hv/fast_entry.h)
  kCpuWork,        // cpu_work::service (remote requests)
  kTick,           // hv's own tick
  kDeferred,       // run_deferred_work (teardown steps, epoch callbacks)
  kRoot,           // load_root, the EPTP
  kQuiescent,      // the before-entry quiescent state
  kStopChecks,     // dirty ring, vm_requests_stop (polls, time limit), HLT/SIPI states
  kTimers,         // LAPIC timer poll, chipset deadline
  kApicv,          // apicv_before_entry (PIR, EOI-exit bitmap, PPR, RVI/SVI)
  kInject,         // the rest of evaluate_interrupts (injection, windows, preemption timer)
  kEnterGuest,     // cpu_work::enter_guest_mode
  kMsrsIn,         // XCR0 and the guest's MSRs
  kEntry,          // exit timing and trace of the entry, up to VMLAUNCH/VMRESUME
  kStages
};

inline constexpr const char* kStageNames[kStages] = {
    "msrs-back", "leave-guest", "exit-info", "dispatch", "events", "handler", "commit",
    "ia32e",     "fast",        "cpu-work",    "tick",      "deferred", "root",   "quiescent", "stop-checks",
    "timers",    "apicv",       "inject",    "enter-guest", "msrs-in", "entry"};

#ifdef HV_EXIT_PROFILE
inline constexpr unsigned kSlots = 64;  // CPUs (index & 63)
struct PerCpu {
  uint64_t last = 0, exits = 0;
  bool on = false;
  uint64_t ticks[kStages] = {};
};
inline PerCpu g_cpu[kSlots];
inline unsigned g_reason = 10;  // the basic exit reason profiled (10: CPUID; hv.exit-profile=N)
inline PerCpu& self() { return g_cpu[x86::cpu_index() % kSlots]; }
// At the exit (its TSC), then once the reason is known: whether this exit is profiled.
inline void exited(uint64_t tsc) { self().last = tsc; }
inline void select(unsigned reason) {
  const bool on = reason == g_reason;
  PerCpu& c = self();
  c.on = on;
  if (on) c.exits++;
}
// The end of `s`: the ticks since the previous mark go to it.
inline void mark(Stage s) {
  PerCpu& c = self();
  const uint64_t t = x86::rdtsc();
  if (c.on) c.ticks[s] += t - c.last;
  c.last = t;
}
#else
inline constexpr unsigned g_reason = 10;
inline void exited(uint64_t) {}
inline void select(unsigned) {}
inline void mark(Stage) {}
#endif

}  // namespace hv::exit_profile
