// A model of the CPUs' TLBs for host tests, driven by the platform's flush hook.
//
// What it models, and why that is enough: Platform::flush_remote_tlbs() promises that once it
// returns, no CPU can use a translation through an entry that was cleared before the call.
// Nothing else removes a translation from a TLB. So the model keeps, per simulated CPU, the
// translations that CPU may hold:
//   * load(cpu, root, start, end): a vCPU runs on `root` on `cpu`; from now on it may cache
//     every leaf translation of [start, end) that is present in that root;
//   * a flush, when it *starts* (the hook is entered), takes note of every cached translation
//     whose leaf is gone from its root (or now maps elsewhere); when it *completes* (the hook
//     returns) those are dropped. A leaf cleared after the flush started is not covered by it.
// may_translate()/stale() then answer "can some CPU still reach this gfn's old backing?", the
// question a memslot delete must have answered "no" to before it returns.
//
// An optional callback runs inside a chosen flush, between its start and its completion, on
// the flushing thread: tests use it to hold a flush in progress and run other MMU work then.
// The root objects named in load() must stay alive (referenced by a vCPU) while cached; forget()
// drops a CPU's entries (a vCPU that switches roots invalidates its old EPTP in hv).
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <vector>

#include "mmu/mmu.h"
#include "mmu/spte.h"
#include "tests/host/host_platform.h"

namespace hvtest {

class TlbModel {
 public:
  TlbModel(HostPlatform& platform, mmu::Mmu& mmu) : platform_(platform), mmu_(mmu) {
    platform_.set_flush_hook([this](uint64_t) { on_flush(); });
  }
  ~TlbModel() { platform_.set_flush_hook({}); }
  TlbModel(const TlbModel&) = delete;
  TlbModel& operator=(const TlbModel&) = delete;

  void load(unsigned cpu, mmu::Root* root, mmu::gfn_t start, mmu::gfn_t end) {
    std::lock_guard<std::mutex> g(lock_);
    for (mmu::gfn_t gfn = start; gfn < end; gfn++) {
      mmu::hpa_t hpa;
      if (translate(root, gfn, &hpa)) cached_[cpu][gfn] = Entry{root, hpa};
    }
  }
  void forget(unsigned cpu) {
    std::lock_guard<std::mutex> g(lock_);
    cached_.erase(cpu);
  }

  // The gfns of [start, end) that some CPU may still translate although the leaf that mapped
  // them is gone from the root (the translations a missing flush leaves behind).
  std::vector<mmu::gfn_t> stale(mmu::gfn_t start, mmu::gfn_t end) {
    std::lock_guard<std::mutex> g(lock_);
    std::vector<mmu::gfn_t> out;
    for (auto& [cpu, entries] : cached_) {
      for (auto it = entries.lower_bound(start); it != entries.end() && it->first < end; ++it) {
        mmu::hpa_t now;
        if (!translate(it->second.root, it->first, &now) || now != it->second.hpa) out.push_back(it->first);
      }
    }
    return out;
  }
  // Some CPU may translate `gfn` (stale or not).
  bool may_translate(mmu::gfn_t gfn) {
    std::lock_guard<std::mutex> g(lock_);
    for (auto& [cpu, entries] : cached_) {
      if (entries.count(gfn)) return true;
    }
    return false;
  }

  // Run `fn` inside the next flush issued by a thread for which `which()` is true (once).
  void set_in_flush(std::function<bool()> which, std::function<void()> fn) {
    std::lock_guard<std::mutex> g(lock_);
    in_flush_which_ = std::move(which);
    in_flush_ = std::move(fn);
  }
  uint64_t flushes() {
    std::lock_guard<std::mutex> g(lock_);
    return flushes_;
  }

 private:
  struct Entry {
    mmu::Root* root;
    mmu::hpa_t hpa;
  };

  // The host address `gfn` translates to through `root` now, if any.
  bool translate(mmu::Root* root, mmu::gfn_t gfn, mmu::hpa_t* hpa) {
    mmu::spte_t leaf;
    int level;
    if (!mmu_.lookup(root, gfn, &leaf, &level)) return false;
    const mmu::gfn_t offset = gfn - mmu::spte::align_down(gfn, level);
    *hpa = mmu::spte::pfn_addr(leaf) + (offset << mmu::kPageShift);
    return true;
  }

  void on_flush() {
    // Start of the flush: what it covers is decided now.
    std::vector<std::pair<unsigned, mmu::gfn_t>> covered;
    std::function<void()> fn;
    {
      std::lock_guard<std::mutex> g(lock_);
      flushes_++;
      for (auto& [cpu, entries] : cached_) {
        for (auto& [gfn, e] : entries) {
          mmu::hpa_t now;
          if (!translate(e.root, gfn, &now) || now != e.hpa) covered.emplace_back(cpu, gfn);
        }
      }
      if (in_flush_ && in_flush_which_ && in_flush_which_()) {
        fn = std::move(in_flush_);
        in_flush_ = nullptr;
      }
    }
    // The flush is in progress: other CPUs' work may run now.
    if (fn) fn();
    // Completion: the covered translations are gone from every TLB.
    std::lock_guard<std::mutex> g(lock_);
    for (auto& [cpu, gfn] : covered) {
      auto it = cached_.find(cpu);
      if (it != cached_.end()) it->second.erase(gfn);
    }
  }

  HostPlatform& platform_;
  mmu::Mmu& mmu_;
  std::mutex lock_;
  std::map<unsigned, std::map<mmu::gfn_t, Entry>> cached_;
  std::function<bool()> in_flush_which_;
  std::function<void()> in_flush_;
  uint64_t flushes_ = 0;
};

}  // namespace hvtest
