// The guest's general-purpose registers while the host runs, and the assembly entry point.
//
// The VMCS holds the guest's RSP, RIP and RFLAGS but none of the other general registers, nor
// CR2 (SDM 27.3: VM exits save neither). entry.asm keeps them here: it loads every one of
// them right before VMLAUNCH/VMRESUME and stores every one right after the VM exit, before
// any host code can clobber them. Offsets are fixed: entry.asm uses them as constants.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace x86::vmx {

struct GuestRegs {
  uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp;
  uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
  uint64_t cr2;
};
static_assert(offsetof(GuestRegs, rax) == 0x00);
static_assert(offsetof(GuestRegs, rbp) == 0x30);
static_assert(offsetof(GuestRegs, r8) == 0x38);
static_assert(offsetof(GuestRegs, r15) == 0x70);
static_assert(offsetof(GuestRegs, cr2) == 0x78);

// How vmx_enter() ended.
enum EnterResult : int {
  kEnterExited = 0,       // the guest ran and a VM exit brought us back
  kEnterFailInvalid = 1,  // VMLAUNCH/VMRESUME failed with VMfailInvalid (no current VMCS)
  kEnterFailValid = 2,    // VMfailValid: see the VM-instruction error field
  kEnterHostRspFail = 3,  // the VMWRITE of the host RSP failed
};

extern "C" {
// Runs the guest of the current VMCS until its next VM exit. `launched` selects VMRESUME
// (the VMCS was launched before) or VMLAUNCH. The host RIP field must point at vmx_exit_point;
// the host RSP field is written here (it is this very stack frame).
int vmx_enter(GuestRegs* regs, int launched);
// Where the CPU resumes the host after a VM exit (the host RIP field).
void vmx_exit_point();
}

}  // namespace x86::vmx
