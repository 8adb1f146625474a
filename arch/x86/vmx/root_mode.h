// Entering and leaving VMX root operation on the calling CPU.
//
// enter_root_mode() (SDM Vol. 3C, 24.7-24.8): sets and locks IA32_FEATURE_CONTROL if the
// firmware left it unlocked, brings CR0 and CR4 in line with the IA32_VMX_CR*_FIXED MSRs
// (which includes CR4.VMXE), allocates this CPU's VMXON region (4 KiB, zeroed, the revision
// identifier in its first dword) and executes VMXON. leave_root_mode() executes VMXOFF,
// clears CR4.VMXE and frees the region. Both run on the CPU they are about; per-CPU state is
// indexed by x86::cpu_index().
#pragma once

#include <stdint.h>

#include "arch/x86/vmx/capabilities.h"

namespace x86::vmx {

// nullptr on success, else why VMXON did not happen.
const char* enter_root_mode(const Capabilities& caps);
// No-op when this CPU is not in VMX root mode. Any current VMCS must have been VMCLEARed.
void leave_root_mode();
bool in_root_mode();
// Number of CPUs currently in VMX root mode.
unsigned cpus_in_root_mode();

}  // namespace x86::vmx
