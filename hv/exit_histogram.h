// A fixed log-linear histogram of 64-bit values (TSC ticks), for hv/exit_timing.h.
//
// Values below 2^kSubBits get a bucket each; above, the top bit picks the octave and the
// kSubBits bits below it one of 2^kSubBits buckets inside the octave. So a bucket is never wider
// than 1/2^kSubBits of its lower bound: a percentile read back as the bucket's midpoint is within
// 1/16 of the true value with kSubBits = 3 (and the max is kept exactly). Adding a sample is a
// few instructions, no allocation, no lock: the owner is the only writer.
//
// Pure code without kernel dependencies, so the host unit tests compile it as it is
// (tests/unit/exit_histogram_test.cpp).
#pragma once

#include <stdint.h>

namespace hv {

class LogHistogram {
 public:
  static constexpr unsigned kSubBits = 3;
  static constexpr unsigned kBuckets = (64 - kSubBits + 1) << kSubBits;  // every 64-bit value

  void add(uint64_t v) {
    count_++;
    sum_ += v;
    if (v > max_) max_ = v;
    bucket_[bucket_of(v)]++;
  }
  // This histogram plus every sample of `o` (the same buckets, so quantiles stay as exact).
  void merge(const LogHistogram& o) {
    count_ += o.count_;
    sum_ += o.sum_;
    if (o.max_ > max_) max_ = o.max_;
    for (unsigned b = 0; b < kBuckets; b++) bucket_[b] += o.bucket_[b];
  }
  void clear() {
    count_ = sum_ = max_ = 0;
    for (auto& b : bucket_) b = 0;
  }
  uint64_t count() const { return count_; }
  uint64_t sum() const { return sum_; }
  uint64_t max() const { return max_; }
  uint64_t mean() const { return count_ ? sum_ / count_ : 0; }

  // The value at quantile q/1000: the midpoint of the bucket holding the sample of rank
  // ceil(n * q / 1000), never above the max; the exact max for q >= 1000; 0 when empty.
  uint64_t quantile(unsigned per_mille) const {
    if (!count_) return 0;
    if (per_mille >= 1000) return max_;
    uint64_t rank = (count_ * per_mille + 999) / 1000;
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < kBuckets; b++) {
      seen += bucket_[b];
      if (seen >= rank) {
        const uint64_t mid = bucket_low(b) + bucket_width(b) / 2;
        return mid > max_ ? max_ : mid;
      }
    }
    return max_;
  }

  static unsigned bucket_of(uint64_t v) {
    if (v < (uint64_t{1} << kSubBits)) return static_cast<unsigned>(v);
    const unsigned top = 63 - static_cast<unsigned>(__builtin_clzll(v));
    const unsigned sub = static_cast<unsigned>(v >> (top - kSubBits)) & ((1u << kSubBits) - 1);
    return ((top - kSubBits + 1) << kSubBits) + sub;
  }
  static uint64_t bucket_low(unsigned b) {
    if (b < (1u << kSubBits)) return b;
    const unsigned top = (b >> kSubBits) - 1 + kSubBits;
    return (uint64_t{1} << top) | (static_cast<uint64_t>(b & ((1u << kSubBits) - 1)) << (top - kSubBits));
  }
  static uint64_t bucket_width(unsigned b) {
    if (b < (1u << kSubBits)) return 1;
    return uint64_t{1} << ((b >> kSubBits) - 1);  // 2^(top - kSubBits)
  }

 private:
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t max_ = 0;
  uint32_t bucket_[kBuckets] = {};
};

}  // namespace hv
