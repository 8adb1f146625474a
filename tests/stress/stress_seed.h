// Seeds for the randomized stress tests: every run prints its seed, and HV_SEED=<n> in the
// environment replays a failing run with the same random choices (the interleaving of the
// threads is still up to the OS, so a replay makes a failure likely, not certain).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace hvtest {

inline uint64_t stress_seed(const char* test_name) {
  uint64_t seed;
  if (const char* env = std::getenv("HV_SEED"); env != nullptr && *env != '\0') {
    seed = std::strtoull(env, nullptr, 0);
  } else {
    seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  std::printf("[%s] seed %llu (set HV_SEED=%llu to replay)\n", test_name,
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  return seed;
}

// Small, fast, per-thread generator (splitmix64): deterministic for a given seed.
class SplitMix {
 public:
  explicit SplitMix(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) (n > 0; the modulo bias is irrelevant for tests).
  uint64_t below(uint64_t n) { return next() % n; }

 private:
  uint64_t s_;
};

}  // namespace hvtest
