// What a CPU does when the guest writes a page, for the dirty-logging tests: the page walk that
// checks W and sets A/D in the leaf with a locked update (EPT A/D on), a TLB that remembers
// "writable, D known" translations until a flush starts, and an optional page-modification log
// (PML) that gets the GPA whenever the walk sets D (0 -> 1).
//
// The TLB model: a flush (Platform::flush_remote_tlbs, through HostPlatform's flush hook) bumps
// a generation; a cached translation made under generation g may be used only while the
// generation is still g. So a flush is instantaneous at its start, and what the model exercises
// is the window that matters: between the MMU clearing W (or D) in the leaf and the flush, a
// CPU may still write through its cached translation without faulting and without touching the
// leaf. A vCPU that changes roots drops its translations (hv invalidates the old EPTP).
#pragma once

#include <mutex>
#include <vector>

#include "mmu/atomic.h"
#include "mmu/mmu.h"
#include "mmu/tdp_iter.h"

namespace hvtest {

// Shared by every simulated CPU of one VM.
struct TlbGeneration {
  mmu::Atomic<uint64_t> gen{1};
  void flush() { gen.fetch_add(1, mmu::Order::acq_rel); }
};

// A simulated PML buffer of one vCPU (drained by the harvester through the drain hook).
struct PmlLog {
  std::mutex lock;
  std::vector<mmu::gpa_t> gpas;
  // Report every GPA to the MMU and empty the log.
  void drain(mmu::Mmu& m) {
    std::lock_guard<std::mutex> g(lock);
    for (mmu::gpa_t gpa : gpas) m.dirty_log_mark_gpa(gpa);
    gpas.clear();
  }
};

// One simulated CPU running one vCPU, writing guest pages of [base, base + npages).
class DirtyCpu {
 public:
  DirtyCpu(mmu::Mmu& m, mmu::VcpuMmu& v, TlbGeneration& tlb, mmu::gfn_t base, uint64_t npages,
           PmlLog* pml = nullptr)
      : mmu_(m), v_(v), tlb_(tlb), base_(base), cached_(npages, 0), pml_(pml) {}

  // The guest writes page `i` (relative to base). Returns true when the write happened (through
  // the TLB or a walk), false when the vCPU must take the EPT violation first (no leaf, or W
  // clear): the caller then calls fault() and tries again. `via_tlb` says which.
  bool write(uint64_t i, bool* via_tlb = nullptr) {
    const uint64_t g = tlb_.gen.load(mmu::Order::acquire);
    if (cached_[i] == g) {
      if (via_tlb) *via_tlb = true;
      return true;  // a translation that knows W and D: no walk, the leaf is not touched
    }
    if (via_tlb) *via_tlb = false;
    mmu::Root* root = v_.root();
    if (root == nullptr) return false;
    mmu::EpochReadGuard section(mmu_.epoch());
    for (mmu::TdpIter it(mmu_.platform(), root->table, root->level, base_ + i, base_ + i + 1, 1);
         it.valid(); it.next()) {
      const int level = it.level();
      if (!mmu::spte::is_leaf(it.old_spte, level)) continue;
      mmu::spte_t old = it.old_spte;
      const mmu::spte_t ad = mmu::spte::kAccessed | mmu::spte::kDirty;
      for (;;) {
        if (!mmu::spte::is_leaf(old, level) || !(old & mmu::spte::kWrite)) return false;
        if ((old & ad) == ad) break;  // the write goes through; nothing to update in the leaf
        // The PML entry is written with the D update (one step for the other CPUs' drain).
        std::unique_lock<std::mutex> log_guard;
        if (pml_ != nullptr) log_guard = std::unique_lock<std::mutex>(pml_->lock);
        if (mmu::atomic_cmpxchg(it.sptep(), old, old | ad, mmu::Order::acq_rel)) {
          if (pml_ != nullptr && !(old & mmu::spte::kDirty)) pml_->gpas.push_back((base_ + i) << mmu::kPageShift);
          break;
        }
      }
      cached_[i] = g;
      return true;
    }
    return false;
  }

  // The EPT violation of a write: load the root (a new one drops the TLB) and map.
  mmu::FaultOutcome fault(uint64_t i) {
    mmu::Root* before = v_.root();
    mmu_.vcpu_load_root(v_);
    if (v_.root() != before) drop_tlb();
    return mmu_.map(v_, base_ + i, mmu::spte::kAccWrite);
  }
  // Write, faulting as often as needed (bounded); true when the write happened.
  bool write_faulting(uint64_t i, bool* via_tlb = nullptr) {
    for (int n = 0; n < 1000; n++) {
      if (write(i, via_tlb)) return true;
      const mmu::FaultOutcome o = fault(i);
      if (o != mmu::FaultOutcome::fixed && o != mmu::FaultOutcome::spurious &&
          o != mmu::FaultOutcome::retry)
        return false;
    }
    return false;
  }
  void drop_tlb() {
    for (auto& c : cached_) c = 0;
  }

 private:
  mmu::Mmu& mmu_;
  mmu::VcpuMmu& v_;
  TlbGeneration& tlb_;
  mmu::gfn_t base_;
  std::vector<uint64_t> cached_;  // per page: the TLB generation it was cached under (0: none)
  PmlLog* pml_;
};

}  // namespace hvtest
