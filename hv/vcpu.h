// A virtual CPU: its VMCS, the guest registers that the VMCS does not hold, and the run loop.
//
// A vCPU runs on the physical CPU that created it (its VMCS is current there); run() loops
// "safe point -> VM entry -> VM exit -> dispatch" until a handler stops it. Stopping is how
// every guest-caused problem ends (unknown exit, failed entry, triple fault, unbacked memory):
// the vCPU records why and returns; hv itself keeps going.
#pragma once

#include <stdint.h>

#include "arch/x86/vmx/capabilities.h"
#include "arch/x86/vmx/guest_regs.h"

namespace hv {

class Vm;

struct VcpuStart {
  uint64_t rip;
  uint64_t rsp;
  uint64_t rbx;  // handed to the guest (memtouch: the size of its RAM)
  uint64_t rsi;  // handed to the guest (memtouch: its mode, guest_abi.h)
  uint64_t time_budget_us;  // the vCPU is stopped when it ran longer than this (0: no limit)
};

class Vcpu {
 public:
  // Allocates and fills the VMCS on the calling CPU. nullptr or why not.
  const char* init(Vm& vm, unsigned index, const vmx::Capabilities& caps, const VcpuStart& start);
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
  const vmx::Capabilities& caps() const { return *caps_; }
  vmx::GuestRegs regs = {};
  uint64_t exits = 0;

 private:
  const char* setup_vmcs(const VcpuStart& start);
  bool before_entry();
  void sync_ia32e_mode();

  Vm* vm_ = nullptr;
  const vmx::Capabilities* caps_ = nullptr;
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
  char stop_reason_[200] = {};
};

}  // namespace hv
