// Bitmap physical memory manager (see pmm.h).
#include "arch/x86/pmm.h"

#include "arch/x86/format.h"
#include "arch/x86/percpu.h"
#include "arch/x86/spinlock.h"
#include "arch/x86/string.h"

extern "C" char _kernel_start[], _kernel_end[];

namespace x86::pmm {
namespace {

constexpr uint64_t kLowLimit = 1ull << 20;     // nothing below 1 MiB is managed
constexpr uint64_t kBitmapLimit = 4ull << 30;  // the bitmap must be inside the boot map

struct Range {
  uint64_t start, end;  // [start, end)
};

// The PMM lock guards the bitmap's contents, the free count and the allocation hint: every
// allocation and free is a read-modify-write of bitmap words that other CPUs change too.
x86::SpinLock g_lock;
uint64_t g_free GUARDED_BY(g_lock) = 0;
uint64_t g_next_word GUARDED_BY(g_lock) = 0;  // next-fit hint for 4 KiB allocations

// Set once by init() on the bootstrap CPU before any other CPU runs, read-only afterwards, so
// not guarded: the bitmap's place and size, the boot statistics, the trampoline page and the
// reserved ranges. (The APs start after init(); the MFENCE before each INIT IPI in
// arch/x86/smp.cpp orders init()'s stores before the AP's first instruction.)
uint64_t* g_bitmap PT_GUARDED_BY(g_lock) = nullptr;  // 1 bit per frame, 1 = used
uint64_t g_frames = 0;                               // frames covered by the bitmap
uint64_t g_words = 0;
Stats g_stats = {};
uint64_t g_trampoline = 0;

Range g_reserved[4 + mb2::BootInfo::kMaxModules];
unsigned g_reserved_count = 0;

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }
uint64_t align_down(uint64_t v, uint64_t a) { return v & ~(a - 1); }

void reserve(uint64_t start, uint64_t end) {
  if (end > start) g_reserved[g_reserved_count++] = {align_down(start, k4K), align_up(end, k4K)};
}

bool overlaps_reserved(uint64_t start, uint64_t end, uint64_t* skip_to) {
  for (unsigned i = 0; i < g_reserved_count; i++) {
    if (start < g_reserved[i].end && g_reserved[i].start < end) {
      *skip_to = g_reserved[i].end;
      return true;
    }
  }
  return false;
}

void set_used(uint64_t frame) REQUIRES(g_lock) { g_bitmap[frame / 64] |= 1ull << (frame % 64); }
void set_free(uint64_t frame) REQUIRES(g_lock) { g_bitmap[frame / 64] &= ~(1ull << (frame % 64)); }
bool is_used(uint64_t frame) REQUIRES(g_lock) { return (g_bitmap[frame / 64] >> (frame % 64)) & 1; }

// Marks the frames that overlap [start, end) used (for reserved ranges).
void mark_used(uint64_t start, uint64_t end) REQUIRES(g_lock) {
  g_lock.assert_held();
  uint64_t f0 = start / k4K, f1 = align_up(end, k4K) / k4K;
  if (f1 > g_frames) f1 = g_frames;
  for (uint64_t f = f0; f < f1; f++) set_used(f);
}

// Marks the frames entirely inside [start, end) free.
void mark_free(uint64_t start, uint64_t end) REQUIRES(g_lock) {
  g_lock.assert_held();
  uint64_t f0 = align_up(start, k4K) / k4K, f1 = align_down(end, k4K) / k4K;
  if (f1 > g_frames) f1 = g_frames;
  for (uint64_t f = f0; f < f1; f++) set_free(f);
}

char g_error[96];

}  // namespace

const char* init(const mb2::BootInfo& boot) {
  // What must never be handed out, besides non-usable ranges.
  reserve(reinterpret_cast<uint64_t>(_kernel_start), reinterpret_cast<uint64_t>(_kernel_end));
  reserve(boot.info_start, boot.info_end);
  for (unsigned i = 0; i < boot.module_count; i++) reserve(boot.modules[i].start, boot.modules[i].end);

  // Size the bitmap from the highest usable address.
  uint64_t top = 0;
  g_stats.usable_bytes = 0;
  g_stats.usable_ranges = 0;
  for (unsigned i = 0; i < boot.mmap_count; i++) {
    const mb2::MemoryRange& r = boot.mmap[i];
    if (r.type != mb2::kAvailable) continue;
    g_stats.usable_bytes += r.length;
    g_stats.usable_ranges++;
    if (r.base + r.length > top) top = r.base + r.length;
  }
  top = align_down(top, k4K);
  g_stats.top = top;
  g_frames = top / k4K;
  g_words = (g_frames + 63) / 64;
  const uint64_t bitmap_bytes = align_up(g_words * 8, k4K);

  // Place the bitmap: the first usable, unreserved spot above 1 MiB and below 4 GiB.
  uint64_t where = 0;
  for (unsigned i = 0; i < boot.mmap_count && !where; i++) {
    const mb2::MemoryRange& r = boot.mmap[i];
    if (r.type != mb2::kAvailable) continue;
    uint64_t end = r.base + r.length;
    if (end > kBitmapLimit) end = kBitmapLimit;
    uint64_t cand = align_up(r.base < kLowLimit ? kLowLimit : r.base, k4K);
    uint64_t skip;
    while (cand + bitmap_bytes <= end) {
      if (!overlaps_reserved(cand, cand + bitmap_bytes, &skip)) {
        where = cand;
        break;
      }
      cand = align_up(skip, k4K);
    }
  }
  if (!where) {
    x86::format(g_error, sizeof g_error, "no room below 4 GiB for the %lu KiB frame bitmap", bitmap_bytes >> 10);
    return g_error;
  }
  // Also, a firmware range of another type may overlap a usable one: checked below by
  // re-marking, and the bitmap spot must not be one of those either.
  for (unsigned i = 0; i < boot.mmap_count; i++) {
    const mb2::MemoryRange& r = boot.mmap[i];
    if (r.type != mb2::kAvailable && where < r.base + r.length && r.base < where + bitmap_bytes) {
      x86::format(g_error, sizeof g_error, "frame bitmap at 0x%lx overlaps firmware range 0x%lx", where, r.base);
      return g_error;
    }
  }
  g_bitmap = reinterpret_cast<uint64_t*>(where);
  reserve(where, where + bitmap_bytes);

  // Only this CPU runs yet, but the bitmap and the free count are the lock's: take it, so the
  // contract has no exception (it costs one uncontended CAS at boot).
  x86::SpinLockGuard guard(g_lock);
  memset(g_bitmap, 0xFF, bitmap_bytes);
  for (unsigned i = 0; i < boot.mmap_count; i++) {
    const mb2::MemoryRange& r = boot.mmap[i];
    if (r.type != mb2::kAvailable) continue;
    uint64_t start = r.base < kLowLimit ? kLowLimit : r.base;
    if (start < r.base + r.length) mark_free(start, r.base + r.length);
  }
  for (unsigned i = 0; i < boot.mmap_count; i++) {
    const mb2::MemoryRange& r = boot.mmap[i];
    if (r.type != mb2::kAvailable) mark_used(r.base, r.base + r.length);
  }
  for (unsigned i = 0; i < g_reserved_count; i++) mark_used(g_reserved[i].start, g_reserved[i].end);

  g_free = 0;
  for (uint64_t w = 0; w < g_words; w++) g_free += 64 - __builtin_popcountll(g_bitmap[w]);
  // Bits past g_frames in the last word are set by the memset, so they never count as free.
  g_stats.managed_frames = g_free;

  // The AP trampoline page: the highest usable page in [4 KiB, 640 KiB) that no firmware
  // range claims (the EBDA and the BIOS area are reserved in the map).
  for (unsigned i = 0; i < boot.mmap_count; i++) {
    const mb2::MemoryRange& r = boot.mmap[i];
    if (r.type != mb2::kAvailable || r.base >= 0xA0000) continue;
    uint64_t end = r.base + r.length;
    if (end > 0xA0000) end = 0xA0000;
    uint64_t page = align_down(end, k4K);
    if (page < k4K) continue;
    page -= k4K;
    if (page < align_up(r.base, k4K) || page < k4K) continue;
    bool clash = false;
    for (unsigned j = 0; j < boot.mmap_count; j++) {
      const mb2::MemoryRange& o = boot.mmap[j];
      if (o.type != mb2::kAvailable && page < o.base + o.length && o.base < page + k4K) clash = true;
    }
    uint64_t skip;
    if (!clash && !overlaps_reserved(page, page + k4K, &skip) && page > g_trampoline) g_trampoline = page;
  }
  return nullptr;
}

// The allocators search and mark under the lock and zero outside it: the frames are ours
// once marked, and zeroing 2 MiB under the lock would stall every other CPU's allocation.
namespace {

uint64_t take_4k() REQUIRES(g_lock) {
  g_lock.assert_held();
  for (uint64_t n = 0; n < g_words; n++) {
    const uint64_t w = (g_next_word + n) % g_words;
    if (g_bitmap[w] == ~0ull) continue;
    const uint64_t frame = w * 64 + __builtin_ctzll(~g_bitmap[w]);
    if (frame >= g_frames) continue;
    set_used(frame);
    g_free--;
    g_next_word = w;
    return frame * k4K;
  }
  return 0;
}

uint64_t take_2m() REQUIRES(g_lock) {
  g_lock.assert_held();
  constexpr uint64_t kWordsPer2M = k2M / k4K / 64;  // 8
  for (uint64_t w = 0; w + kWordsPer2M <= g_words; w += kWordsPer2M) {
    bool all_free = true;
    for (uint64_t i = 0; i < kWordsPer2M; i++) {
      if (g_bitmap[w + i] != 0) {
        all_free = false;
        break;
      }
    }
    if (!all_free) continue;
    for (uint64_t i = 0; i < kWordsPer2M; i++) g_bitmap[w + i] = ~0ull;
    g_free -= 512;
    return w * 64 * k4K;
  }
  return 0;
}

uint64_t take_pages(unsigned count) REQUIRES(g_lock) {
  g_lock.assert_held();
  uint64_t run = 0;
  for (uint64_t f = 0; f < g_frames; f++) {
    if ((f % 64) == 0 && g_bitmap[f / 64] == ~0ull) {  // skip full words quickly
      run = 0;
      f += 63;
      continue;
    }
    run = is_used(f) ? 0 : run + 1;
    if (run == count) {
      const uint64_t first = f + 1 - count;
      for (uint64_t i = first; i <= f; i++) set_used(i);
      g_free -= count;
      return first * k4K;
    }
  }
  return 0;
}

}  // namespace

uint64_t alloc_4k(bool zero) {
  uint64_t pa;
  {
    x86::SpinLockGuard guard(g_lock);
    pa = take_4k();
  }
  if (pa && zero) memset(reinterpret_cast<void*>(pa), 0, k4K);
  return pa;
}

uint64_t alloc_2m(bool zero) {
  uint64_t pa;
  {
    x86::SpinLockGuard guard(g_lock);
    pa = take_2m();
  }
  if (pa && zero) memset(reinterpret_cast<void*>(pa), 0, k2M);
  return pa;
}

uint64_t alloc_pages(unsigned count, bool zero) {
  if (count == 0) return 0;
  if (count == 1) return alloc_4k(zero);
  uint64_t pa;
  {
    x86::SpinLockGuard guard(g_lock);
    pa = take_pages(count);
  }
  if (pa && zero) memset(reinterpret_cast<void*>(pa), 0, count * k4K);
  return pa;
}

namespace {

// First aligned run of `count` free frames (as a frame number), or g_frames. Only aligned
// starts are candidates; a candidate fails at its first used frame (whole free words are
// skipped 64 frames at a time).
uint64_t find_aligned_run(uint64_t count, uint64_t step) REQUIRES(g_lock) {
  g_lock.assert_held();
  for (uint64_t first = 0; first + count <= g_frames; first += step) {
    bool free = true;
    for (uint64_t f = first; f < first + count && free;) {
      if ((f % 64) == 0 && f + 64 <= first + count && g_bitmap[f / 64] == 0) {
        f += 64;
        continue;
      }
      if (is_used(f)) free = false;
      f++;
    }
    if (free) return first;
  }
  return g_frames;
}

bool aligned_args_ok(uint64_t count, uint64_t align) { return count && align >= k4K && !(align & (align - 1)); }

// Zeroing with 8-byte stores: a whole GiB with REP STOSB is too slow under emulation.
void zero_qwords(uint64_t pa, uint64_t bytes) {
  void* d = reinterpret_cast<void*>(pa);
  uint64_t n = bytes / 8;
  asm volatile("rep stosq" : "+D"(d), "+c"(n) : "a"(0ull) : "memory");
}

}  // namespace

bool aligned_run_free(uint64_t count, uint64_t align) {
  if (!aligned_args_ok(count, align)) return false;
  x86::SpinLockGuard guard(g_lock);
  return find_aligned_run(count, align / k4K) < g_frames;
}

uint64_t alloc_aligned(uint64_t count, uint64_t align, bool zero) {
  if (!aligned_args_ok(count, align)) return 0;
  uint64_t pa = 0;
  {
    x86::SpinLockGuard guard(g_lock);
    const uint64_t first = find_aligned_run(count, align / k4K);
    if (first < g_frames) {
      for (uint64_t f = first; f < first + count; f++) set_used(f);
      g_free -= count;
      pa = first * k4K;
    }
  }
  if (pa && zero) zero_qwords(pa, count * k4K);
  return pa;
}

void free_4k(uint64_t pa) {
  uint64_t frame = pa / k4K;
  if ((pa & (k4K - 1)) || frame >= g_frames) return;
  x86::SpinLockGuard guard(g_lock);
  if (is_used(frame)) {
    set_free(frame);
    g_free++;
  }
}

void free_2m(uint64_t pa) {
  if (pa & (k2M - 1)) return;
  for (uint64_t off = 0; off < k2M; off += k4K) free_4k(pa + off);
}

Stats stats() {
  Stats s = g_stats;
  x86::SpinLockGuard guard(g_lock);
  s.free_frames = g_free;
  return s;
}

uint64_t trampoline_page() { return g_trampoline; }

const char* ensure_trampoline_page(mb2::BootInfo& boot) {
  if (g_trampoline) return nullptr;
  // The smallest module entirely inside usable RAM in [4 KiB, 640 KiB): its pages are GRUB's
  // copy of a file, needed only where hv reads it, so it can live anywhere.
  int best = -1;
  for (unsigned i = 0; i < boot.module_count; i++) {
    const mb2::Module& m = boot.modules[i];
    if (m.start < k4K || m.end > 0xA0000 || m.end <= m.start || (m.start & (k4K - 1))) continue;
    bool usable = false, clash = false;
    for (unsigned j = 0; j < boot.mmap_count; j++) {
      const mb2::MemoryRange& r = boot.mmap[j];
      const bool overlaps = m.start < r.base + r.length && r.base < m.start + k4K;
      if (r.type == mb2::kAvailable && r.base <= m.start && m.start + k4K <= r.base + r.length) usable = true;
      else if (r.type != mb2::kAvailable && overlaps) clash = true;
    }
    if (!usable || clash) continue;
    if (best < 0 || m.end - m.start < boot.modules[best].end - boot.modules[best].start) best = static_cast<int>(i);
  }
  if (best < 0) return nullptr;
  mb2::Module& m = boot.modules[best];
  const uint64_t bytes = m.end - m.start;
  const uint64_t to = alloc_pages(static_cast<unsigned>(align_up(bytes, k4K) / k4K), false);
  if (!to) return nullptr;
  memcpy(reinterpret_cast<void*>(to), reinterpret_cast<const void*>(m.start), bytes);
  // The old frames stay out of the allocator (below 1 MiB nothing is handed out): the first
  // becomes the trampoline, the rest are simply not used.
  g_trampoline = m.start;
  m.start = to;
  m.end = to + bytes;
  return m.cmdline ? m.cmdline : "?";
}

}  // namespace x86::pmm
