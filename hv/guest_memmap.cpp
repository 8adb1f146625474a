// The guest memory map (see guest_memmap.h).
#include "hv/guest_memmap.h"

namespace hv {

namespace {

// Appends [addr, addr + size) of `type`, merging with the previous entry when they touch and
// agree. False when the table is full.
bool append(E820Entry* out, unsigned max, unsigned& n, uint64_t addr, uint64_t size, uint32_t type) {
  if (!size) return true;
  if (n && out[n - 1].type == type && out[n - 1].addr + out[n - 1].size == addr) {
    out[n - 1].size += size;
    return true;
  }
  if (n == max) return false;
  out[n++] = E820Entry{addr, size, type};
  return true;
}

}  // namespace

unsigned build_guest_memmap(const RamRange* ram, unsigned count, E820Entry* out, unsigned max) {
  constexpr unsigned kMaxRanges = 32;
  if (!count || count > kMaxRanges) return 0;
  // Sort a copy by address (insertion sort: a handful of slots).
  RamRange r[kMaxRanges];
  unsigned m = 0;
  for (unsigned i = 0; i < count; i++) {
    if (!ram[i].bytes) continue;
    if (ram[i].gpa + ram[i].bytes < ram[i].gpa) return 0;  // wraps
    unsigned j = m++;
    for (; j && r[j - 1].gpa > ram[i].gpa; j--) r[j] = r[j - 1];
    r[j] = ram[i];
  }
  if (!m) return 0;
  for (unsigned i = 1; i < m; i++)
    if (r[i - 1].gpa + r[i - 1].bytes > r[i].gpa) return 0;
  unsigned n = 0;
  bool hole_done = false;
  for (unsigned i = 0; i < m; i++) {
    const uint64_t s = r[i].gpa, e = s + r[i].bytes;
    if (e <= kLegacyHoleStart || s >= kLegacyHoleEnd) {
      // Wholly outside the hole; the hole itself goes in before the first range above it, when
      // RAM below it exists.
      if (s >= kLegacyHoleEnd && !hole_done && n && out[n - 1].addr < kLegacyHoleStart) {
        if (!append(out, max, n, kLegacyHoleStart, kLegacyHoleEnd - kLegacyHoleStart, kE820Reserved)) return 0;
        hole_done = true;
      }
      if (!append(out, max, n, s, e - s, kE820Ram)) return 0;
      continue;
    }
    // Overlaps the hole: RAM below, the whole hole reserved, RAM above.
    if (s < kLegacyHoleStart && !append(out, max, n, s, kLegacyHoleStart - s, kE820Ram)) return 0;
    if (!hole_done) {
      if (!append(out, max, n, kLegacyHoleStart, kLegacyHoleEnd - kLegacyHoleStart, kE820Reserved)) return 0;
      hole_done = true;
    }
    if (e > kLegacyHoleEnd && !append(out, max, n, kLegacyHoleEnd, e - kLegacyHoleEnd, kE820Ram)) return 0;
  }
  return n;
}

}  // namespace hv
