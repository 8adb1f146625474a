// Control-register exits: MOV to/from CR0, CR3, CR4 (and what the guest/host masks leave to hv).
#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"
#include "arch/x86/vmx/capabilities.h"
#include "hv/exit.h"
#include "hv/guest_abi.h"
#include "hv/vcpu.h"
#include "hv/vm.h"
#include "hv/guest_gpr.h"

namespace hv {

using namespace x86::vmx;

namespace {
constexpr uint8_t kGp = 13;
}  // namespace

// Only CR0.NE and CR4.VMXE are owned by the host (guest/host masks). A guest that tries to
// clear NE or set VMXE gets #GP, as VMX operation would give it on real hardware. MOV to/from
// CR3 exits only where the CPU forces CR3-load/store exiting (no TRUE_* controls): emulate it.
void handle_cr_access(Vcpu& vcpu, const ExitInfo& e) {
  const unsigned cr = e.qualification & 0xF, type = (e.qualification >> 4) & 3;
  const unsigned reg = (e.qualification >> 8) & 0xF;
  if (type == 0 && (cr == 0 || cr == 4)) {
    vcpu.inject_exception(kGp, true, 0);
    return;
  }
  if (cr == 3 && (type == 0 || type == 1)) {
    uint64_t* p = gpr(vcpu.regs, reg);
    if (type == 0) {
      vmwrite(field::kGuestCr3, p ? *p : vmread(field::kGuestRsp));
    } else {
      const uint64_t v = vmread(field::kGuestCr3);
      if (p) *p = v;
      else vmwrite(field::kGuestRsp, v);
    }
    vcpu.skip_instruction();
    return;
  }
  vcpu.stop(true, "unsupported control-register access (qualification 0x%lx)", e.qualification);
}

}  // namespace hv
