// Dirty logging as hv offers it to guests: the per-machine choice of mechanism (hv.dirty=) and
// the hypercalls HV_CALL_DIRTY_LOG_START/STOP/HARVEST (docs/hypercalls.md "Dirty logging").
// The logging itself is the MMU's (mmu/dirty_log.h, docs/mmu.md §11).
#pragma once

#include <stdint.h>

#include "arch/x86/vmx/capabilities.h"
#include "mmu/dirty_log.h"
#include "mmu/dirty_ring.h"

namespace hv {

class Vcpu;

// Decide the mechanism once, at boot, from hv.dirty=wp|ad|pml and the CPU: the default is the
// best the CPU offers among what hv implements (ad with EPT A/D bits, else wp); ad without
// EPT A/D falls back to wp, and pml without the CPU's PML (or without EPT A/D) to ad or wp.
// pml is never the default (ad costs no exits at all). Prints the choice and why. hv/pml.h runs PML.
void dirty_log_init(const x86::vmx::Capabilities& caps);
// The mechanism of every VM, and whether their EPTPs enable A/D (mmu::MmuConfig::ept_ad).
mmu::DirtyMode dirty_log_mode();
bool dirty_log_ept_ad();
// The HV_DIRTY_* value of a mechanism (hv_abi.h).
uint32_t dirty_log_abi_mode(mmu::DirtyMode m);

// The three hypercalls (registers already masked to the guest's mode). RBX results in *out.
int64_t dirty_log_hypercall(Vcpu& vcpu, uint64_t nr, uint64_t id, uint64_t gpa, uint64_t bytes,
                            uint64_t* out);

// --- The dirty ring per vCPU (hv.dirty-ring=N; mmu/dirty_ring.h, docs/hypercalls.md) ---
// Beside the bitmap: each vCPU pushes (slot, page offset) when it makes a page of a logged slot
// dirty - the write-protection fault (wp) or its exit's PML drain (pml); ad has no per-write
// event, so no ring. The consumer is the guest: HV_CALL_DIRTY_RING_REAP(vcpu, buffer, bytes),
// one at a time (the VM's slot lock). At the soft limit the vCPU stops at its next safe point
// (before its next entry) until the ring has been reaped (or the VM stops). A drop (the ring
// completely full) loses nothing: the bitmap has the page too.
struct VcpuDirtyRing {
  mmu::DirtyRing* ring = nullptr;
  uint64_t stalls = 0;      // safe points at which the vCPU waited for the consumer
  uint64_t stall_tsc = 0;   // TSC ticks spent waiting there
};
// Entries per vCPU ring (0: off) and the soft-limit reserve, decided by dirty_log_init.
uint32_t dirty_ring_entries();
// The vCPU's ring (on its CPU, at setup; nullptr or why not) and its release (after the vCPU
// stopped; waits for a consumer through the slot lock).
const char* dirty_ring_setup(Vcpu& vcpu);
void dirty_ring_release(Vcpu& vcpu);
// At the vCPU's safe point (before entry): wait while its ring is soft-full. `stop_requested`
// is polled while waiting; false when it said stop.
bool dirty_ring_wait(Vcpu& vcpu, bool (*stop_requested)(Vcpu&));
// HV_CALL_DIRTY_RING_REAP: RBX vCPU index, RCX buffer gpa, RDX bytes -> RBX entries reaped.
int64_t dirty_ring_hypercall(Vcpu& vcpu, uint64_t index, uint64_t gpa, uint64_t bytes, uint64_t* out);
// The vCPU's report line ("dirty ring: N pushed, D dropped, S stalls").
void dirty_ring_report(Vcpu& vcpu);

}  // namespace hv
