// Page-modification logging (see pml.h).
//
// Why no write is lost with hv.dirty=pml (the MMU's half is at the top of mmu/dirty_log.cpp):
//
// (P1) Every 0 -> 1 of a 4 KiB leaf's D bit in a logged slot is logged. Software never sets D
//      in a leaf (mmu/fault.cpp keeps an old D on an upgrade, and a split that hands a D down
//      to 512 children reports the whole huge leaf instead), so every 0 -> 1 is the CPU's, on a
//      vCPU whose VMCS has "enable PML" (every vCPU, when the mode is pml): the CPU writes the
//      GPA to the log as part of setting D, or takes exit 62 before the write if the log is
//      full (then D stays clear and the guest retries the write after the drain).
// (P2) A vCPU drains its log right after every VM exit, before cpu_work::exit_guest_mode()
//      publishes "outside guest mode" (a release store), so when a CPU is seen outside guest
//      mode, or in a later guest-mode session, every entry its vCPU logged earlier is already
//      a bit in the slot's bitmap (dirty_log_mark_gpa, through GuestMmu::note_write).
// (P3) pml_drain_all(tag) = cpu_work::flush_ept(tag): for every CPU that it sees in guest mode
//      for this VM, it IPIs (an external-interrupt exit) and waits until that CPU has left
//      that guest-mode session (or has served the request, which it does only outside guest
//      mode, after the exit's drain); CPUs seen outside guest mode, or running another VM,
//      have drained their entries of this VM already (P2). The Dekker pairing of cpu_work.h
//      (seq_cst request vs the target's seq_cst enter) makes "seen outside" safe, and the
//      release of exit_guest_mode() pairs with the requester's seq_cst (acquire) load of
//      guest_state, so the marks are visible to the harvest once the drain returns. Hence:
//      every entry logged before pml_drain_all() was called is a bit when it returns.
// (P4) The harvest (mmu/dirty_log.cpp) then takes the words, then clears D in every leaf (after
//      the take, like write protection's W: a page reported by this harvest has its D cleared
//      after the report), then flushes.
//
// So: a D bit cleared by harvest H -> the next write to that page walks (H's flush removed every
// TLB entry that knew D) and sets D -> (P1) logged in that vCPU's log -> (P2, P3) a bit before
// the next harvest's drain returns, or earlier at an exit of that vCPU -> taken by the next
// harvest whose take follows the mark, whose D pass (after its take) clears that D again. A
// write through a TLB entry that still knew D is covered by the entry that set that D: the
// harvest that reports it clears that D after its take and flushes before it returns, so the
// write came before that harvest returned (the argument with t0 in mmu/dirty_log.cpp). A vCPU
// that stops drained at its last exit (P2), so nothing waits in the log of a stopped vCPU.
//
// Cost: one VMREAD of the PML index per exit; a drain only when the log has entries. The log is
// not drained per request (no per-vCPU "drain now" message): the exit the IPI forces is the safe
// point, as KVM does it (it flushes the PML buffer on every exit too).
#include "hv/pml.h"

#include "arch/x86/log.h"
#include "arch/x86/pmm.h"
#include "arch/x86/vmx/instructions.h"
#include "arch/x86/vmx/vmcs_fields.h"
#include "hv/cpu_work.h"
#include "hv/dirty_log.h"
#include "hv/exit.h"
#include "hv/mmu_platform.h"
#include "hv/vcpu.h"
#include "hv/vm.h"
#include "mmu/epoch.h"

namespace hv {

using namespace x86::vmx;

static_assert(VcpuPml::kEntries * sizeof(uint64_t) == 4096, "the PML log is one 4 KiB page of 512 GPAs");

bool pml_enabled() { return dirty_log_mode() == mmu::DirtyMode::pml; }

const char* pml_setup(Vcpu& vcpu) {
  VcpuPml& p = vcpu.pml;
  if (p.page_pa == 0) {
    p.page_pa = x86::pmm::alloc_4k(true);
    if (p.page_pa == 0) return "out of memory for the vCPU's page-modification log";
  }
  p.entries = p.full_exits = p.drains = 0;
  vmwrite(field::kPmlAddress, p.page_pa);
  vmwrite(field::kPmlIndex, VcpuPml::kFirstIndex);
  return nullptr;
}

void pml_drain(Vcpu& vcpu) {
  VcpuPml& p = vcpu.pml;
  if (p.page_pa == 0) return;
  const uint16_t index = static_cast<uint16_t>(vmread(field::kPmlIndex));
  if (index == VcpuPml::kFirstIndex) return;
  // The CPU filled entries index+1 .. 511 (after entry 0 the index wraps to 0xFFFF: all 512).
  // Any other value out of range would be a CPU bug; take the whole page then (over-reporting
  // is harmless: a GPA outside every logged slot is ignored).
  const unsigned first = index < VcpuPml::kEntries ? index + 1u : 0u;
  const auto* log = reinterpret_cast<const volatile uint64_t*>(p.page_pa);  // identity-mapped
  GuestMmu& mmu = vcpu.vm().mmu();
  // With hv.dirty-ring the vCPU (the ring's producer, on its own CPU) pushes each page too.
  mmu::DirtyRing* const ring = vcpu.dring.ring;
  // This CPU is still in guest mode for cpu_work (run() drains before exit_guest_mode()), so a
  // fence request does not wait for it (hv/cpu_work.h, "Fence requests"): the epoch sections
  // of the marks below need a fence of their own. One outer section for the whole drain.
  mmu::Epoch& e = epoch();
  const unsigned cpu = x86::cpu_index();
  e.read_lock_fenced(cpu);
  for (unsigned i = first; i < VcpuPml::kEntries; i++) mmu.note_guest_write(log[i] & ~uint64_t{0xFFF}, ring);
  e.read_unlock(cpu);
  p.entries += VcpuPml::kEntries - first;
  p.drains++;
  vmwrite(field::kPmlIndex, VcpuPml::kFirstIndex);
}

void handle_pml_full(Vcpu& vcpu, const ExitInfo& exit) {
  vcpu.pml.full_exits++;
  // Exit qualification bit 12 ("NMI unblocking due to IRET"): the full log interrupted an IRET
  // that had unblocked (virtual) NMIs; the IRET is retried, so blocking must be back in place.
  // Undefined when the exit also reports an event being delivered (IDT-vectoring valid).
  const bool vectoring = (vmread(field::kIdtVectoringInfo) >> 31) & 1;
  if ((exit.qualification & (uint64_t{1} << 12)) && !vectoring) {
    constexpr uint64_t kBlockingByNmi = 1u << 3;
    vmwrite(field::kGuestInterruptibility, vmread(field::kGuestInterruptibility) | kBlockingByNmi);
  }
  // Nothing else: run() drained the log after this exit (pml_drain) before dispatching it, and
  // the guest re-executes the write that found the log full.
}

void pml_report(const Vcpu& vcpu) {
  const VcpuPml& p = vcpu.pml;
  // After release (a migrated source's vCPU reports late) the log is gone, the counts are not.
  if (p.page_pa == 0 && p.entries == 0 && p.drains == 0) return;
  Vcpu& v = const_cast<Vcpu&>(vcpu);
  x86::log::info("vm%u vcpu%u: pml: %lu entries, %lu log-full exits, %lu drains", v.vm().id(), v.index(),
                 p.entries, p.full_exits, p.drains);
}

void pml_release(Vcpu& vcpu) {
  VcpuPml& p = vcpu.pml;
  if (p.page_pa == 0) return;
  x86::pmm::free_4k(p.page_pa);
  p.page_pa = 0;
}

void pml_drain_all(uint64_t tlb_tag) { cpu_work::flush_ept(tlb_tag); }

}  // namespace hv
