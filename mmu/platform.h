// The MMU core's only window onto the machine.
//
// mmu/ knows nothing of arch/ or hv/. Everything it needs from the platform goes through this
// interface, implemented twice: by the kernel (hv/mmu_platform.*) and by the host test harness
// (tests/host/host_platform.*). One Platform instance serves every VM of the machine.
#pragma once

#include "mmu/atomic.h"
#include "mmu/types.h"

namespace mmu {

class Platform {
 public:
  // Upper bound on CPU ids: cpu_id() < kMaxCpus on every platform.
  static constexpr unsigned kMaxCpus = 64;

  // One zeroed, 4 KiB-aligned page for a paging structure or an MMU object; 0 when memory is
  // exhausted (callers turn that into an explicit "out of memory" outcome, never a crash).
  virtual hpa_t alloc_page() = 0;
  // Give a page back. The caller guarantees that no CPU and no TLB can still reach it (the
  // epoch reclamation in mmu/epoch.h is what provides that guarantee for table pages).
  virtual void free_page(hpa_t page) = 0;
  // The hypervisor's address of a physical page (identity in the kernel, a heap in tests).
  virtual void* phys_to_virt(hpa_t pa) = 0;
  virtual hpa_t virt_to_phys(const void* va) = 0;
  // The same as phys_to_virt() for pages this Platform handed out, without a virtual call: the
  // walker (mmu/tdp_iter.h) steps through a table per level on every fault. Every Platform maps
  // its pages linearly (identity in the kernel and in the host tests), so one offset says it
  // all; a Platform with another linear map sets table_map_offset_ in its constructor. The Mmu
  // checks at construction that the two agree.
  void* table_va(hpa_t pa) const { return reinterpret_cast<void*>(pa + table_map_offset_); }

  // The current CPU (a host thread registered as a CPU in the tests), 0..cpu_count()-1.
  virtual unsigned cpu_id() = 0;
  virtual unsigned cpu_count() = 0;

  // Flush every TLB (EPT-derived, "combined" and guest-physical mappings) that may hold a
  // translation of the EPT hierarchy identified by `tlb_tag` (the VM's id), on every CPU.
  // Returns only when all CPUs have done so: after it returns, no CPU can use a translation
  // through an entry that was cleared before the call.
  virtual void flush_remote_tlbs(uint64_t tlb_tag) = 0;

  // True when the current CPU has held on long enough and should drop locks and yield
  // (a pending IPI or timer tick in the kernel; a pseudo-random choice in the tests).
  virtual bool should_yield() = 0;
  // Spin-loop hint (PAUSE).
  virtual void cpu_relax() = 0;
  // Timestamp for statistics (TSC in the kernel, steady clock in the tests).
  virtual uint64_t timestamp() = 0;

  // Page-modification logging (mmu/dirty_log.h, DirtyMode::pml): report to the VM's MMU
  // (Mmu::dirty_log_mark_gpa) every GPA that the page-modification logs of the vCPUs of the VM
  // `tlb_tag` hold, and empty those logs. Returns only when every entry a CPU logged before the
  // call is reported. Called by a harvest, before it clears D bits. Default: nothing to drain
  // (no PML on this platform).
  virtual void drain_dirty_logs(uint64_t tlb_tag) { (void)tlb_tag; }

  // Asymmetric fences (the membarrier pattern). Two fast paths publish "I am here" and then
  // read shared state: the MMU lock's readers (mmu/percpu_rwlock.h) and the epoch's pin
  // (mmu/epoch.h). A full fence between the store and the loads (MFENCE or a locked RMW, 20-40
  // cycles) would be paid on every fault. Their other sides, the lock's writers and the epoch's
  // advance, are rare. So the rare side pays for both:
  //   asymmetric_fence_light()  the fast side, between its store and its loads. Only a compiler
  //                             barrier when the platform has a heavy fence; else a full fence.
  //   asymmetric_fence_heavy()  the rare side, between its own store and its loads of the
  //                             fast side's words. On return, every CPU that runs MMU code has
  //                             executed a full fence at some point of its own instruction
  //                             stream between this call's start and its return, or was at
  //                             that start where it cannot be inside a fast side and passes a
  //                             full fence before it enters one (the kernel: a CPU in guest
  //                             mode, hv/cpu_work.h "Fence requests"). A section run there
  //                             anyway fences for itself (Epoch::read_lock_fenced).
  // Why that is enough (x86-TSO; models/asym_fence.pml checks it): take a fast-side CPU F that
  // stores X and then loads Y, and the heavy side H that stores Y and then loads X. F's fence
  // point (from the heavy fence) falls either before F's store of X, and then F's load of Y
  // comes after it, so it sees H's Y (stored before the heavy fence began); or after F's store
  // of X, and then X is in memory before the heavy fence returns, so H's load sees it. Either
  // way one side sees the other, as with a full fence on both sides.
  // The heavy fence costs one IPI round to the CPUs (or a membarrier() system call in the host
  // tests); a platform that has none leaves asymmetric_fences_ false, and both sides fence.
  bool asymmetric_fences() const { return asymmetric_fences_; }
  void asymmetric_fence_light() const {
    if (MMU_LIKELY(asymmetric_fences_)) {
      compiler_barrier();  // the compiler keeps the order; the CPU may not
    } else {
      atomic_thread_fence(Order::seq_cst);
    }
  }
  void asymmetric_fence_heavy() {
    // Our own store first: it is in memory before any other CPU's fence point.
    atomic_thread_fence(Order::seq_cst);
    if (asymmetric_fences_) serialize_all_cpus();
  }

  // Tracing (the kernel's event trace, hv/trace.h): the MMU reports work whose length a
  // timeline should show. Called on the CPU that did the work, after it, outside the MMU lock;
  // `t0` is timestamp() when it began (the hook reads the end itself). Default: nothing.
  // A range zap (Mmu::zap_range: a memslot change, a dirty-log stop): gfns [start, end) of
  // address space `as_id`, the TLB flush that completes it included.
  virtual void trace_zap_range(uint64_t tlb_tag, unsigned as_id, gfn_t start, gfn_t end, uint64_t t0) {
    (void)tlb_tag, (void)as_id, (void)start, (void)end, (void)t0;
  }
  // One bounded teardown step of an invalidated root (Mmu::run_queue): the root's top table,
  // the units it did, the teardown pass it has reached, whether the walk is now complete, and
  // whether the step came from another CPU's queue (helping).
  virtual void trace_teardown_step(uint64_t tlb_tag, hpa_t root, uint64_t t0, unsigned units, unsigned pass,
                                   bool done, bool helped) {
    (void)tlb_tag, (void)root, (void)t0, (void)units, (void)pass, (void)done, (void)helped;
  }

 protected:
  ~Platform() = default;
  // The heavy side of the asymmetric fences: every CPU executes a full fence (see above).
  // Called only when asymmetric_fences_ is true.
  virtual void serialize_all_cpus() {}
  uintptr_t table_map_offset_ = 0;
  // Set by a platform whose serialize_all_cpus() works, in its constructor, before any MMU
  // object exists; never changed after.
  bool asymmetric_fences_ = false;
};

}  // namespace mmu
