// VM-exit dispatch: one handler per basic exit reason, in a table (hv/exit_dispatch.cpp).
//
// A handler either lets the guest continue (it fixed the cause, emulated the instruction and
// skipped it, or injected an exception) or stops the vCPU with Vcpu::stop(). Unknown reasons
// stop the vCPU with a report and a VMCS dump; nothing a guest does reaches the host's panic.
#pragma once

#include <stdint.h>

namespace hv {

class Vcpu;

struct ExitInfo {
  uint32_t reason;  // full exit-reason field
  uint16_t basic;   // bits 15:0
  uint64_t qualification;
};

using ExitHandler = void (*)(Vcpu& vcpu, const ExitInfo& exit);

// Counts the exit and runs its handler. `exit` is what the run loop read of the current VMCS
// (the exit reason and qualification: read once per exit, not once per consumer).
void dispatch_exit(Vcpu& vcpu, const ExitInfo& exit);

// Handlers (one file per family).
void handle_ept_violation(Vcpu& vcpu, const ExitInfo& exit);   // exit_ept.cpp
void handle_ept_misconfig(Vcpu& vcpu, const ExitInfo& exit);   // exit_ept.cpp
// The instruction at RIP accessed device memory at `gpa` (mmu::spte::kAcc* bits in `access`):
// emulated as for an EPT violation there (exit_ept.cpp). False when the vCPU was stopped.
bool emulate_device_access(Vcpu& vcpu, uint64_t gpa, unsigned access, const char* what);
void handle_io(Vcpu& vcpu, const ExitInfo& exit);              // exit_io.cpp
void handle_cpuid(Vcpu& vcpu, const ExitInfo& exit);           // exit_cpuid.cpp
void handle_hlt(Vcpu& vcpu, const ExitInfo& exit);             // exit_cpu.cpp
void handle_rdmsr(Vcpu& vcpu, const ExitInfo& exit);           // exit_msr.cpp
void handle_wrmsr(Vcpu& vcpu, const ExitInfo& exit);           // exit_msr.cpp
void handle_rdpmc(Vcpu& vcpu, const ExitInfo& exit);           // exit_cpu.cpp (#GP: no virtual PMU)
void handle_cr_access(Vcpu& vcpu, const ExitInfo& exit);       // exit_cr.cpp
void handle_xsetbv(Vcpu& vcpu, const ExitInfo& exit);          // exit_xsetbv.cpp
void handle_skip(Vcpu& vcpu, const ExitInfo& exit);            // exit_cpu.cpp (INVD, WBINVD, PAUSE)
void handle_undefined(Vcpu& vcpu, const ExitInfo& exit);       // exit_cpu.cpp (#UD: VMX insns)
void handle_external_interrupt(Vcpu& vcpu, const ExitInfo& exit);  // exit_events.cpp
void handle_exception_or_nmi(Vcpu& vcpu, const ExitInfo& exit);    // exit_events.cpp
void handle_preemption_timer(Vcpu& vcpu, const ExitInfo& exit);    // exit_events.cpp
void handle_interrupt_window(Vcpu& vcpu, const ExitInfo& exit);    // exit_events.cpp
void handle_nmi_window(Vcpu& vcpu, const ExitInfo& exit);          // exit_events.cpp
void handle_sipi(Vcpu& vcpu, const ExitInfo& exit);                // exit_events.cpp
void handle_fatal(Vcpu& vcpu, const ExitInfo& exit);               // exit_events.cpp
void handle_unknown(Vcpu& vcpu, const ExitInfo& exit);             // exit_dispatch.cpp

}  // namespace hv
