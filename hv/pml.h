// Page-modification logging (PML) for hv.dirty=pml: one 4 KiB log per vCPU, the drain at every
// VM exit, the "page-modification log full" exit (reason 62), and the Platform's
// drain_dirty_logs() that the MMU calls at the start of a pml harvest (mmu/dirty_log.cpp).
//
// The CPU side (Intel SDM Vol. 3C, "Page-Modification Logging"): with the secondary control
// "enable PML" (bit 17) and EPT A/D on, whenever the CPU sets the D bit of an EPT leaf (0 -> 1)
// it writes the guest-physical address of the write (bits 11:0 clear) to entry `PML index` of
// the page at `PML address` and decrements the index (511 down to 0; after entry 0 it wraps to
// 0xFFFF). A write that would log while the index is outside 0..511 causes a VM exit with basic
// reason 62 instead, before the write happens; the guest retries it after the entry.
//
// The argument that no write is lost is at the top of pml.cpp.
#pragma once

#include <stdint.h>

namespace hv {

class Vcpu;
struct ExitInfo;

// A vCPU's log and its counters (Vcpu::pml). page_pa == 0: PML off for this vCPU.
struct VcpuPml {
  static constexpr unsigned kEntries = 512;
  static constexpr uint16_t kFirstIndex = kEntries - 1;  // the index of an empty log
  uint64_t page_pa = 0;
  uint64_t entries = 0;     // GPAs drained from the log (each a page the guest dirtied)
  uint64_t full_exits = 0;  // exit 62 "page-modification log full"
  uint64_t drains = 0;      // exits that found the log non-empty
};

// Whether vCPUs get PML: hv.dirty=pml and the CPU offers it (hv/dirty_log.cpp decides).
bool pml_enabled();
// setup_vmcs (the vCPU's VMCS is current): allocate the log, write the PML address and index.
// The caller has put "enable PML" into the secondary controls. nullptr or why not.
const char* pml_setup(Vcpu& vcpu);
// Right after every VM exit, on the vCPU's CPU, before it publishes "outside guest mode"
// (hv/cpu_work.h): move the log's entries into the VM's dirty logs and reset the index.
// One VMREAD when the log is empty; nothing when PML is off.
void pml_drain(Vcpu& vcpu);
// Exit 62: the drain already ran (above); re-block NMIs if the full log interrupted an IRET.
void handle_pml_full(Vcpu& vcpu, const ExitInfo& exit);
// The vCPU's line for the report ("pml: N entries, M log-full exits, D drains") and the free.
void pml_report(const Vcpu& vcpu);
void pml_release(Vcpu& vcpu);
// mmu::Platform::drain_dirty_logs for the kernel: returns when every PML entry that any vCPU
// of VM `tlb_tag` logged before the call has been drained (see pml.cpp).
void pml_drain_all(uint64_t tlb_tag);

}  // namespace hv
