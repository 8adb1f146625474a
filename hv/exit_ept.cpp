// EPT violations: the only way guest memory gets mapped. The exit gives the guest-physical
// address and what the access wanted (read/write/fetch, qualification bits 2:0); the MMU's
// fault path installs the leaf (4 KiB, 2 MiB or 1 GiB as the memslot allows). No explicit
// TLB flush is needed after a not-present -> present change: an EPT violation invalidates the
// cached translations for the faulting address (SDM 29.4.3.3), and the CPU does not cache
// not-present entries as usable translations.
#include "arch/x86/log.h"
#include "arch/x86/vmx/dump.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"
#include "hv/exit.h"
#include "hv/guest_gpr.h"
#include "hv/guest_walk.h"
#include "hv/insn_decode.h"
#include "hv/vcpu.h"
#include "hv/vm.h"
#include "mmu/spte.h"

namespace hv {

using namespace x86::vmx;

// Policy for guest accesses that no slot backs, or that write a read-only slot
// (docs/hypercalls.md, "Unbacked and read-only memory"): a load returns all ones, a store is
// dropped, each is counted, and the guest continues after the instruction - like reads of an
// empty bus and writes to ROM. hv completes the instruction by decoding it (insn_decode.h);
// that needs the instruction bytes, which it reads through the memslots after translating
// CS:RIP with the guest's own paging state (guest_walk.h: paging off, 32-bit, PAE, 4/5-level),
// so 32-bit code works with paging on too and may reach any guest-physical address up to
// MAXPHYADDR. Any other case - 64-bit code, an instruction the decoder refuses, RIP that the
// walker cannot translate, an instruction fetch - stops the vCPU with a report. The walk reads
// the guest's tables as they are in memory now, while the CPU may have fetched through a TLB
// entry the guest has not invalidated yet: then the bytes may differ from what ran, which only
// a guest that broke the architecture's rules can cause, and the check of the decoded direction
// against the exit's below catches most of it; either way only that guest is affected.
namespace {

// A guest page-table entry read for the walker: only from the VM's RAM slots, the whole entry
// inside one slot (GuestMmu::translate checks the bounds).
bool read_guest_entry(void* ctx, uint64_t gpa, unsigned size, uint64_t* value) {
  const uint64_t hpa = static_cast<Vm*>(ctx)->mmu().translate(gpa, size, false);
  if (!hpa) return false;
  *value = size == 8 ? *reinterpret_cast<const volatile uint64_t*>(hpa) : *reinterpret_cast<const volatile uint32_t*>(hpa);
  return true;
}

GuestPaging guest_paging(Vm& vm) {
  GuestPaging p;
  p.cr0 = vmread(field::kGuestCr0);
  p.cr3 = vmread(field::kGuestCr3);
  p.cr4 = vmread(field::kGuestCr4);
  p.efer = vmread(field::kGuestEfer);
  p.maxphyaddr = vm.mmu().guest_phys_bits();
  // With EPT, a VM exit saves the PDPTEs the CPU uses for PAE paging in the VMCS (guest
  // PDPTE0-3, encodings 0x280A + 2n); they are what the guest's fetch used.
  constexpr uint64_t kPg = 1ull << 31, kPae = 1ull << 5, kLma = 1ull << 10;
  if ((p.cr0 & kPg) && (p.cr4 & kPae) && !(p.efer & kLma)) {
    for (unsigned i = 0; i < 4; i++) p.pdpte[i] = vmread(field::kGuestPdpte0 + 2 * i);
    p.pdptes_valid = true;
  }
  return p;
}

// Reads up to 15 instruction bytes at CS:RIP (32-bit code: 32-bit linear addresses) through
// the guest's page tables and the memslots. Returns how many it got; 0 with *why set when even
// the first byte cannot be translated.
unsigned fetch_insn(Vm& vm, uint8_t* buf, uint64_t* lin_out, WalkStatus* why) {
  const uint64_t lin = (vmread(field::kGuestCsBase) + vmread(field::kGuestRip)) & 0xFFFFFFFFull;
  *lin_out = lin;
  const GuestPaging paging = guest_paging(vm);
  WalkResult w;
  unsigned n = 0;
  for (; n < 15; n++) {
    const uint64_t at = (lin + n) & 0xFFFFFFFFull;
    // Walk again where the instruction crosses into another page (or on the first byte).
    if (n == 0 || (at & 0xFFF) == 0) {
      w = guest_walk(paging, at, &read_guest_entry, &vm);
      if (w.status != WalkStatus::ok) {
        if (n == 0) *why = w.status;
        break;
      }
      w.gpa -= n;  // so that w.gpa + n below is the byte's address
    }
    const uint64_t hpa = vm.mmu().translate(w.gpa + n, 1, false);
    if (!hpa) break;
    buf[n] = *reinterpret_cast<const volatile uint8_t*>(hpa);
  }
  return n;
}

// True when the access was completed per the policy above.
bool emulate_dropped_access(Vcpu& vcpu, bool write_protected, unsigned access) {
  if (access & mmu::spte::kAccExec) return false;
  if (!((vmread(field::kGuestCsAr) >> 14) & 1)) return false;  // CS.D = 0: 16-bit or 64-bit code
  uint8_t bytes[15];
  uint64_t lin = 0;
  WalkStatus why = WalkStatus::ok;
  const unsigned n = fetch_insn(vcpu.vm(), bytes, &lin, &why);
  if (n == 0 && why != WalkStatus::ok) {
    x86::log::error("vm%u: vcpu%u: cannot read the instruction at linear 0x%lx: guest page walk: %s", vcpu.vm().id(), vcpu.index(),
               lin, to_string(why));
  }
  MemInsn m;
  if (!decode_mov32(bytes, n, &m)) return false;
  // The exit says whether the access was a write; the decoder must agree, else the bytes
  // were changed under us (another vCPU) or the instruction is not what it seems.
  if (m.store != ((access & mmu::spte::kAccWrite) != 0)) return false;
  VmStats& st = vcpu.vm().stats();
  if (m.store) {
    if (write_protected) st.readonly_writes++;
    else st.unbacked_writes++;
  } else {
    if (write_protected) return false;  // a read can't hit write protection
    st.unbacked_reads++;
    // ESP (reg 4 without high8) lives in the VMCS; AH..BH name registers 0-3.
    if (uint64_t* reg = gpr(vcpu.regs, m.reg)) {
      *reg = all_ones_load(m, *reg);
    } else {
      vmwrite(field::kGuestRsp, all_ones_load(m, vmread(field::kGuestRsp)));
    }
  }
  vmwrite(field::kGuestRip, (vmread(field::kGuestRip) + m.length) & 0xFFFFFFFFull);
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
    vm.stats().oom_retries++;
    return mmu::FaultOutcome::retry;  // back to the guest: it faults again after a safe point
  }
  return r;
}

}  // namespace

void handle_ept_violation(Vcpu& vcpu, const ExitInfo& e) {
  Vm& vm = vcpu.vm();
  vm.stats().ept_violations++;
  const uint64_t gpa = vmread(field::kGuestPhysicalAddress);
  unsigned access = 0;
  if (e.qualification & ept_qual::kRead) access |= mmu::spte::kAccRead;
  if (e.qualification & ept_qual::kWrite) access |= mmu::spte::kAccWrite;
  if (e.qualification & ept_qual::kFetch) access |= mmu::spte::kAccExec;
  using F = mmu::FaultOutcome;
  switch (map_with_reclaim(vcpu, gpa, access)) {
    case F::fixed:
    case F::spurious:
    case F::retry:
      return;
    case F::unbacked:
    case F::bad_gfn:
      if (emulate_dropped_access(vcpu, false, access)) return;
      vcpu.stop(true, "guest accessed unbacked guest-physical address 0x%lx (%s%s%s) at rip 0x%lx", gpa,
                access & mmu::spte::kAccRead ? "r" : "", access & mmu::spte::kAccWrite ? "w" : "",
                access & mmu::spte::kAccExec ? "x" : "", vmread(field::kGuestRip));
      return;
    case F::write_protected:
      if (emulate_dropped_access(vcpu, true, access)) return;
      vcpu.stop(true, "guest wrote to read-only guest-physical address 0x%lx", gpa);
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
