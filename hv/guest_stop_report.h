// What hv prints when a guest that hv did not write (Linux) stops abnormally: a triple fault,
// an hv-side failure (an exit it can't complete, a failed entry), the time limit. Without it
// such a stop is one line ("vcpu0: guest triple fault ...") and a guess. Printed by the vCPU's
// own CPU right after its run loop ends, while its VMCS is still current:
//   - the vCPU's general registers, RIP/RSP/RFLAGS, CR0/CR2/CR3/CR4/EFER, CS/SS and the mode;
//   - the exit that ended the run (reason, qualification, linear and physical address,
//     interruption and IDT-vectoring information, interruptibility and activity state);
//   - the guest's last console lines (hv/devices/uart.h keeps the last few).
// The exit statistics follow in the VM's summary (hv/vm_report.h), as for every VM.
// Enabled per VM (Vm::report_guest_state; hv/guest_run.cpp sets it for Linux guests), so the
// boot scenarios of hv's own guests keep their output.
#pragma once

namespace hv {

class Vcpu;

// Prints the report for `vcpu` (its VMCS must be current on this CPU).
void print_guest_stop_report(Vcpu& vcpu);

}  // namespace hv
