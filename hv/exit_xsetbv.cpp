// XSETBV exits (XSETBV always exits in VMX non-root operation): the guest's XCR0.
//
// The checks are the instruction's (SDM Vol. 2C "XSETBV", hv/cr_rules.h for the value): #UD
// when CR4.OSXSAVE is clear (the CPU raises that one itself, before the exit, but a VMM can't
// rely on the ordering of every implementation), #GP(0) at CPL > 0, for ECX != 0 (XCR0 is the
// only writable XCR) and for an XCR0 the vCPU cannot have. A valid value becomes Vcpu::xcr0,
// which the run loop loads before every entry (hv/vcpu.cpp, arch/x86/xsave.h). The guest's
// XGETBV runs natively (it does not exit) and reads the XCR0 loaded at entry.
#include "arch/x86/vmx/instructions.h"
#include "hv/cr_rules.h"
#include "hv/event_inject.h"
#include "hv/exit.h"
#include "hv/vcpu.h"

namespace hv {

using namespace x86::vmx;

void handle_xsetbv(Vcpu& vcpu, const ExitInfo&) {
  if (!vcpu.features().xsave || !(vcpu.visible_cr4() & cr::kCr4Osxsave)) {
    vcpu.inject_exception(event::kUd, false, 0);
    return;
  }
  const unsigned cpl = (vmread(field::kGuestSsAr) >> 5) & 3;
  const uint32_t index = static_cast<uint32_t>(vcpu.regs.rcx);
  const uint64_t value = (vcpu.regs.rdx & 0xFFFFFFFFu) << 32 | (vcpu.regs.rax & 0xFFFFFFFFu);
  if (cpl != 0 || index != 0 || cr::xcr0_write_faults(value, vcpu.features().xcr0_mask)) {
    vcpu.inject_exception(event::kGp, true, 0);
    return;
  }
  vcpu.xcr0 = value;
  vcpu.skip_instruction();
}

}  // namespace hv
