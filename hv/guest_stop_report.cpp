// The report of an abnormal guest stop (see guest_stop_report.h).
#include "hv/guest_stop_report.h"

#include "arch/x86/log.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"
#include "arch/x86/vmx/vmcs_fields.h"
#include "hv/vcpu.h"
#include "hv/vm.h"

namespace hv {

namespace {

uint64_t rd(uint32_t f) {
  uint64_t v = 0;
  if (x86::vmx::vmread(f, v) != x86::vmx::Status::kOk) return ~0ull;
  return v;
}

const char* mode_of(uint64_t cr0, uint64_t efer, uint64_t cs_ar) {
  constexpr uint64_t kPe = 1, kPg = 1ull << 31, kLma = 1u << 10;
  if (!(cr0 & kPe)) return "real mode";
  if ((efer & kLma) && (cs_ar & x86::vmx::ar::kL)) return "64-bit mode";
  if (efer & kLma) return "compatibility mode";
  return (cr0 & kPg) ? "32-bit protected mode, paging" : "32-bit protected mode, no paging";
}

}  // namespace

void print_guest_stop_report(Vcpu& vcpu) {
  using namespace x86::vmx::field;
  const unsigned vm = vcpu.vm().id(), i = vcpu.index();
  const x86::vmx::GuestRegs& r = vcpu.regs;
  x86::log::error("vm%u: vcpu%u stopped: %s", vm, i, vcpu.stop_reason());
  const uint64_t cr0 = rd(kGuestCr0), efer = rd(kGuestEfer), cs_ar = rd(kGuestCsAr);
  x86::log::error("vm%u: vcpu%u: rip %016lx rsp %016lx rflags %08lx, %s", vm, i, rd(kGuestRip), rd(kGuestRsp),
                  rd(kGuestRflags), mode_of(cr0, efer, cs_ar));
  x86::log::error("vm%u: vcpu%u: rax %016lx rbx %016lx rcx %016lx rdx %016lx", vm, i, r.rax, r.rbx, r.rcx, r.rdx);
  x86::log::error("vm%u: vcpu%u: rsi %016lx rdi %016lx rbp %016lx r8  %016lx", vm, i, r.rsi, r.rdi, r.rbp, r.r8);
  x86::log::error("vm%u: vcpu%u: r9  %016lx r10 %016lx r11 %016lx r12 %016lx", vm, i, r.r9, r.r10, r.r11, r.r12);
  x86::log::error("vm%u: vcpu%u: r13 %016lx r14 %016lx r15 %016lx", vm, i, r.r13, r.r14, r.r15);
  x86::log::error("vm%u: vcpu%u: cr0 %08lx cr2 %016lx cr3 %016lx cr4 %08lx efer %lx", vm, i, cr0, r.cr2, rd(kGuestCr3),
                  rd(kGuestCr4), efer);
  x86::log::error("vm%u: vcpu%u: cs %04lx (ar %05lx) ss %04lx ds %04lx, gdtr %lx/%lx idtr %lx/%lx", vm, i, rd(kGuestCsSel),
                  cs_ar, rd(kGuestSsSel), rd(kGuestDsSel), rd(kGuestGdtrBase), rd(kGuestGdtrLimit), rd(kGuestIdtrBase),
                  rd(kGuestIdtrLimit));
  const uint64_t reason = rd(kExitReason);
  x86::log::error("vm%u: vcpu%u: last exit %s (reason %lu%s), qualification %lx, linear %lx, physical %lx", vm, i,
                  x86::vmx::exit_reason_name(static_cast<unsigned>(reason & 0xFFFF)), reason & 0xFFFF,
                  (reason >> 31) & 1 ? ", entry failure" : "", rd(kExitQualification), rd(kGuestLinearAddress),
                  rd(kGuestPhysicalAddress));
  x86::log::error("vm%u: vcpu%u: exit interruption %08lx, idt vectoring %08lx, interruptibility %lx, activity %lx", vm, i,
                  rd(kExitInterruptionInfo), rd(kIdtVectoringInfo), rd(kGuestInterruptibility), rd(kGuestActivityState));
  vcpu.vm().uart.print_last_lines();
}

}  // namespace hv
