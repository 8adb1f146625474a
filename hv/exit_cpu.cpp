// Instruction exits: CPUID, HLT, RDMSR/WRMSR, control-register accesses, VMCALL, and the
// instructions that are skipped or refused.
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
constexpr uint8_t kUd = 6, kGp = 13;
constexpr uint64_t kEferSce = 1u << 0, kEferLme = 1u << 8, kEferLma = 1u << 10, kEferNxe = 1u << 11;

uint32_t sig(unsigned i) {
  const char* s = guest_abi::kSignature;
  return static_cast<uint32_t>(s[4 * i]) | static_cast<uint32_t>(s[4 * i + 1]) << 8 |
         static_cast<uint32_t>(s[4 * i + 2]) << 16 | static_cast<uint32_t>(s[4 * i + 3]) << 24;
}
}  // namespace

void handle_cpuid(Vcpu& vcpu, const ExitInfo&) {
  x86::vmx::GuestRegs& r = vcpu.regs;
  const uint32_t leaf = static_cast<uint32_t>(r.rax), sub = static_cast<uint32_t>(r.rcx);
  x86::CpuidResult c{};
  if (leaf == guest_abi::kHypervisorLeaf) {
    c = {guest_abi::kHypervisorLeaf, sig(0), sig(1), sig(2)};
  } else if ((leaf & 0xF0000000) == 0x40000000) {
    c = {};
  } else {
    c = x86::cpuid(leaf, sub);
    if (leaf == 1) {
      c.ecx &= ~(1u << 5);   // no nested VMX
      c.ecx &= ~(1u << 15);  // no PDCM: IA32_PERF_CAPABILITIES is not offered (RDMSR gives #GP)
      c.ecx |= 1u << 31;     // "running under a hypervisor"
    } else if (leaf == 0xA) {
      // No virtual PMU (architectural performance monitoring version 0, no counters): what
      // handle_rdpmc enforces, stated where a guest looks first.
      c = {};
    }
  }
  r.rax = c.eax;
  r.rbx = c.ebx;
  r.rcx = c.ecx;
  r.rdx = c.edx;
  vcpu.skip_instruction();
}

// Nothing can wake a halted guest yet (no virtual interrupts), so HLT is a no-op that the
// statistics count; a guest that wants to stop reports through its result port.
//
// With several vCPUs, vCPU 0's first HLT is also where hv invalidates every EPT root of the
// VM (a fast zap, as a memslot-wide change would): the other vCPUs are in the guest at that
// moment, so the teardown of the old root (queued on this CPU's deferred work, run in bounded
// steps before our next entries) needs remote flushes answered by CPUs in guest mode, and
// every vCPU must switch to a fresh root and fault its memory in again.
void handle_hlt(Vcpu& vcpu, const ExitInfo&) {
  if (vcpu.take_fast_zap()) {
    vcpu.vm().mmu().invalidate_all_roots(false);
    x86::log::info("vm%u: vcpu%u's HLT: every EPT root invalidated (fast zap), teardown deferred", vcpu.vm().id(),
              vcpu.index());
  }
  vcpu.skip_instruction();
}

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

// RDPMC would read the host's performance counters (whatever hv or an earlier guest on this
// CPU counted: a side channel), so it always exits. hv has no virtual PMU, so every counter
// number is invalid, and for an invalid ECX the SDM's RDPMC raises #GP(0); that is what the
// guest gets. (At CPL > 0 with CR4.PCE clear the CPU raises that #GP itself, before the exit:
// faults based on privilege level have priority over VM exits.) CPUID says the same: leaf 0xA
// reports no performance monitoring (handle_cpuid), so a guest that looks first does not try.
void handle_rdpmc(Vcpu& vcpu, const ExitInfo&) { vcpu.inject_exception(kGp, true, 0); }

// The general register numbered as in exit qualifications (SDM table "Exit Qualification for
// Control-Register Accesses": 0 RAX, 1 RCX, 2 RDX, 3 RBX, 4 RSP, 5 RBP, 6 RSI, 7 RDI, 8-15 R8-R15).
// RSP lives in the VMCS, so it is read and written there.
uint64_t* gpr(x86::vmx::GuestRegs& r, unsigned n) {
  uint64_t* const table[16] = {&r.rax, &r.rcx, &r.rdx, &r.rbx, nullptr, &r.rbp, &r.rsi, &r.rdi,
                               &r.r8,  &r.r9,  &r.r10, &r.r11, &r.r12,  &r.r13, &r.r14, &r.r15};
  return table[n & 15];
}

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

void handle_skip(Vcpu& vcpu, const ExitInfo&) { vcpu.skip_instruction(); }

void handle_undefined(Vcpu& vcpu, const ExitInfo&) { vcpu.inject_exception(kUd, false, 0); }

}  // namespace hv
