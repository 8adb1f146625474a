// EPT violations: the only way guest memory gets mapped. The exit gives the guest-physical
// address and what the access wanted (read/write/fetch, qualification bits 2:0); the MMU's
// fault path installs the leaf (4 KiB, 2 MiB or 1 GiB as the memslot allows). No explicit
// TLB flush is needed after a not-present -> present change: an EPT violation invalidates the
// cached translations for the faulting address (SDM 29.4.3.3), and the CPU does not cache
// not-present entries as usable translations.
#include "arch/x86/log.h"
#include "arch/x86/spinlock.h"
#include "arch/x86/vmx/dump.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"
#include "hv/exit.h"
#include "hv/guest_gpr.h"
#include "hv/guest_paging.h"
#include "hv/guest_walk.h"
#include "hv/trace.h"
#include "hv/emulate/execute.h"
#include "hv/emulate/translate.h"
#include "hv/vcpu.h"
#include "hv/vm.h"
#include "mmu/spte.h"

namespace hv {

using namespace x86::vmx;

// Guest accesses that no slot backs, that write a read-only slot, or that an MMIO device
// claims (hv/mmio_bus.h) - in a VM with the unbacked-memory policy (Vm::unbacked_policy; hv's own memtouch
// guest has none: any such access stops it, as its test mode "unbacked" expects). The
// instruction is emulated (hv/emulate/): a load from unbacked memory returns all ones, a store
// there or to a read-only slot is dropped, each counted (docs/hypercalls.md, "Unbacked and
// read-only memory"); a device's range goes to the device; RAM parts (the other half of a
// page-crossing access, the other operand of MOVS) go to the slot. The instruction bytes are
// fetched at CS:RIP through the guest's own page tables (hv/guest_walk.h: paging off, 32-bit,
// PAE with the PDPTEs from the VMCS, 4/5-level) and the memslots; a translation that fails
// gives the guest the #PF its CPU would raise (hv/emulate/translate.h). The walk reads the
// guest's tables as they are in memory now, while the CPU may have used a TLB entry the guest
// has not invalidated yet: then the bytes may differ from what ran, which only a guest that broke
// the architecture's rules can cause, and only that guest is affected. The exit's own
// guest-linear address translates to the exit's guest-physical address (the CPU's translation).
//
// Not emulated, the vCPU stops with a report instead (docs/guest-platform.md, section 5):
//   - an access made while the CPU delivered an event (IDT-vectoring information valid): the
//     IDT, a gate's target stack or a TSS in unbacked memory is not the instruction at RIP;
//   - an access by the guest's own page walk (qualification bit 7 set, bit 8 clear): a paging
//     structure in unbacked memory;
//   - an instruction fetch from memory that is not RAM;
//   - an instruction the emulator does not know (the report names its bytes).
namespace {

constexpr uint64_t kRepBudget = 256;  // REP iterations per exit: the handler stays bounded

void copy_from_host(uint64_t hpa, unsigned size, uint8_t* out) {
  for (unsigned k = 0; k < size; k++) out[k] = reinterpret_cast<const volatile uint8_t*>(hpa)[k];
}

// Guest memory for the emulator on a VMX vCPU (hv/emulate/guest_access.h). Called with the
// VM's MMIO bus lock held: the whole instruction is one critical section for the devices.
class VmxGuestAccess final : public emu::GuestAccess {
 public:
  VmxGuestAccess(Vcpu& vcpu, const GuestPaging& paging, const emu::TranslateHint& hint)
      : vcpu_(vcpu), vm_(vcpu.vm()), paging_(paging), hint_(hint) {}

  Translation translate(uint64_t linear, emu::AccessKind kind, unsigned cpl) override {
    return emu::translate_linear(paging_, &read_guest_paging_entry, &vm_, hint_, linear, kind, cpl);
  }
  void read_phys(uint64_t gpa, unsigned size, uint8_t* out) override {
    vm_.mmio.lock.assert_held();
    if (const uint64_t hpa = vm_.mmu().translate(gpa, size, false)) {
      copy_from_host(hpa, size, out);
      return;
    }
    uint64_t lv = 0;
    if (vm_.lapic_mmio.relocated_access(vcpu_, gpa, size, false, &lv)) {  // a moved xAPIC page (vlapic_mmio.h)
      for (unsigned k = 0; k < size; k++) out[k] = static_cast<uint8_t>(lv >> (8 * k));
      return;
    }
    if (const int region = vm_.mmio.find(gpa, size); region >= 0) {
      const uint64_t v = vm_.mmio.read(vcpu_, region, gpa, size);
      for (unsigned k = 0; k < size; k++) out[k] = static_cast<uint8_t>(v >> (8 * k));
      return;
    }
    for (unsigned k = 0; k < size; k++) out[k] = 0xFF;  // an empty bus
    vcpu_.counters().unbacked_reads++;
  }
  void write_phys(uint64_t gpa, unsigned size, const uint8_t* in) override {
    vm_.mmio.lock.assert_held();
    if (const uint64_t hpa = vm_.mmu().translate(gpa, size, true)) {
      for (unsigned k = 0; k < size; k++) reinterpret_cast<volatile uint8_t*>(hpa)[k] = in[k];
      vm_.mmu().note_write(gpa, size);  // hv wrote for the guest: dirty logging sees it
      return;
    }
    if (vm_.mmu().translate(gpa, size, false)) {  // a read-only slot: like ROM
      vcpu_.counters().readonly_writes++;
      return;
    }
    uint64_t v = 0;
    for (unsigned k = 0; k < size; k++) v |= static_cast<uint64_t>(in[k]) << (8 * k);
    if (vm_.lapic_mmio.relocated_access(vcpu_, gpa, size, true, &v)) return;  // a moved xAPIC page
    if (const int region = vm_.mmio.find(gpa, size); region >= 0) {
      vm_.mmio.write(vcpu_, region, gpa, size, v);
      return;
    }
    vcpu_.counters().unbacked_writes++;
  }
  bool fetch_phys(uint64_t gpa, unsigned size, uint8_t* out) override {
    const uint64_t hpa = vm_.mmu().translate(gpa, size, false);
    if (!hpa) return false;
    copy_from_host(hpa, size, out);
    return true;
  }

 private:
  Vcpu& vcpu_;  // whose instruction this is (per-vCPU devices: the local APIC)
  Vm& vm_;
  const GuestPaging& paging_;
  const emu::TranslateHint& hint_;
};

emu::CpuState cpu_state() {
  emu::CpuState c;
  const uint64_t cs_ar = vmread(field::kGuestCsAr);
  const bool lma = (vmread(field::kGuestEfer) >> 10) & 1;
  if (lma && ((cs_ar >> 13) & 1)) c.mode = emu::Mode::k64;        // CS.L
  else if ((cs_ar >> 14) & 1) c.mode = emu::Mode::k32;            // CS.D
  else c.mode = emu::Mode::k16;                                   // 16-bit protected or real mode
  const uint32_t bases[6] = {field::kGuestEsBase, field::kGuestCsBase, field::kGuestSsBase,
                             field::kGuestDsBase, field::kGuestFsBase, field::kGuestGsBase};
  for (unsigned i = 0; i < 6; i++) c.seg_base[i] = vmread(bases[i]);
  c.cpl = (vmread(field::kGuestSsAr) >> 5) & 3;  // SS.DPL is the CPL
  return c;
}

const char* access_text(unsigned access) {
  return access & mmu::spte::kAccExec ? "x" : access & mmu::spte::kAccWrite ? "w" : "r";
}

// Completes the access per the policy above. False when the vCPU was stopped instead.
bool emulate_access(Vcpu& vcpu, const ExitInfo& e, uint64_t gpa, unsigned access, const char* what) {
  Vm& vm = vcpu.vm();
  const uint64_t rip = vmread(field::kGuestRip);
  const uint32_t vectoring = static_cast<uint32_t>(vmread(field::kIdtVectoringInfo));
  if (vectoring & (1u << 31)) {
    vcpu.stop(true, "event delivery (vector %u) accessed %s guest-physical 0x%lx (%s) at rip 0x%lx", vectoring & 0xFF, what,
              gpa, access_text(access), rip);
    return false;
  }
  if ((e.qualification & ept_qual::kLinearValid) && !(e.qualification & ept_qual::kFinalTranslation)) {
    vcpu.stop(true, "the guest's page walk for linear 0x%lx accessed %s guest-physical 0x%lx (a paging-structure entry) at rip 0x%lx",
              vmread(field::kGuestLinearAddress), what, gpa, rip);
    return false;
  }
  if (!vm.unbacked_policy || (access & mmu::spte::kAccExec)) {
    vcpu.stop(true, "guest accessed %s guest-physical address 0x%lx (%s) at rip 0x%lx", what, gpa, access_text(access), rip);
    return false;
  }
  const GuestPaging paging = current_guest_paging(vm);
  emu::TranslateHint hint;
  if (e.qualification & ept_qual::kLinearValid) {
    hint.valid = true;
    hint.linear = vmread(field::kGuestLinearAddress);
    hint.gpa = gpa;
  }
  const emu::CpuState cpu = cpu_state();
  emu::Regs r;
  for (unsigned i = 0; i < 16; i++) {
    const uint64_t* g = gpr(vcpu.regs, i);
    r.gpr[i] = g ? *g : vmread(field::kGuestRsp);
  }
  r.rip = rip;
  r.rflags = vmread(field::kGuestRflags);
  VmxGuestAccess mem(vcpu, paging, hint);
  emu::Result res;
  {
    x86::SpinLockGuard guard(vm.mmio.lock);
    res = emu::emulate(cpu, r, mem, kRepBudget);
  }
  if (res.status == emu::Result::Status::refused || res.status == emu::Result::Status::stop) {
    char bytes[48];
    emu::format_bytes(res.bytes, res.nbytes, bytes, sizeof bytes);
    if (res.status == emu::Result::Status::refused) {
      vcpu.stop(true, "cannot emulate %s at rip 0x%lx: %s (access to %s guest-physical 0x%lx)", res.nbytes ? bytes : "(no bytes)",
                rip, emu::to_string(res.decode), what, gpa);
    } else {
      vcpu.stop(true, "cannot emulate the access to %s guest-physical 0x%lx at rip 0x%lx (linear 0x%lx): %s", what, gpa, rip,
                res.fault.linear, res.fault.why);
    }
    return false;
  }
  // The registers as the CPU leaves them: after the instruction (done), or where a fault leaves
  // them (nothing changed, or a REP instruction's completed iterations).
  for (unsigned i = 0; i < 16; i++) {
    if (uint64_t* g = gpr(vcpu.regs, i)) *g = r.gpr[i];
    else vmwrite(field::kGuestRsp, r.gpr[i]);
  }
  if (res.status == emu::Result::Status::fault) {
    if (res.fault.kind == emu::Fault::Kind::page_fault) vcpu.inject_page_fault(res.fault.linear, res.fault.error_code);
    else vcpu.inject_exception(res.fault.vector, res.fault.has_error, res.fault.error_code);
    return true;
  }
  constexpr uint64_t kRf = 1ull << 16;  // a completed instruction clears RF, as on the CPU
  vmwrite(field::kGuestRflags, r.rflags & ~kRf);
  // The instruction completed (a REP string instruction may stop early and leave RIP on
  // itself, to be re-executed for the rest): RIP moves past it, the STI/MOV-SS shadow ends,
  // and with RFLAGS.TF the single-step #DB follows, as for any instruction hv completes.
  if (r.rip != rip) vcpu.complete_instruction(r.rip);
  return true;
}

// A fault that found no page for a table (mmu::FaultOutcome::out_of_memory: the VM's page
// limit, hv/pt_limit.h, or hv's memory): before the VM is stopped, reclaim and retry. First
// the reclaim hook (GuestMmu::reclaim: what the VM holds without using it, invalid roots
// waiting for teardown and pages waiting for the epoch) and one retry at once; if the pages
// are still on their way, the guest resumes without the mapping and faults again after its
// next safe point, which runs more deferred work (and the other CPUs' grace periods advance).
// That is retried for at most kOomRetries consecutive faults of this vCPU. The VM is stopped
// only when nothing is left to reclaim or the retries are used up: a guest that maps more than
// its limit allows (guest-ptlimit) stops at once; one whose limit is taken by roots it
// invalidated itself (fast zaps) waits for their teardown instead.
constexpr unsigned kReclaimBudget = GuestMmu::kReclaimBudget;
constexpr unsigned kOomRetries = GuestMmu::kReclaimRetries;

mmu::FaultOutcome map_with_reclaim(Vcpu& vcpu, uint64_t gpa, unsigned access) {
  Vm& vm = vcpu.vm();
  mmu::FaultOutcome r = vm.mmu().map(vcpu.index(), gpa >> 12, access);
  if (r != mmu::FaultOutcome::out_of_memory) {
    vcpu.oom_streak = 0;
    return r;
  }
  const bool more_coming = vm.mmu().reclaim(kReclaimBudget);
  r = vm.mmu().map(vcpu.index(), gpa >> 12, access);
  if (r != mmu::FaultOutcome::out_of_memory) {
    vcpu.oom_streak = 0;
    return r;
  }
  if (more_coming && vcpu.oom_streak < kOomRetries) {
    vcpu.oom_streak++;
    vcpu.counters().oom_retries++;
    return mmu::FaultOutcome::retry;  // back to the guest: it faults again after a safe point
  }
  return r;
}

}  // namespace

// An access the CPU reported without an EPT violation (an APIC-access exit, hv/apicv.cpp):
// the same emulation, without a linear-address hint (the emulator walks the guest's tables).
bool emulate_device_access(Vcpu& vcpu, uint64_t gpa, unsigned access, const char* what) {
  ExitInfo none{};
  return emulate_access(vcpu, none, gpa, access, what);
}

void handle_ept_violation(Vcpu& vcpu, const ExitInfo& e) {
  Vm& vm = vcpu.vm();
  const uint64_t gpa = vmread(field::kGuestPhysicalAddress);
  unsigned access = 0;
  if (e.qualification & ept_qual::kRead) access |= mmu::spte::kAccRead;
  if (e.qualification & ept_qual::kWrite) access |= mmu::spte::kAccWrite;
  if (e.qualification & ept_qual::kFetch) access |= mmu::spte::kAccExec;
  using F = mmu::FaultOutcome;
  const uint64_t t0 = trace::on(trace::kCatFault) ? x86::rdtsc() : 0;
  const F outcome = map_with_reclaim(vcpu, gpa, access);
  if (t0) {
    const uint64_t dt = x86::rdtsc() - t0;
    trace::record(trace::kFault, vm.id(), static_cast<uint8_t>(vcpu.index()), t0, gpa,
                  (dt & 0xFFFFFFFFu) | (static_cast<uint64_t>(outcome) << 32) |
                      (static_cast<uint64_t>((access & mmu::spte::kAccWrite) != 0) << 48));
  }
  switch (outcome) {
    case F::fixed:
    case F::spurious:
      // A leaf installed (or already there): nothing the safe point looks at changed, and what
      // the fault may have left for it (tables retired to the epoch) waits at most a tick
      // (hv/fast_entry.h). The next entry may be a fast one.
      vcpu.quiet_exit();
      return;
    case F::retry:
      return;
    case F::unbacked:
    case F::bad_gfn:
      emulate_access(vcpu, e, gpa, access, "unbacked");
      return;
    case F::write_protected:
      emulate_access(vcpu, e, gpa, access, "read-only");
      return;
    case F::out_of_memory: {
      // The VM's page-table limit (counted by the MMU: mmu/page_account.h) or hv's memory, and
      // reclaim did not help: only this VM stops; what it holds is freed when hv destroys it.
      const mmu::MmuStats q = vm.mmu().stats();
      if (q.table_pages_limit && q.table_pages_refused) {
        x86::log::error("vm%u: out of page-table pages (limit %lu): vcpu%u stopped at gpa 0x%lx, the VM is stopped; "
                        "%lu live, %lu invalid root(s), %lu page(s) awaiting reclaim, %u retries after reclaim",
                        vm.id(), q.table_pages_limit, vcpu.index(), gpa, q.table_pages_live, q.roots_invalid,
                        q.pages_awaiting_reclaim, vcpu.oom_streak);
        vcpu.stop(true, "out of page-table pages (limit %lu) at gpa 0x%lx", q.table_pages_limit, gpa);
      } else {
        vcpu.stop(true, "out of memory for EPT tables (gpa 0x%lx)", gpa);
      }
      return;
    }
    case F::kCount: break;
  }
  vcpu.stop(true, "unexpected fault outcome at gpa 0x%lx", gpa);
}

void handle_ept_misconfig(Vcpu& vcpu, const ExitInfo&) {
  // Only MMIO markers are deliberately misconfigured, and hv installs none yet.
  dump_vmcs("EPT misconfiguration");
  vcpu.stop(true, "EPT misconfiguration at gpa 0x%lx", vmread(field::kGuestPhysicalAddress));
}

}  // namespace hv
