// Wrappers for the VMX instructions, each reporting how it ended.
//
// VMX instructions signal their outcome in RFLAGS (SDM Vol. 3C, 31.2 "Conventions"):
//   VMsucceed       CF = 0, ZF = 0
//   VMfailInvalid   CF = 1            (no current VMCS, or no VMX operation to report through)
//   VMfailValid     ZF = 1            (the reason is in the VM-instruction error field)
// The wrappers read both flags with asm flag outputs, so no caller can forget to check them.
// VMLAUNCH/VMRESUME are not here: they live in entry.asm, which saves the guest's registers.
#pragma once

#include <stdint.h>

#include "arch/x86/vmx/vmcs_fields.h"

namespace x86::vmx {

enum class Status : uint8_t { kOk = 0, kFailInvalid = 1, kFailValid = 2 };

inline Status status_from_flags(bool cf, bool zf) {
  return cf ? Status::kFailInvalid : (zf ? Status::kFailValid : Status::kOk);
}

// VMXON/VMCLEAR/VMPTRLD take a memory operand that holds the physical address.
inline Status vmxon(uint64_t region_pa) {
  bool cf, zf;
  asm volatile("vmxon %2" : "=@ccc"(cf), "=@ccz"(zf) : "m"(region_pa) : "memory");
  return status_from_flags(cf, zf);
}
inline Status vmxoff() {
  bool cf, zf;
  asm volatile("vmxoff" : "=@ccc"(cf), "=@ccz"(zf)::"memory");
  return status_from_flags(cf, zf);
}
inline Status vmclear(uint64_t vmcs_pa) {
  bool cf, zf;
  asm volatile("vmclear %2" : "=@ccc"(cf), "=@ccz"(zf) : "m"(vmcs_pa) : "memory");
  return status_from_flags(cf, zf);
}
inline Status vmptrld(uint64_t vmcs_pa) {
  bool cf, zf;
  asm volatile("vmptrld %2" : "=@ccc"(cf), "=@ccz"(zf) : "m"(vmcs_pa) : "memory");
  return status_from_flags(cf, zf);
}
inline Status vmwrite(uint32_t field, uint64_t value) {
  bool cf, zf;
  asm volatile("vmwrite %3, %2" : "=@ccc"(cf), "=@ccz"(zf) : "r"(uint64_t{field}), "r"(value) : "memory");
  return status_from_flags(cf, zf);
}
inline Status vmread(uint32_t field, uint64_t& value) {
  bool cf, zf;
  asm volatile("vmread %3, %2" : "=@ccc"(cf), "=@ccz"(zf), "=r"(value) : "r"(uint64_t{field}) : "memory");
  return status_from_flags(cf, zf);
}
// For dumps and exit information: 0 when the field can't be read (the dump marks it).
// VMREAD writes its destination only when it succeeds (SDM Vol. 3C, "VMREAD", Operation), so
// starting from 0 gives that without testing the flags: two instructions where the checked
// form takes seven, and the exit path reads a dozen fields. No "memory" clobber: VMREAD
// reads only the current VMCS, which C++ code never touches, and volatile asm statements
// (VMWRITE, VMPTRLD, VM entry) keep their order among themselves.
inline uint64_t vmread(uint32_t field) {
  uint64_t v = 0;
  asm volatile("vmread %1, %0" : "+r"(v) : "r"(uint64_t{field}));
  return v;
}

// The VM-instruction error of the last VMfailValid (SDM 31.4 "VM Instruction Error Numbers").
inline uint32_t instruction_error() { return static_cast<uint32_t>(vmread(field::kInstructionError)); }
const char* instruction_error_name(uint32_t error);

// INVEPT / INVVPID take a type in a register and a 128-bit descriptor in memory.
struct alignas(16) InveptDescriptor {
  uint64_t eptp;
  uint64_t reserved;
};
struct alignas(16) InvvpidDescriptor {
  uint64_t vpid;  // bits 15:0; the rest must be zero
  uint64_t linear_address;
};
inline Status invept_raw(uint64_t type, const InveptDescriptor& d) {
  bool cf, zf;
  asm volatile("invept %2, %3" : "=@ccc"(cf), "=@ccz"(zf) : "m"(d), "r"(type) : "memory");
  return status_from_flags(cf, zf);
}
inline Status invvpid_raw(uint64_t type, const InvvpidDescriptor& d) {
  bool cf, zf;
  asm volatile("invvpid %2, %3" : "=@ccc"(cf), "=@ccz"(zf) : "m"(d), "r"(type) : "memory");
  return status_from_flags(cf, zf);
}

}  // namespace x86::vmx
