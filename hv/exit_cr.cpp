// Control-register exits: MOV to/from CR0, CR3, CR4, CR8, CLTS and LMSW.
//
// Ownership (the guest/host masks, set in hv/vmcs_setup.cpp by cr_masks()): the guest owns
// every CR0 and CR4 bit it may change except
//   CR0: NE (the real bit must stay 1 in VMX operation: the guest's NE lives in the read
//        shadow) and any other bit IA32_VMX_CR0_FIXED0/1 pin (PE and PG are free with
//        unrestricted guest);
//   CR4: VMXE (real 1, reads 0), SMXE, OSXSAVE when the vCPU has no XSAVE, and every bit the
//        CPU lacks (IA32_VMX_CR4_FIXED1): a guest that sets one of them gets #GP(0), as from a
//        CPU without the feature (CPUID hides VMX and SMX).
// A MOV to CR0/CR4 exits only when it changes a host-owned bit against its shadow; hv then
// performs the whole write with the SDM's checks (hv/cr_rules.h) and the mode changes the CPU
// would make (EFER.LMA, the PAE PDPTEs, the TLB flush). CR3 exits only where the CPU forces
// CR3-load/store exiting (no TRUE_* controls); CR8 always exits (see Vcpu::cr8).
#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/vmx/capabilities.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"
#include "arch/x86/vmx/invalidate.h"
#include "hv/cr_rules.h"
#include "hv/event_inject.h"
#include "hv/exit.h"
#include "hv/guest_gpr.h"
#include "hv/vcpu.h"
#include "hv/vm.h"

namespace hv {

using namespace x86::vmx;

namespace {

bool in_64bit_mode() {
  return (vmread(field::kGuestEfer) & cr::kEferLma) && (vmread(field::kGuestCsAr) & ar::kL);
}

cr::GuestCrState guest_cr_state(const Vcpu& vcpu) {
  cr::GuestCrState s;
  s.cr0 = vcpu.visible_cr0();
  s.cr3 = vmread(field::kGuestCr3);
  s.cr4 = vcpu.visible_cr4();
  s.efer = vmread(field::kGuestEfer);
  s.cs_l = (vmread(field::kGuestCsAr) & ar::kL) != 0;
  return s;
}

uint64_t read_gpr(Vcpu& vcpu, unsigned reg) {
  const uint64_t* p = gpr(vcpu.regs, reg);
  return p ? *p : vmread(field::kGuestRsp);
}

void write_gpr(Vcpu& vcpu, unsigned reg, uint64_t v) {
  if (uint64_t* p = gpr(vcpu.regs, reg)) *p = v;
  else vmwrite(field::kGuestRsp, v);
}

// PAE paging outside IA-32e mode: the CPU loads the four PDPTEs when CR0/CR4 writes (or CR3
// loads) enter or change it; with EPT, VM entry takes them from the VMCS, so an emulated write
// loads them there. A PDPTE with a reserved bit, or a PDPT outside the guest's RAM (which reads
// as all ones on a PC, and all ones has reserved bits), makes the write raise #GP(0).
bool load_pdptes(Vcpu& vcpu, uint64_t cr3) {
  const uint64_t hpa = vcpu.vm().mmu().translate(cr3 & 0xFFFFFFE0u, 32, false);
  if (!hpa) return false;
  uint64_t pdpte[4];
  for (unsigned i = 0; i < 4; i++) pdpte[i] = reinterpret_cast<const volatile uint64_t*>(hpa)[i];
  const unsigned maxphy = vcpu.vm().mmu().guest_phys_bits();
  for (uint64_t e : pdpte)
    if (cr::pdpte_reserved(e, maxphy)) return false;
  for (unsigned i = 0; i < 4; i++) vmwrite(field::kGuestPdpte0 + 2 * i, pdpte[i]);
  return true;
}

// With VPID the guest's translations survive VM exits and entries, so a CR write that the CPU
// would have followed with a TLB flush (paging mode changes) and that hv performed instead needs
// an explicit one. Without VPID every entry and exit flushes anyway.
void flush_guest_tlb(const Vcpu& vcpu) {
  if (vcpu.caps().vpid) invvpid_context(vcpu.caps(), static_cast<uint16_t>(vmread(field::kVpid)));
}

// The real CR0 for a guest value: the bits VMX pins (NE, whatever else FIXED0 holds; not PE or
// PG, which unrestricted guest frees) forced on, the ones FIXED1 forbids off.
uint64_t real_cr0(const Capabilities& c, uint64_t value) {
  return (value | cr::kCr0Ne | (c.cr0_fixed0 & ~(cr::kCr0Pe | cr::kCr0Pg))) & (c.cr0_fixed1 | 0xFFFFFFFF00000000ull);
}

void mov_to_cr0(Vcpu& vcpu, uint64_t value) {
  const cr::GuestCrState s = guest_cr_state(vcpu);
  // Reserved bits in 31:0 are ignored by the CPU (bits 63:32 are checked).
  value = cr::cr0_written(value & (cr::kCr0Defined | 0xFFFFFFFF00000000ull));
  if (cr::cr0_write_faults(s, value)) {
    vcpu.inject_exception(event::kGp, true, 0);
    return;
  }
  const uint64_t efer = cr::efer_after_cr0_write(s.efer, s.cr0, value);
  if (cr::pae_pdptes_reload(s.cr0, value, s.cr4, s.efer) && !load_pdptes(vcpu, s.cr3)) {
    vcpu.inject_exception(event::kGp, true, 0);
    return;
  }
  vmwrite(field::kGuestCr0, real_cr0(vcpu.caps(), value));
  vmwrite(field::kCr0ReadShadow, value);
  // EFER.LMA follows CR0.PG as on the CPU; the "IA-32e mode guest" entry control follows LMA
  // after the handler (Vcpu::sync_ia32e_mode).
  if (efer != s.efer) vmwrite(field::kGuestEfer, efer);
  if ((s.cr0 ^ value) & (cr::kCr0Pg | cr::kCr0Pe | cr::kCr0Wp | cr::kCr0Cd)) flush_guest_tlb(vcpu);
  vcpu.skip_instruction();
}

void mov_to_cr4(Vcpu& vcpu, uint64_t value) {
  const cr::GuestCrState s = guest_cr_state(vcpu);
  const uint64_t owned = vmread(field::kCr4GuestHostMask);
  // Allowed: what the CPU has, minus the bits hv owns (all of which read 0 to the guest).
  const uint64_t allowed = vcpu.caps().cr4_fixed1 & ~owned;
  if (cr::cr4_write_faults(s, value, allowed)) {
    vcpu.inject_exception(event::kGp, true, 0);
    return;
  }
  // Only reachable if a host-owned bit could legally change; none can today (every owned bit
  // is one the guest must not set), but the write is completed properly anyway.
  const bool pae_mode = (s.cr0 & cr::kCr0Pg) && (value & cr::kCr4Pae) && !(s.efer & cr::kEferLma);
  if (pae_mode && value != s.cr4 && !load_pdptes(vcpu, s.cr3)) {
    vcpu.inject_exception(event::kGp, true, 0);
    return;
  }
  const Capabilities& c = vcpu.caps();
  vmwrite(field::kGuestCr4, (value | c.cr4_fixed0) & c.cr4_fixed1);
  vmwrite(field::kCr4ReadShadow, value & owned);
  flush_guest_tlb(vcpu);
  vcpu.skip_instruction();
}

}  // namespace

void handle_cr_access(Vcpu& vcpu, const ExitInfo& e) {
  const unsigned cr = e.qualification & 0xF, type = (e.qualification >> 4) & 3;
  const unsigned reg = (e.qualification >> 8) & 0xF;
  const bool long64 = in_64bit_mode();
  switch (type) {
    case 0: {  // MOV to CR
      uint64_t value = read_gpr(vcpu, reg);
      if (!long64) value &= 0xFFFFFFFFu;  // outside 64-bit mode the source is 32 bits
      switch (cr) {
        case 0: mov_to_cr0(vcpu, value); return;
        case 4: mov_to_cr4(vcpu, value); return;
        case 3:
          vmwrite(field::kGuestCr3, value);
          vcpu.skip_instruction();
          return;
        case 8:
          // Bits 63:4 of CR8 are reserved (#GP(0)); CR8 exists only in 64-bit mode.
          if (value >> 4) {
            vcpu.inject_exception(event::kGp, true, 0);
            return;
          }
          vcpu.vm().lapic[vcpu.index()].set_tpr(static_cast<uint8_t>(value << 4));  // CR8 = TPR[7:4]
          vcpu.skip_instruction();
          return;
        default: break;
      }
      break;
    }
    case 1:  // MOV from CR (CR0 and CR4 reads never exit: the read shadows answer them)
      if (cr == 3 || cr == 8) {
        write_gpr(vcpu, reg, cr == 3 ? vmread(field::kGuestCr3) : vcpu.vm().lapic[vcpu.index()].tpr() >> 4);
        vcpu.skip_instruction();
        return;
      }
      break;
    case 2:  // CLTS: exits only if TS were host-owned (it is not); done right anyway
      mov_to_cr0(vcpu, vcpu.visible_cr0() & ~cr::kCr0Ts);
      return;
    case 3: {  // LMSW: loads MP, EM, TS and can set, never clear, PE
      const uint64_t src = (e.qualification >> 16) & 0xF, old = vcpu.visible_cr0();
      mov_to_cr0(vcpu, (old & ~uint64_t{0xE}) | (src & 0xE) | ((old | src) & cr::kCr0Pe));
      return;
    }
  }
  vcpu.stop(true, "unsupported control-register access (qualification 0x%lx)", e.qualification);
}

}  // namespace hv
