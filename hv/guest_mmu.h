// A VM's EPT MMU as hv runs it: the mmu::Memslots and mmu::Mmu objects of one VM (the kernel
// has no heap, so they live in storage inside the GuestMmu), one mmu::VcpuMmu per vCPU index,
// and hv's policy around them: the page-table limit (a default sized from the VM's memory,
// hv/pt_limit.h), timing and counting of the deferred-work passes, the reclaim hook of the
// fault path, and guest-physical lookups inside an epoch section.
//
// Not a type boundary. hv code uses the MMU's own vocabulary (mmu::FaultOutcome,
// mmu::MemslotError, mmu::MmuStats, mmu::Memslot) directly: it is the portable MMU's public
// interface, and an hv copy of each type would only have to be kept identical (the old
// MapResult was exactly that). What GuestMmu hides is ownership and the locking/reclamation
// details: callers speak in vCPU indices and never take an MMU lock or an epoch section.
#pragma once

#include <stdint.h>

#include "hv/counter.h"
#include "hv/vm_limits.h"
#include "mmu/memslot.h"
#include "mmu/mmu.h"
#include "mmu/types.h"

namespace hv {

// Guest RAM: [base_gfn, base_gfn + npages) backed by host-physically contiguous memory.
struct RamSlot {
  const char* name;
  mmu::gfn_t base_gfn;
  uint64_t npages;
  mmu::hpa_t backing_hpa;
};

// A snapshot of the VM's deferred-work passes (GuestMmu::run_deferred_work), from every CPU
// that runs them: before each VM entry (hv/vcpu.cpp), in idle (hv/live_vms.cpp) and in the
// reclaim hook. A pass is one call: teardown units (SPTEs visited) plus the epoch poll. Only
// passes that did teardown work are counted (and timed).
struct DeferredStats {
  uint64_t busy_passes = 0;  // passes that did teardown work (idle passes are not counted)
  uint64_t units = 0;        // teardown units, summed
  uint64_t max_units = 0;    // the most units one pass used
  uint64_t max_budget = 0;   // the largest budget a pass was given
  uint64_t max_tsc = 0;      // the longest pass, in TSC ticks
};

class GuestMmu {
 public:
  static constexpr unsigned kMaxSlots = 8;
  // Memslot ids from here on are hv-private mappings, not guest RAM: the guest's slot ids are
  // 0-63 (docs/hypercalls.md) and migration lists only those, and translate() does not see a
  // private slot (hv's emulator and hypercall buffers never read or write through one: an
  // access there is the device's). The one in use: the APIC-access page (hv/apicv.h), one
  // 4 KiB slot at the xAPIC base that the CPU's "virtualize APIC accesses" recognizes.
  static constexpr uint32_t kFirstPrivateSlotId = 0x100;
  static constexpr uint32_t kApicAccessSlotId = kFirstPrivateSlotId;

  // The page-table limit, set before init(): either hv.pt-limit=N (`pages`, 0 = none) or the
  // default of hv/pt_limit.h for `mappable_bytes` of guest-physical space in `ranges` ranges.
  void set_page_limit_override(uint64_t pages) {
    limit_override_ = true;
    page_limit_ = pages;
  }
  void clear_page_limit_override() {
    limit_override_ = false;
    teardown_backlog_ = mmu::MmuConfig::kDefaultTeardownBacklog;
    fault_around_ = kDefaultFaultAround;
  }
  // Fast-zap backpressure (mmu::MmuConfig::max_teardown_backlog), set before init():
  // hv.zap-backlog=N; 0 turns it off.
  void set_teardown_backlog(uint64_t n) { teardown_backlog_ = n; }
  // Fault-around (mmu::MmuConfig::fault_around), set before init(): hv.fault-around=N, at most
  // mmu::MmuConfig::kMaxFaultAround. The default was chosen by measurement (docs/mmu.md,
  // "Pre-fault and fault-around").
  static constexpr unsigned kDefaultFaultAround = 15;
  void set_fault_around(uint64_t n) {
    fault_around_ = n > mmu::MmuConfig::kMaxFaultAround ? mmu::MmuConfig::kMaxFaultAround : static_cast<unsigned>(n);
  }
  bool page_limit_is_default() const { return !limit_override_; }
  // Creates the memslots (address space 0) and the MMU. max_level: largest leaf (1 = 4 KiB,
  // 2 = 2 MiB, 3 = 1 GiB). `mappable_bytes`/`mappable_ranges`: the most guest-physical memory
  // the VM can ever have in slots (for the default page limit). nullptr or why not.
  const char* init(uint64_t vm_id, const RamSlot* slots, unsigned count, int max_level, unsigned guest_phys_bits,
                   uint64_t mappable_bytes, unsigned mappable_ranges);
  // The root table's physical address for `vcpu`, before every VM entry: a fast zap makes the
  // vCPU load a fresh root here. 0 when out of memory.
  mmu::hpa_t load_root(unsigned vcpu);
  // Whether a safe point on `cpu` would find no deferred MMU work of its own (a teardown queued,
  // pages in limbo, this CPU's epoch callbacks). Inline loads: the exit fast path asks at every
  // quiet exit, so that a guest waiting for a teardown in a loop of quiet exits sees it progress
  // at every exit.
  bool deferred_idle(unsigned cpu) const { return mmu_->deferred_work_idle_hint_local(cpu); }
  // The root load_root() returned last is still the one to enter with (no fast zap since).
  bool root_current(unsigned vcpu) const { return mmu_->vcpu_root_current(*vcpus_[vcpu % kMaxVcpus]); }
  // Make `gfn` accessible for `access` (mmu::spte::Access bits): the EPT-violation handler.
  mmu::FaultOutcome map(unsigned vcpu, mmu::gfn_t gfn, unsigned access) {
    return mmu_->map(*vcpus_[vcpu % kMaxVcpus], gfn, access);
  }
  // Pre-fault [start, end) in `vcpu`'s root, at most `budget` units of work (mmu::Mmu::prefault).
  mmu::PrefaultResult prefault(unsigned vcpu, mmu::gfn_t start, mmu::gfn_t end, unsigned budget);
  // Safe point before VM entry (and idle): bounded deferred work (root teardown, epoch
  // callbacks), timed and counted in deferred_stats().
  void run_deferred_work(unsigned budget);
  DeferredStats deferred_stats() const;
  // For a fault that failed with out_of_memory: free what the VM holds without using it,
  // within `budget` units (mmu::Mmu::reclaim: teardown from any CPU's queue of this VM, the
  // pending dead tables flushed and retired, the epoch polled). True when retrying can help:
  // pages came back, or something is still on its way (invalid roots, pages in the epoch).
  bool reclaim(unsigned budget);
  // What a vCPU refused a page spends before the VM is stopped: reclaim passes of about one
  // table's teardown each (hv/exit_ept.cpp for a fault, hv/vcpu.cpp for a fresh root), at most
  // kReclaimRetries of them in a row.
  static constexpr unsigned kReclaimBudget = 512;
  static constexpr unsigned kReclaimRetries = 1000;
  // Leaves mapped per level (index 1..3), counted by a walk of the roots.
  void leaves(uint64_t out[4]);
  uint64_t table_pages();

  // --- Changes and lookups on behalf of the guest (hv/hypercall.cpp, hv/exit_ept.cpp) ---
  // Apply a memslot change through the MMU's update path (publish, invalidation sequence,
  // leaf zap, TLB flush): when it returns ok, no vCPU can still reach the old range.
  mmu::MemslotError update_memslot(const mmu::MemslotOp& op);
  // Fast zap: invalidate every root. With `wait`, also run/await the teardown of the old ones.
  void invalidate_all_roots(bool wait);
  mmu::MmuStats stats();
  // The guest's MAXPHYADDR as the MMU was configured with it.
  unsigned guest_phys_bits() const { return mmu_->config().guest_phys_bits; }
  // A copy of slot `id` of address space 0, or false when there is none.
  bool find_slot(uint32_t id, mmu::Memslot* out);
  // The host-physical address of guest-physical [gpa, gpa + len) when that range lies inside
  // one slot of address space 0 (and the slot is writable if `write`), else 0. The slot is
  // looked up in the published set inside an epoch read-side section; the returned address
  // stays usable after the section ends only because every slot's backing is the VM's own
  // RAM pool, which lives as long as the VM (a concurrent slot change may make the answer
  // stale, never dangling).
  uint64_t translate(uint64_t gpa, uint64_t len, bool write);
  // An hv-private 4 KiB mapping (id >= kFirstPrivateSlotId) of host page `hpa` at `gfn`
  // through the ordinary memslot path: the fault path maps it like RAM, zaps and fast zaps
  // drop and re-fault it, and a guest slot cannot overlap it (HV_EOVERLAP). Before the vCPUs run.
  mmu::MemslotError map_private_page(uint32_t id, mmu::gfn_t gfn, mmu::hpa_t hpa);
  // hv wrote guest memory [gpa, gpa + len) itself (a hypercall's result buffer): pages of a
  // dirty-logged slot count as written by the guest (mmu::Mmu::dirty_log_mark_gpa). Call it
  // after the write, so that a harvest that takes the bit also sees the data.
  void note_write(uint64_t gpa, uint64_t len);
  // A PML entry of the calling vCPU (hv/pml.cpp): the page counts as written, and with `ring`
  // (that vCPU's dirty ring, of which the caller is the producer) it is pushed there too.
  void note_guest_write(uint64_t gpa, mmu::DirtyRing* ring) { mmu_->dirty_log_mark_gpa(gpa, 0, ring); }
  // The dirty ring the write-protection faults of vCPU `vcpu` push to (nullptr: none). Set
  // while that vCPU does not fault (at its setup and release, on its CPU).
  void set_dirty_ring(unsigned vcpu, mmu::DirtyRing* ring) {
    if (vcpu < kMaxVcpus && vcpus_[vcpu] != nullptr) vcpus_[vcpu]->set_dirty_ring(ring);
  }
  mmu::DirtyRing* dirty_ring(unsigned vcpu) const {
    return vcpu < kMaxVcpus && vcpus_[vcpu] != nullptr ? vcpus_[vcpu]->dirty_ring() : nullptr;
  }
  // Dirty logging of slot `id` (address space 0) on behalf of vCPU `vcpu` (whose root gets the
  // eager split): mmu::Mmu::dirty_log_start/stop/harvest with the VM's mechanism
  // (hv/dirty_log.h).
  mmu::MemslotError dirty_log_start(unsigned vcpu, uint32_t id);
  mmu::MemslotError dirty_log_stop(unsigned vcpu, uint32_t id);
  mmu::MemslotError dirty_log_harvest(unsigned vcpu, uint32_t id, uint64_t* bitmap, size_t words,
                                      uint64_t* pages);
  // Releases the vCPUs' roots, tears down every root and frees the memslots. No vCPU may run.
  void destroy();

 private:
  void note_pass(unsigned used, unsigned budget, uint64_t tsc);
  // Bumped by every CPU that runs a pass (vCPUs, idle CPUs): hv's relaxed counters.
  struct Deferred {
    Counter busy_passes, units;
    MaxCounter max_units, max_budget, max_tsc;
  } deferred_;
  char why_[120] = {};  // init()'s error text (VM creation runs on one CPU)
  uint32_t vm_id_ = 0;  // for trace records (hv/trace.h)
  bool limit_override_ = false;
  uint64_t page_limit_ = 0;
  uint64_t teardown_backlog_ = mmu::MmuConfig::kDefaultTeardownBacklog;
  unsigned fault_around_ = kDefaultFaultAround;
  mmu::Memslots* memslots_ = nullptr;
  mmu::Mmu* mmu_ = nullptr;
  mmu::VcpuMmu* vcpus_[kMaxVcpus] = {};
  alignas(mmu::Memslots) unsigned char memslots_storage_[sizeof(mmu::Memslots)];
  alignas(mmu::Mmu) unsigned char mmu_storage_[sizeof(mmu::Mmu)];
  alignas(mmu::VcpuMmu) unsigned char vcpu_storage_[kMaxVcpus][sizeof(mmu::VcpuMmu)];
};

}  // namespace hv
