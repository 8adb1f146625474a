// The EPT SPTE: bit layout of an entry of our EPT paging structures, and pure encoders/decoders.
//
// Hardware layout (Intel SDM vol. 3C, "EPT paging-structure entries"):
//   bit 0 R, 1 W, 2 X (supervisor execute when mode-based execute control is on)
//   bits 5:3 memory type and bit 6 ignore-PAT (leaf entries only; reserved-zero in non-leaf ones)
//   bit 7 large page (PDPTE/PDE: the entry maps 1 GiB / 2 MiB; ignored in a PTE)
//   bit 8 accessed, bit 9 dirty (leaf only), written by the CPU when EPTP[6] enables A/D
//   bit 10 user-mode execute (mode-based execute control), bit 11 ignored
//   bits 51:12 PFN (of the next table or of the mapped page); bits above MAXPHYADDR reserved
//   bits 62:52 ignored, except 57/58/60/61 when optional features (guest-paging verification,
//   shadow stacks, sub-page permissions) are enabled - we never enable them and never use them
//   bit 63 suppress #VE (only meaningful when the "EPT-violation #VE" control is on; we keep it 0)
// An entry whose bits 2:0 are all zero is not present: the CPU ignores bits 62:3 of it. That is
// what lets us keep software state (FROZEN, MMIO markers) in non-present entries.
#pragma once

#include "mmu/types.h"

namespace mmu {

using spte_t = uint64_t;

namespace spte {

inline constexpr spte_t kRead = spte_t{1} << 0;
inline constexpr spte_t kWrite = spte_t{1} << 1;
inline constexpr spte_t kExec = spte_t{1} << 2;
inline constexpr spte_t kRwx = kRead | kWrite | kExec;
inline constexpr unsigned kMemTypeShift = 3;
inline constexpr spte_t kMemTypeMask = spte_t{7} << kMemTypeShift;
inline constexpr spte_t kIgnorePat = spte_t{1} << 6;
inline constexpr spte_t kLarge = spte_t{1} << 7;
inline constexpr spte_t kAccessed = spte_t{1} << 8;
inline constexpr spte_t kDirty = spte_t{1} << 9;
inline constexpr spte_t kUserExec = spte_t{1} << 10;
inline constexpr spte_t kPfnMask = 0x000F'FFFF'FFFF'F000ull;  // bits 51:12
inline constexpr spte_t kSuppressVe = spte_t{1} << 63;

// Software bits. Bit 11 is ignored by the CPU in every EPT entry; 52-56, 59 and 62 are ignored
// as long as the optional features listed above stay off.
// "MMU-present": the entry is a live mapping or link that the MMU manages. Unlike "bits 2:0 != 0"
// it does not depend on permissions, and neither FROZEN nor an MMIO marker ever carries it.
inline constexpr spte_t kMmuPresent = spte_t{1} << 11;
// The backing allows writes (slot not read-only): W may be granted. Leaf only.
inline constexpr spte_t kHostWritable = spte_t{1} << 52;
// Marks an MMIO/unbacked marker; its generation sits in the (unused) PFN field.
inline constexpr spte_t kMmioMark = spte_t{1} << 62;
inline constexpr spte_t kFrozenMark = spte_t{1} << 59;

// EPT memory type write-back (SDM: 0 UC, 1 WC, 4 WT, 5 WP, 6 WB; 2, 3, 7 are reserved and make
// a leaf misconfigured).
inline constexpr unsigned kMemTypeWb = 6;

// FROZEN: the placeholder a CPU writes (with a CAS or exchange) into an entry it is replacing,
// so that every other CPU's CAS on that entry fails and retries until the replacement is done.
// Bits 2:0 are zero, so the CPU's page walk treats it as not present (an EPT violation, which
// the fault path answers with "retry"); it has no MMU-present bit, no A/D bits (aging's
// fetch_and on a racing FROZEN entry leaves it unchanged) and no MMIO mark, so no live mapping
// and no marker can ever equal it. It is never zero, so a CAS that expects "empty" fails on it.
inline constexpr spte_t kFrozen = kFrozenMark | (spte_t{5} << kMemTypeShift) | kLarge;

// A dead table (unlinked, waiting for its flush and grace period) is chained to the next one
// through its entry 0, encoded like FROZEN (non-present, never zero, never MMU-present), so a
// walker that still looks at the dead table sees "being replaced" there and retries.
inline constexpr spte_t make_dead_link(hpa_t next) { return kFrozenMark | (next & kPfnMask); }
inline constexpr hpa_t dead_link_next(spte_t s) { return s & kPfnMask; }

// An MMIO/unbacked marker is W-only (R=0, W=1): an EPT *misconfiguration*, so a guest access
// exits through the misconfiguration path (fast MMIO emulation) instead of the violation path.
// It carries the memslot generation it was created under; a marker from an older generation is
// stale (the gfn may be backed now) and is zapped and refaulted.
inline constexpr unsigned kMmioGenShift = 12;
inline constexpr uint64_t kMmioGenMask = (uint64_t{1} << 40) - 1;  // fits in bits 51:12

// --- Layout facts, pinned ---
static_assert(kRwx == 0x7, "EPT R/W/X are bits 0..2");
static_assert(kMemTypeMask == 0x38 && kIgnorePat == 0x40 && kLarge == 0x80, "bits 3-7");
static_assert(kAccessed == 0x100 && kDirty == 0x200 && kUserExec == 0x400, "bits 8-10");
static_assert(kPfnMask == (((spte_t{1} << 52) - 1) & ~spte_t{0xFFF}), "PFN is bits 51:12");
static_assert((kMmuPresent & (kRwx | kMemTypeMask | kIgnorePat | kLarge | kAccessed | kDirty |
                              kUserExec | kPfnMask)) == 0,
              "MMU-present must sit in a bit the CPU ignores");
static_assert((kFrozen & kRwx) == 0, "FROZEN must be non-present to the CPU");
static_assert((kFrozen & (kMmuPresent | kMmioMark | kAccessed | kDirty)) == 0,
              "FROZEN must not look like a mapping, a marker or carry A/D");
static_assert(kFrozen != 0, "FROZEN must differ from an empty entry");
static_assert(((kHostWritable | kMmioMark | kFrozenMark) &
               ((spte_t{0xF} << 57) & ~(spte_t{1} << 59))) == 0,
              "software bits avoid 57, 58, 60, 61 (optional EPT features)");

// --- Levels: 1 = 4 KiB PTE, 2 = PDE (2 MiB), 3 = PDPTE (1 GiB), 4 = PML4E, 5 = PML5E ---
inline constexpr int kMaxLevels = 5;
inline constexpr int kMaxHugeLevel = 3;
inline constexpr unsigned kEntriesPerTable = 512;
inline constexpr unsigned level_shift(int level) { return 9u * static_cast<unsigned>(level - 1); }
// Number of 4 KiB frames one entry at `level` spans.
inline constexpr uint64_t pages_per_entry(int level) { return uint64_t{1} << level_shift(level); }
inline constexpr unsigned index_of(gfn_t gfn, int level) {
  return static_cast<unsigned>((gfn >> level_shift(level)) & (kEntriesPerTable - 1));
}
inline constexpr gfn_t align_down(gfn_t gfn, int level) { return gfn & ~(pages_per_entry(level) - 1); }

// --- Predicates ---
inline constexpr bool is_present(spte_t s) { return (s & kMmuPresent) != 0; }
inline constexpr bool is_frozen(spte_t s) { return s == kFrozen; }
inline constexpr bool is_mmio(spte_t s) { return (s & (kMmioMark | kRwx)) == (kMmioMark | kWrite); }
// A leaf: maps memory. At level 1 every present entry is a leaf; above, bit 7 says so.
inline constexpr bool is_leaf(spte_t s, int level) {
  return is_present(s) && (level == 1 || (s & kLarge) != 0);
}
inline constexpr bool is_table(spte_t s, int level) { return is_present(s) && !is_leaf(s, level); }
inline constexpr hpa_t pfn_addr(spte_t s) { return s & kPfnMask; }
inline constexpr bool is_accessed(spte_t s) { return (s & kAccessed) != 0; }

// Access kinds of a fault (and permission bits of a leaf): a subset of R/W/X.
enum Access : unsigned { kAccRead = 1, kAccWrite = 2, kAccExec = 4 };

// --- Encoders ---
// A link to a child table. Permissions are ANDed along the walk, so links grant everything and
// leaves restrict. Bits 6:3 are reserved in non-leaf entries and must stay zero.
inline constexpr spte_t make_table(hpa_t child) { return (child & kPfnMask) | kRwx | kMmuPresent; }

// A leaf mapping `hpa` (aligned to the level's size) with permissions `access` (R/W/X subset;
// W only if host_writable), write-back memory type with ignore-PAT.
inline constexpr spte_t make_leaf(hpa_t hpa, int level, unsigned access, bool host_writable) {
  spte_t s = (hpa & kPfnMask) | kMmuPresent | (spte_t{kMemTypeWb} << kMemTypeShift) | kIgnorePat;
  if (access & kAccRead) s |= kRead;
  if ((access & kAccWrite) && host_writable) s |= kWrite;
  if (access & kAccExec) s |= kExec;
  if (host_writable) s |= kHostWritable;
  if (level > 1) s |= kLarge;
  return s;
}

inline constexpr spte_t make_mmio(uint64_t generation) {
  return kMmioMark | kWrite | ((generation & kMmioGenMask) << kMmioGenShift);
}
inline constexpr uint64_t mmio_generation(spte_t s) { return (s >> kMmioGenShift) & kMmioGenMask; }

// Permissions (Access bits) a leaf grants.
inline constexpr unsigned leaf_access(spte_t s) { return static_cast<unsigned>(s & kRwx); }

// The leaf that maps the `child_index`-th part of huge leaf `huge` one level down (for splits):
// same attributes, PFN advanced by the child's span, large bit only if the child is still huge.
inline constexpr spte_t split_child(spte_t huge, int huge_level, unsigned child_index) {
  const int child_level = huge_level - 1;
  spte_t s = huge & ~kPfnMask;
  s = child_level == 1 ? (s & ~kLarge) : (s | kLarge);
  const hpa_t hpa = pfn_addr(huge) + (hpa_t{child_index} * pages_per_entry(child_level) << kPageShift);
  return s | (hpa & kPfnMask);
}

static_assert(!is_present(make_dead_link(0)) && make_dead_link(0) != 0 && !is_mmio(make_dead_link(0)));
static_assert((make_dead_link(0x5000) & kRwx) == 0 && dead_link_next(make_dead_link(0x5000)) == 0x5000);
static_assert(!is_present(kFrozen) && !is_mmio(kFrozen) && !is_present(make_mmio(5)));
static_assert(is_mmio(make_mmio(0)) && mmio_generation(make_mmio(0x123)) == 0x123);
static_assert(is_leaf(make_leaf(0x200000, 2, kAccRead, false), 2));
static_assert(is_table(make_table(0x1000), 2) && !is_leaf(make_table(0x1000), 2));
static_assert((make_table(0x1000) & (kMemTypeMask | kIgnorePat | kLarge)) == 0);

}  // namespace spte
}  // namespace mmu
