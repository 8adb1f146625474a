// Live migration of a running VM to a new VM on the same machine (docs/migration.md).
//
// hv.migrate-ms=N: N ms after the VM started, hv moves it. The source VM A keeps running while
// a new VM B is built beside it (its own RAM pool of the same size, the same devices, the same
// vCPU count; the same VM number, so the guest's console lines and hv's reports go on as
// "vmN: ..."), then:
//   1. pre-copy rounds (at most hv.migrate-rounds, default 3), while A's vCPUs run: round 1 copies A's
//      whole RAM pool to B's (pages outside every memslot included: the guest may map them
//      again later), each later round copies the pages a DirtySource reports as written since
//      the previous harvest, memslot by memslot. The copying is done in bounded steps
//      (hv.migrate-step-pages, default 512 pages) by whichever vCPU of A reaches a safe point
//      (Vcpu::vm_requests_stop), like hv's other periodic work (hv/vm_stress.h). Pre-copy ends
//      early after a round (2 or later) whose dirty set was at most hv.migrate-stop-pages
//      (default 256), else after the round limit; the report says which rule ended it;
//   2. stop-and-copy: every vCPU of A leaves its run loop at a safe point; its job saves the
//      vCPU's state (hv/vm_state.h) on its CPU. The last one to arrive copies what the final
//      harvest reports (the whole pool again when A's memslots changed since the start),
//      mirrors A's memslots into B, moves the device state, and publishes B;
//   3. each CPU of A starts vCPU i of B in place of A's vCPU i and B runs (the vCPU state, the
//      x87/SSE/AVX registers and DR0-3/DR6 included, comes from the saved VcpuState, not from the
//      CPU: vm_state.h); the last CPU to let go of A's VMCS destroys A and frees its memory.
// Reported: one line per pre-copy round (pages copied, dirty set), the rule that ended pre-copy,
// the stop-and-copy (pages), the downtime (TSC ticks and ms from the pause request until the
// last vCPU of B was restored) and the pages copied in total.
//
// Bad input: a VM hv cannot copy (no room for B's pool, a VM without a RAM pool) is not
// migrated: the error is reported and A keeps running. A vCPU of A that ends by itself while
// the migration is under way abandons it: B is destroyed and A's paused vCPUs run on.
//
// Which pages to copy again comes from a DirtySource: the MMU's dirty log by default
// (MmuDirtySource: mmu::Mmu::dirty_log_start / dirty_log_harvest / dirty_log_stop with the VM's
// mechanism, hv.dirty=wp|ad), or every page in every round (hv.migrate-dirty=all: the baseline,
// where the stop-and-copy phase alone makes the copy exact).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace hv {

class Vcpu;
class Vm;
struct RunVm;

// Which pages of a memslot the guest wrote. One memslot at a time, address space 0, slot ids as
// the memslot API numbers them (0: hv's boot RAM slot, 1-63 guest slots).
class DirtySource {
 public:
  // Every call names the vCPU that makes it (the caller runs on that vCPU's CPU, at a safe
  // point or paused): the MMU does the work in that vCPU's view (its root gets the split).
  // Start tracking writes to the slot: from here on, every guest write to it is reported by a
  // harvest (this one or a later one). nullptr, or why not.
  virtual const char* start(Vm& vm, unsigned vcpu, unsigned slot_id, uint64_t npages) = 0;
  virtual void stop(Vm& vm, unsigned vcpu, unsigned slot_id) = 0;
  // Get-and-clear: ORs into `bitmap` (bit i = page i of the slot; `words` 64-bit words) the
  // pages written since the previous harvest (the first harvest after start: every page) and
  // sets *pages to their number. False: the harvest failed (nothing was cleared).
  virtual bool harvest(Vm& vm, unsigned vcpu, unsigned slot_id, uint64_t npages, uint64_t* bitmap, size_t words,
                       uint64_t* pages) = 0;
  virtual const char* name() const = 0;

 protected:
  ~DirtySource() = default;
};

// The MMU's dirty log (mmu/dirty_log.h through GuestMmu, with the VM's mechanism, hv.dirty):
// the default.
class MmuDirtySource final : public DirtySource {
 public:
  const char* start(Vm& vm, unsigned vcpu, unsigned slot_id, uint64_t npages) override;
  void stop(Vm& vm, unsigned vcpu, unsigned slot_id) override;
  bool harvest(Vm& vm, unsigned vcpu, unsigned slot_id, uint64_t npages, uint64_t* bitmap, size_t words,
               uint64_t* pages) override;
  const char* name() const override;
};

// Every page of the slot is dirty in every harvest (hv.migrate-dirty=all: the baseline the
// dirty log is measured against; each pre-copy round copies everything).
class AllDirtySource final : public DirtySource {
 public:
  const char* start(Vm&, unsigned, unsigned, uint64_t) override { return nullptr; }
  void stop(Vm&, unsigned, unsigned) override {}
  bool harvest(Vm& vm, unsigned vcpu, unsigned slot_id, uint64_t npages, uint64_t* bitmap, size_t words,
               uint64_t* pages) override;
  const char* name() const override { return "all pages dirty in every round (hv.migrate-dirty=all)"; }
};

// By the runner, before the VM's vCPUs start: hv.migrate-ms arms the migration of `rv`.
void migrate_arm(RunVm& rv, uint64_t now_tsc, uint64_t tsc_khz);
// At a vCPU's safe point: the trigger (creates the target) and one bounded pre-copy step.
void migrate_poll(Vcpu& vcpu, uint64_t now_tsc);
// Whether the vCPU must leave its run loop now for the stop-and-copy phase.
bool migrate_pause_requested(const Vcpu& vcpu);

// In the vCPU's job once its run loop (or its parking, `started` false) has returned, with its
// VMCS still current. kNone: no migration concerns it (the job ends as usual); kResume: the
// migration was abandoned and this vCPU, paused by it, runs on in A; kMoved: *target is the VM
// the vCPU continues in (A's VMCS has been released here).
enum class MigrateNext { kNone, kResume, kMoved };
MigrateNext migrate_vcpu_ended(RunVm& rv, unsigned index, bool started, RunVm** target);
// In the target's job right after Vcpu::init of vCPU `index`: restores the state saved for it.
// *started: whether it had left its parking in the source (false: it parks again).
void migrate_vcpu_resume(RunVm& target, unsigned index, bool* started);
// After the run: the VM `rv` moved to, or nullptr.
RunVm* migrate_target_of(RunVm& rv);

// hv/guest_run.cpp: builds `b` as an empty copy of the multiboot/Linux VM `a` (same pool size,
// memory layout, devices, vCPUs, start description), not yet running. nullptr or why not.
const char* build_migration_target(RunVm& a, RunVm& b);

}  // namespace hv
