// What the vCPUs of one running VM share with each other and with the runner (hv/vm_runner.h):
// where each vCPU runs, its phase, the VM's stop and finish requests, its time limit, and the
// wake-ups of parked vCPUs. The *protocol* lives here; sending the IPIs that make a vCPU look
// at it is the kernel's part (hv/vm_runner.h kick_vcpus, wake_vcpu).
//
// Pure code on mmu/atomic.h, no kernel dependency: the host tests run it with real threads
// under ThreadSanitizer (tests/unit/vm_run_state_test.cpp).
//
// A vCPU's phases: kIdle (its job has not started) -> kParked (set up on its CPU, waiting to be
// started: the wait-for-SIPI state of a secondary CPU, and later a halted vCPU) <-> kRunning
// (in its run loop) -> kFinished (stopped, its VMCS cleared, its counters final). Only the
// vCPU's own CPU changes its phase. The runner reads phases to wait for the VM's end.
//
// Memory ordering, pair by pair:
//   - mark_finished (release) / finished (acquire): everything the vCPU wrote before it
//     finished (its stop reason, VcpuStats, ExitTiming, its console line, the VM counters it
//     bumped) is visible to the runner that sees it finished. This is the edge that lets the
//     runner read those plain fields without locks.
//   - post_wake (release) / take_wake (acquire): what the waker wrote before waking a vCPU (a
//     start state, later a SIPI vector or a pending interrupt) is visible to the vCPU that
//     takes the wake-up.
//   - request_finish (release) / finish_reason (acquire): the reason text (a string the
//     requester may have formatted just before) is complete when a vCPU reads it.
//   - the stop request and the deadline: relaxed. They carry no data: the stopping vCPU's
//     reason is read by the runner only after the finished edge above, and the other vCPUs
//     only need *to* stop, soon (the IPI that follows the request makes "soon" bounded:
//     a locked CAS/XCHG orders the request before the IPI's ICR write; see wake_vcpu for
//     the x2APIC case).
//   - the placement (cpu_of) and the limit are written by the runner before any vCPU job is
//     posted; cpu_work::post (release) / the target's pick-up (acquire) publishes them.
#pragma once

#include <stdint.h>

#include "hv/vm_limits.h"
#include "mmu/atomic.h"

namespace hv {

class VmRunState {
 public:
  enum class Phase : uint32_t { kIdle, kParked, kRunning, kFinished };

  // By the runner, before any vCPU of the VM starts. `deadline` is in the caller's clock
  // (TSC ticks in the kernel); 0: no time limit.
  void reset(unsigned vcpus, uint64_t time_limit_ms, uint64_t deadline) {
    vcpus_ = vcpus > kMaxVcpus ? kMaxVcpus : vcpus;
    time_limit_ms_ = time_limit_ms;
    deadline_.store(deadline, mmu::Order::relaxed);
    stop_.store(0, mmu::Order::relaxed);
    finish_.store(nullptr, mmu::Order::relaxed);
    for (unsigned i = 0; i < kMaxVcpus; i++) {
      cpu_of_[i] = 0;
      phase_[i].store(static_cast<uint32_t>(Phase::kIdle), mmu::Order::relaxed);
      wake_[i].store(0, mmu::Order::relaxed);
    }
  }
  unsigned vcpus() const { return vcpus_; }
  void place(unsigned vcpu, unsigned cpu) { cpu_of_[vcpu % kMaxVcpus] = cpu; }
  unsigned cpu_of(unsigned vcpu) const { return cpu_of_[vcpu % kMaxVcpus]; }

  // --- phases (written by the vCPU's own CPU only) ---
  void set_phase(unsigned vcpu, Phase p) {
    // Relaxed: a phase other than kFinished is informational (summaries, a future waker that
    // wants to know whether an IPI is needed); kFinished goes through mark_finished.
    phase_[vcpu % kMaxVcpus].store(static_cast<uint32_t>(p), mmu::Order::relaxed);
  }
  Phase phase(unsigned vcpu) const {
    return static_cast<Phase>(phase_[vcpu % kMaxVcpus].load(mmu::Order::relaxed));
  }
  // The vCPU is done and will not touch its state again. Release: pairs with finished().
  void mark_finished(unsigned vcpu) {
    phase_[vcpu % kMaxVcpus].store(static_cast<uint32_t>(Phase::kFinished), mmu::Order::release);
  }
  // Acquire: pairs with mark_finished(); see the header comment.
  bool finished(unsigned vcpu) const {
    return phase_[vcpu % kMaxVcpus].load(mmu::Order::acquire) == static_cast<uint32_t>(Phase::kFinished);
  }
  bool all_finished() const {
    for (unsigned i = 0; i < vcpus_; i++)
      if (!finished(i)) return false;
    return true;
  }

  // --- stop (a failure) and finish (the VM is over without one) ---
  // The first failing vCPU claims the stop: true for that one caller only. One CAS both claims
  // and names it (the word holds 1 + the index).
  bool request_stop(unsigned by_vcpu) {
    uint32_t expected = 0;
    return stop_.compare_exchange(expected, by_vcpu + 1, mmu::Order::relaxed);
  }
  // 0, or 1 + the index of the vCPU that stopped the VM.
  uint32_t stopped_by() const { return stop_.load(mmu::Order::relaxed); }
  // The VM is over without a failure (its vCPU 0 ended; later: the guest powered off): every
  // vCPU stops as passed, with `why` in its stop reason. The first request's reason is kept.
  void request_finish(const char* why) {
    const char* none = nullptr;
    finish_.compare_exchange(none, why, mmu::Order::release);
  }
  bool finish_requested() const { return finish_.load(mmu::Order::relaxed) != nullptr; }
  // The reason of the finish request, nullptr when there is none. Acquire: see above.
  const char* finish_reason() const { return finish_.load(mmu::Order::acquire); }

  // --- the time limit (hv.time-limit-ms), one for the whole VM ---
  uint64_t time_limit_ms() const { return time_limit_ms_; }
  // The deadline given to reset() (a migration target takes over its source's).
  uint64_t deadline() const { return deadline_.load(mmu::Order::relaxed); }
  bool time_is_up(uint64_t now) const {
    const uint64_t d = deadline_.load(mmu::Order::relaxed);
    return d != 0 && now >= d;
  }

  // --- wake-ups of parked vCPUs ---
  // Release: pairs with take_wake(). The caller then makes the vCPU look (an IPI).
  void post_wake(unsigned vcpu) { wake_[vcpu % kMaxVcpus].store(1, mmu::Order::release); }
  // True once per posted wake-up. Acquire: pairs with post_wake().
  bool take_wake(unsigned vcpu) { return wake_[vcpu % kMaxVcpus].exchange(0, mmu::Order::acquire) != 0; }
  // Whether a wake-up is pending, without taking it (for a parked vCPU's "may I sleep?").
  bool wake_pending(unsigned vcpu) const { return wake_[vcpu % kMaxVcpus].load(mmu::Order::relaxed) != 0; }

 private:
  unsigned vcpus_ = 1;
  uint64_t time_limit_ms_ = 0;
  unsigned cpu_of_[kMaxVcpus] = {};
  mmu::Atomic<uint64_t> deadline_{0};
  mmu::Atomic<uint32_t> stop_{0};
  mmu::Atomic<const char*> finish_{nullptr};
  mmu::Atomic<uint32_t> phase_[kMaxVcpus];
  mmu::Atomic<uint32_t> wake_[kMaxVcpus];
};

}  // namespace hv
