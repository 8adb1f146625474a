// EPT violations: the only way guest memory gets mapped. The exit gives the guest-physical
// address and what the access wanted (read/write/fetch, qualification bits 2:0); the MMU's
// fault path installs the leaf (4 KiB, 2 MiB or 1 GiB as the memslot allows). No explicit
// TLB flush is needed after a not-present -> present change: an EPT violation invalidates the
// cached translations for the faulting address (SDM 29.4.3.3), and the CPU does not cache
// not-present entries as usable translations.
#include "arch/x86/vmx/dump.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"
#include "hv/exit.h"
#include "hv/vcpu.h"
#include "hv/vm.h"
#include "mmu/spte.h"

namespace hv {

using namespace vmx;

void handle_ept_violation(Vcpu& vcpu, const ExitInfo& e) {
  Vm& vm = vcpu.vm();
  vm.stats().ept_violations++;
  const uint64_t gpa = vmread(field::kGuestPhysicalAddress);
  unsigned access = 0;
  if (e.qualification & ept_qual::kRead) access |= mmu::spte::kAccRead;
  if (e.qualification & ept_qual::kWrite) access |= mmu::spte::kAccWrite;
  if (e.qualification & ept_qual::kFetch) access |= mmu::spte::kAccExec;
  const MapResult r = vm.mmu().map(vcpu.index(), gpa >> 12, access);
  vm.stats().map_results[static_cast<unsigned>(r)]++;
  switch (r) {
    case MapResult::kFixed:
    case MapResult::kSpurious:
    case MapResult::kRetry:
      return;
    case MapResult::kUnbacked:
    case MapResult::kBadGfn:
      // No device model yet: an access outside guest RAM ends the guest, with the evidence.
      vcpu.stop(true, "guest accessed unbacked guest-physical address 0x%lx (%s%s%s) at rip 0x%lx", gpa,
                access & mmu::spte::kAccRead ? "r" : "", access & mmu::spte::kAccWrite ? "w" : "",
                access & mmu::spte::kAccExec ? "x" : "", vmread(field::kGuestRip));
      return;
    case MapResult::kWriteProtected:
      vcpu.stop(true, "guest wrote to read-only guest-physical address 0x%lx", gpa);
      return;
    case MapResult::kOutOfMemory:
      vcpu.stop(true, "out of memory for EPT tables (gpa 0x%lx)", gpa);
      return;
  }
}

void handle_ept_misconfig(Vcpu& vcpu, const ExitInfo&) {
  // Only MMIO markers are deliberately misconfigured, and hv installs none yet.
  dump_vmcs("EPT misconfiguration");
  vcpu.stop(true, "EPT misconfiguration at gpa 0x%lx", vmread(field::kGuestPhysicalAddress));
}

}  // namespace hv
