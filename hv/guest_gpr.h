// The guest's general registers by number, as instruction encodings (ModR/M reg and rm, REX
// extensions) and exit qualifications number them: 0 RAX, 1 RCX, 2 RDX, 3 RBX, 4 RSP, 5 RBP,
// 6 RSI, 7 RDI, 8-15 R8-R15 (SDM Vol. 2, table "Register Codes"; Vol. 3C, table "Exit
// Qualification for Control-Register Accesses").
#pragma once

#include <stdint.h>

#include "arch/x86/vmx/guest_regs.h"

namespace hv {

// RSP is not in GuestRegs: the VMCS holds it (guest RSP), so it is nullptr here and callers
// read or write it there.
inline uint64_t* gpr(x86::vmx::GuestRegs& r, unsigned n) {
  uint64_t* const table[16] = {&r.rax, &r.rcx, &r.rdx, &r.rbx, nullptr, &r.rbp, &r.rsi, &r.rdi,
                               &r.r8,  &r.r9,  &r.r10, &r.r11, &r.r12,  &r.r13, &r.r14, &r.r15};
  return table[n & 15];
}

}  // namespace hv
