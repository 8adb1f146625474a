// RDMSR/WRMSR exits: the guest's model-specific registers (the MSR policy).
#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"
#include "arch/x86/vmx/capabilities.h"
#include "hv/exit.h"
#include "hv/guest_abi.h"
#include "hv/vcpu.h"
#include "hv/vm.h"

namespace hv {

using namespace x86::vmx;

namespace {
constexpr uint8_t kGp = 13;
constexpr uint64_t kEferSce = 1u << 0, kEferLme = 1u << 8, kEferLma = 1u << 10, kEferNxe = 1u << 11;
}  // namespace

void handle_rdmsr(Vcpu& vcpu, const ExitInfo&) {
  x86::vmx::GuestRegs& r = vcpu.regs;
  const uint32_t index = static_cast<uint32_t>(r.rcx);
  if (index != msr::kEfer) {
    vcpu.inject_exception(kGp, true, 0);
    return;
  }
  const uint64_t v = vmread(field::kGuestEfer);
  r.rax = static_cast<uint32_t>(v);
  r.rdx = v >> 32;
  vcpu.skip_instruction();
}

void handle_wrmsr(Vcpu& vcpu, const ExitInfo&) {
  x86::vmx::GuestRegs& r = vcpu.regs;
  const uint32_t index = static_cast<uint32_t>(r.rcx);
  const uint64_t v = (r.rdx << 32) | static_cast<uint32_t>(r.rax);
  // Only EFER, and only its SCE/LME/NXE bits; LMA is the CPU's. Anything else is #GP, as a
  // CPU does for an MSR it does not have.
  if (index != msr::kEfer || (v & ~(kEferSce | kEferLme | kEferLma | kEferNxe))) {
    vcpu.inject_exception(kGp, true, 0);
    return;
  }
  const uint64_t cur = vmread(field::kGuestEfer);
  vmwrite(field::kGuestEfer, (v & (kEferSce | kEferLme | kEferNxe)) | (cur & kEferLma));
  vcpu.skip_instruction();
}

}  // namespace hv
