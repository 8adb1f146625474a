// Data guarded by a lock under test, laid out so that an overlap shows: a writer keeps a == b
// and rewrites `words` to a pattern derived from a, so a reader (or a second writer) that a
// writer overlaps finds a torn value. Used by the lock stress tests of every lock kind.
#pragma once

#include <cstdint>

namespace hvtest {

struct TornData {
  uint64_t a = 0;
  uint64_t b = 0;
  uint64_t words[8] = {0, 1, 2, 3, 4, 5, 6, 7};  // consistent for a == 0
};

inline bool consistent(const TornData& p) {
  if (p.a != p.b) return false;
  for (uint64_t i = 0; i < 8; i++)
    if (p.words[i] != p.a * 8 + i) return false;
  return true;
}

// One writer's update: a first, the words, b last (a reader between them sees a != b).
inline void write_one(TornData& p) {
  p.a++;
  for (uint64_t i = 0; i < 8; i++) p.words[i] = p.a * 8 + i;
  p.b++;
}

}  // namespace hvtest
