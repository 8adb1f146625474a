// A virtual CPU: its VMCS, the guest registers that the VMCS does not hold, and the run loop.
//
// A vCPU runs on the physical CPU that created it (its VMCS is current there; vCPU i of a VM
// is pinned to CPU i); run() loops "safe point -> VM entry -> VM exit -> dispatch" until a
// handler stops it. Stopping is how every guest-caused problem ends (unknown exit, failed
// entry, triple fault, unbacked memory, time limit): the vCPU records why and returns; hv
// itself keeps going. A vCPU that stops with a failure stops its VM: the other vCPUs are
// asked (VmRun, plus an IPI that makes them exit) and stop at their next safe point.
#pragma once

#include <stdint.h>

#include "arch/x86/vmx/capabilities.h"
#include "arch/x86/vmx/guest_regs.h"
#include "hv/exit_timing.h"

namespace hv {

class Vm;

// What the vCPUs of one VM share while they run: the stop request.
struct VmRun {
  static constexpr unsigned kMaxVcpus = 4;
  unsigned vcpus = 1;
  unsigned cpu_of[kMaxVcpus] = {};  // physical CPU of each vCPU (for the stop IPI)
  uint32_t stop_requested = 0;      // 0, or 1 + the index of the first vCPU that failed (CAS)
  // Set when the VM is over without a failure (a multiboot guest's vCPU 0 exited): the other
  // vCPUs stop, as passed, at their next safe point (hv/guest_run.cpp).
  uint32_t finish_requested = 0;
};

struct VcpuStart {
  uint64_t rip;
  uint64_t rsp;
  uint64_t rbx;  // handed to the guest (memtouch: the size of its RAM)
  uint64_t rsi;  // handed to the guest (memtouch: its mode, guest_abi.h)
  uint64_t time_budget_us;  // the vCPU is stopped when it ran longer than this (0: no limit)
  uint64_t rdx = 0;  // handed to the guest (memtouch: its vCPU index)
  uint64_t rcx = 1;  // handed to the guest (memtouch: the VM's vCPU count)
  uint64_t rdi = 0;  // handed to the guest (memtouch: base of its 1 GiB slot, 0 if none)
  VmRun* run = nullptr;              // shared with the VM's other vCPUs (may be null)
  bool corrupt_guest_state = false;  // hv.test=bad-guest-state: VM entry must fail
  bool fast_zap_at_hlt = false;      // vCPU 0's first HLT invalidates every EPT root
  // Start with RFLAGS.IF = 1. No interrupt reaches the guest either way (external-interrupt
  // exiting sends them all to hv), but Bochs 2.7 only re-evaluates its interrupt mask when IF
  // changes at VM entry, before it considers the guest in VMX non-root mode: a guest entered
  // with IF = 0 from a host with IF = 0 never gets an external-interrupt exit there, and only
  // the VMX preemption timer ends its slices (the same happens, in Bochs, after the guest
  // executes CLI). Off for guests whose entry state says IF = 0.
  bool interrupts_enabled = false;
};

// Per-vCPU counters (the VM's VmStats sums all vCPUs).
struct VcpuStats {
  uint64_t exits = 0;
  uint64_t ept_violations = 0;
  uint64_t external_interrupts = 0;  // ticks and IPIs that ended a guest slice
  uint64_t preemption_timer = 0;
  uint64_t root_switches = 0;        // fresh EPT roots loaded (fast zaps)
  uint64_t entry_retries = 0;        // a flush request came in just before VM entry
  uint64_t guest_tsc = 0;
  uint64_t host_tsc = 0;
};

class Vcpu {
 public:
  // Allocates and fills the VMCS on the calling CPU. nullptr or why not.
  const char* init(Vm& vm, unsigned index, const x86::vmx::Capabilities& caps, const VcpuStart& start);
  // Runs until stopped. Returns true when the guest ended normally (it reported a result).
  bool run();
  // VMCLEAR and free the VMCS (on the CPU that ran it).
  void release();

  // --- used by exit handlers ---
  void stop(bool failure, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
  bool stopped() const { return stopped_; }
  bool failed() const { return failed_; }
  const char* stop_reason() const { return stop_reason_; }
  // Skip the instruction that caused the exit (VM-exit instruction length).
  void skip_instruction();
  // Inject a hardware exception at the next entry (vector, optional error code).
  void inject_exception(uint8_t vector, bool has_error_code, uint32_t error_code);

  Vm& vm() { return *vm_; }
  unsigned index() const { return index_; }
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
  x86::vmx::GuestRegs regs = {};
  uint64_t exits = 0;

 private:
  const char* setup_vmcs(const VcpuStart& start);
  bool before_entry();
  void sync_ia32e_mode();
  void request_vm_stop();

  Vm* vm_ = nullptr;
  const x86::vmx::Capabilities* caps_ = nullptr;
  unsigned index_ = 0;
  unsigned cpu_ = 0;
  uint64_t vmcs_pa_ = 0;
  uint64_t eptp_ = 0;
  uint16_t vpid_ = 0;
  bool launched_ = false;
  bool stopped_ = false;
  bool failed_ = false;
  uint64_t budget_tsc_ = 0;
  uint64_t start_tsc_ = 0;
  VmRun* run_ = nullptr;
  bool fast_zap_at_hlt_ = false;
  VcpuStats stats_;
  ExitTiming timing_;  // exit-to-entry cost by reason, printed when run() returns
  char stop_reason_[200] = {};
};

}  // namespace hv
