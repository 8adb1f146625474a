// The log-linear histogram behind hv's exit-cost figures (hv/exit_histogram.h): every value
// falls in the bucket whose range holds it, buckets are ordered, and percentiles read back
// from it stay within the documented 1/16 of the true value; the max is exact.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <random>
#include <vector>

#include "hv/exit_histogram.h"

using hv::LogHistogram;

TEST_CASE("exit histogram: each value lies inside its bucket, buckets ascend", "[exit_histogram]") {
  std::mt19937_64 rng(20261122);
  std::vector<uint64_t> values = {0, 1, 7, 8, 9, 15, 16, 17, 1000, 4095, 4096, ~uint64_t{0}, uint64_t{1} << 63};
  for (int i = 0; i < 20000; i++) values.push_back(rng() >> (rng() % 64));
  for (uint64_t v : values) {
    const unsigned b = LogHistogram::bucket_of(v);
    REQUIRE(b < LogHistogram::kBuckets);
    REQUIRE(LogHistogram::bucket_low(b) <= v);
    REQUIRE(v - LogHistogram::bucket_low(b) < LogHistogram::bucket_width(b));
    // A bucket is never wider than 1/8 of its lower bound (exact below 8).
    REQUIRE(LogHistogram::bucket_width(b) * 8 <= std::max<uint64_t>(LogHistogram::bucket_low(b), 8));
  }
  for (unsigned b = 1; b < LogHistogram::kBuckets; b++)
    REQUIRE(LogHistogram::bucket_low(b) == LogHistogram::bucket_low(b - 1) + LogHistogram::bucket_width(b - 1));
}

TEST_CASE("exit histogram: median and p99 within 1/16, exact max and mean", "[exit_histogram]") {
  std::mt19937_64 rng(7);
  std::vector<uint64_t> v;
  LogHistogram h;
  uint64_t sum = 0;
  for (int i = 0; i < 10000; i++) {
    // Mostly ~700-tick exits with a heavy tail, like the exit costs it records.
    const uint64_t x = (i % 50 == 0) ? 100000 + rng() % 900000 : 650 + rng() % 200;
    v.push_back(x);
    h.add(x);
    sum += x;
  }
  std::sort(v.begin(), v.end());
  auto exact = [&](unsigned per_mille) { return v[(v.size() * per_mille + 999) / 1000 - 1]; };
  for (unsigned q : {10u, 500u, 900u, 990u, 999u}) {
    const double got = static_cast<double>(h.quantile(q)), want = static_cast<double>(exact(q));
    INFO("quantile " << q << "/1000: got " << got << ", exact " << want);
    REQUIRE(got >= want * (1 - 1.0 / 16));
    REQUIRE(got <= want * (1 + 1.0 / 16));
  }
  REQUIRE(h.quantile(1000) == v.back());
  REQUIRE(h.max() == v.back());
  REQUIRE(h.count() == v.size());
  REQUIRE(h.mean() == sum / v.size());
}

TEST_CASE("exit histogram: empty and single-valued", "[exit_histogram]") {
  LogHistogram h;
  REQUIRE(h.quantile(500) == 0);
  REQUIRE(h.mean() == 0);
  h.add(734);
  REQUIRE(h.quantile(500) <= 734);
  REQUIRE(h.quantile(500) >= 734 - 734 / 16);
  REQUIRE(h.quantile(990) <= 734);
  REQUIRE(h.quantile(1000) == 734);
}

// hv/exit_timing.cpp records one histogram per exit kind and sums them into "all" only when it
// prints: the sum must read back exactly as one histogram that saw every sample.
TEST_CASE("exit histogram: merged equals recorded together", "[exit_histogram]") {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<uint64_t> small(100, 3000), large(1000, 500000);
  auto a = std::make_unique<LogHistogram>(), b = std::make_unique<LogHistogram>(),
       both = std::make_unique<LogHistogram>(), sum = std::make_unique<LogHistogram>();
  for (int i = 0; i < 5000; i++) {
    const uint64_t x = small(rng), y = large(rng);
    a->add(x);
    both->add(x);
    if (i % 3 == 0) {
      b->add(y);
      both->add(y);
    }
  }
  sum->add(12345);
  sum->clear();
  REQUIRE(sum->count() == 0);
  REQUIRE(sum->max() == 0);
  sum->merge(*a);
  sum->merge(*b);
  REQUIRE(sum->count() == both->count());
  REQUIRE(sum->sum() == both->sum());
  REQUIRE(sum->max() == both->max());
  for (unsigned q : {100u, 500u, 900u, 990u, 1000u}) REQUIRE(sum->quantile(q) == both->quantile(q));
  REQUIRE(sum->quantile(500) != a->quantile(500));  // b's samples moved the median
}
