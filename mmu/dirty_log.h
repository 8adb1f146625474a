// Dirty logging of a memslot: the per-slot dirty bitmap and the mechanisms (docs/mmu.md §11).
//
// A logged memslot (Memslot::kDirtyLog) owns one DirtyLog: a bitmap with one bit per page of the
// slot (bit i = page base_gfn + i), made of atomic 64-bit words, and the mechanism that feeds it:
//   write_protect  the slot's leaves lose W; a write faults, the fault path restores W (CAS) and
//                  sets the page's bit; a harvest takes the bits and clears W again.
//   dirty_bit      EPT A/D (MmuConfig::ept_ad): leaves keep W, the CPU sets D on a write; a harvest
//                  test-and-clears D into the bits.
//   pml            leaves as dirty_bit, but the CPU's page-modification log reports the 4 KiB
//                  pages: the VMX layer reports the logged GPAs with Mmu::dirty_log_mark_gpa(),
//                  a harvest first asks the Platform to drain every vCPU's log
//                  (Platform::drain_dirty_logs), takes the words, and then clears D.
// The Mmu entry points (start, stop, harvest, mark) are members of Mmu (mmu.h), implemented in
// dirty_log.cpp with the protocols and the harvest-versus-write argument.
//
// Storage: one Platform page holds the header and the addresses of the bitmap pages; each bitmap
// page holds 512 words = 32768 pages (128 MiB of guest memory), so a slot of up to
// kMaxChunks * 32768 pages (about 61 GiB) can be logged; larger ones get MemslotError::too_large.
// The log is freed through the epoch (retire()), because PML marks (dirty_log_mark_gpa) reach it
// from a memslot lookup inside an epoch read section, without any lock.
#pragma once

#include "mmu/atomic.h"
#include "mmu/epoch.h"
#include "mmu/platform.h"
#include "mmu/types.h"

namespace mmu {

enum class DirtyMode : uint8_t { write_protect, dirty_bit, pml };
const char* to_string(DirtyMode m);
// The mechanisms that rely on the CPU's EPT dirty bit (and so need MmuConfig::ept_ad).
inline constexpr bool uses_dirty_bit(DirtyMode m) { return m != DirtyMode::write_protect; }

class DirtyLog {
 public:
  static constexpr unsigned kWordsPerChunk = kPageSize / sizeof(uint64_t);  // 512
  static constexpr uint64_t kPagesPerChunk = uint64_t{kWordsPerChunk} * 64;  // 32768
  static constexpr unsigned kMaxChunks = 480;
  static constexpr uint64_t kMaxPages = kPagesPerChunk * kMaxChunks;

  // A log for a slot of `npages` pages, every bit clear. nullptr: out of memory (nothing kept).
  // The caller checks npages <= kMaxPages first.
  static DirtyLog* create(Platform& p, uint64_t npages, DirtyMode mode);
  // Free now (no reader can reach it: never published, or after a grace period).
  void destroy();
  // Free after a grace period (readers inside epoch sections may still reach it).
  void retire(Epoch& epoch);

  DirtyMode mode() const { return mode_; }
  uint64_t npages() const { return npages_; }
  uint64_t words() const { return (npages_ + 63) / 64; }

  // Set the bit of page `i` (relative to the slot's base). Relaxed: the ordering a mechanism
  // needs comes from the MMU lock (write_protect) or from the harvest's flush (dirty_bit); the
  // callers say which. Out-of-range indices are ignored (a hostile PML entry).
  void set(uint64_t i) {
    if (i < npages_) word(i / 64).fetch_or(uint64_t{1} << (i % 64), Order::relaxed);
  }
  // Set the bits of pages [first, first + n) clipped to the slot (a huge leaf's D bit).
  void set_range(uint64_t first, uint64_t n);
  void set_all() { set_range(0, npages_); }
  bool test(uint64_t i) { return i < npages_ && (word(i / 64).load(Order::relaxed) >> (i % 64)) & 1; }
  // Get-and-clear word `w` (acq_rel: a harvest that takes a bit also sees what was written
  // before it was set; see dirty_log.cpp).
  uint64_t take_word(uint64_t w) { return word(w).exchange(0, Order::acq_rel); }

 private:
  DirtyLog(Platform& p, hpa_t self, uint64_t npages, DirtyMode mode)
      : platform_(&p), self_(self), npages_(npages), mode_(mode) {}
  Atomic<uint64_t>& word(uint64_t w) { return chunks_[w / kWordsPerChunk][w % kWordsPerChunk]; }
  static void retire_fn(EpochCallback* cb);

  // First member (retire_fn casts the node back to the log): written only by retire().
  EpochCallback retire_node_;
  Platform* platform_;
  hpa_t self_;
  uint64_t npages_;
  DirtyMode mode_;
  unsigned nchunks_ = 0;
  Atomic<uint64_t>* chunks_[kMaxChunks] = {};
};

}  // namespace mmu
