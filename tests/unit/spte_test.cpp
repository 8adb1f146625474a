// SPTE encodings: every bit the hardware and the MMU rely on, and the software markers.
#include <catch2/catch.hpp>

#include "mmu/spte.h"
#include "mmu/spte_ops.h"

using namespace mmu;
using namespace mmu::spte;

TEST_CASE("spte: leaf encodings per level", "[spte]") {
  const spte_t l4k = make_leaf(0x1234000, 1, kAccRead | kAccWrite | kAccExec, true);
  REQUIRE(is_present(l4k));
  REQUIRE(is_leaf(l4k, 1));
  REQUIRE((l4k & kLarge) == 0);
  REQUIRE(pfn_addr(l4k) == 0x1234000);
  REQUIRE(leaf_access(l4k) == 7);
  REQUIRE(((l4k & kMemTypeMask) >> kMemTypeShift) == kMemTypeWb);
  REQUIRE((l4k & kIgnorePat) != 0);
  REQUIRE((l4k & kHostWritable) != 0);

  const spte_t l2m = make_leaf(0x40200000, 2, kAccRead, false);
  REQUIRE(is_leaf(l2m, 2));
  REQUIRE((l2m & kLarge) != 0);
  REQUIRE(leaf_access(l2m) == kAccRead);

  // W is never granted when the backing is not host-writable (read-only slot).
  const spte_t ro = make_leaf(0x1000, 1, kAccRead | kAccWrite, false);
  REQUIRE((ro & kWrite) == 0);
  REQUIRE((ro & kHostWritable) == 0);

  const spte_t g1 = make_leaf(0x80000000ull, 3, 7, true);
  REQUIRE(is_leaf(g1, 3));
  REQUIRE(!is_table(g1, 3));
  // Top bits of the PFN field survive; bits above 51 never leak in from a bad address.
  REQUIRE(pfn_addr(make_leaf(0x000F'FFFF'FFFF'F000ull, 1, 1, false)) == 0x000F'FFFF'FFFF'F000ull);
  REQUIRE((make_leaf(0xFFF0'0000'0000'0000ull, 1, 1, false) & ~kPfnMask & (spte_t{0x7FF} << 52) &
           ~kHostWritable) == 0);
}

TEST_CASE("spte: table links grant RWX and keep reserved bits clear", "[spte]") {
  const spte_t t = make_table(0xABC000);
  REQUIRE(is_table(t, 4));
  REQUIRE(is_table(t, 2));
  REQUIRE((t & kRwx) == kRwx);
  REQUIRE((t & (kMemTypeMask | kIgnorePat | kLarge)) == 0);
  REQUIRE(pfn_addr(t) == 0xABC000);
  // At level 1 there are no tables: every present PTE is a leaf.
  REQUIRE(is_leaf(t, 1));
}

TEST_CASE("spte: FROZEN and MMIO markers are never live mappings", "[spte]") {
  REQUIRE(!is_present(kFrozen));
  REQUIRE((kFrozen & kRwx) == 0);  // the CPU sees "not present"
  REQUIRE(is_frozen(kFrozen));
  REQUIRE(!is_frozen(0));
  REQUIRE(!is_mmio(kFrozen));
  for (int level = 1; level <= 5; level++) {
    REQUIRE(!is_leaf(kFrozen, level));
    REQUIRE(!is_table(kFrozen, level));
  }
  // Clearing Accessed on a FROZEN entry (a racing ager) leaves it FROZEN.
  REQUIRE((kFrozen & ~kAccessed) == kFrozen);

  const spte_t m = make_mmio(0xABCDE);
  REQUIRE(is_mmio(m));
  REQUIRE(!is_present(m));
  REQUIRE((m & kRwx) == kWrite);  // W without R: an EPT misconfiguration, by design
  REQUIRE(mmio_generation(m) == 0xABCDE);
  REQUIRE(mmio_generation(make_mmio(kMmioGenMask + 5)) == 4);  // wraps within its field
  // A live leaf is never an MMIO marker.
  REQUIRE(!is_mmio(make_leaf(0x1000, 1, kAccWrite, true)));
  REQUIRE(!is_mmio(0));
}

TEST_CASE("spte: level arithmetic", "[spte]") {
  REQUIRE(pages_per_entry(1) == 1);
  REQUIRE(pages_per_entry(2) == 512);
  REQUIRE(pages_per_entry(3) == 512 * 512);
  REQUIRE(index_of(0x12345, 1) == (0x12345 & 511));
  REQUIRE(index_of(0x12345, 2) == ((0x12345 >> 9) & 511));
  REQUIRE(align_down(0x12345, 2) == 0x12200);
  REQUIRE(align_down(0x12345, 3) == 0);
}

TEST_CASE("spte: splitting a huge leaf keeps attributes and advances the PFN", "[spte]") {
  const spte_t huge = make_leaf(0x40000000ull, 3, kAccRead | kAccExec, true) | kAccessed | kDirty;
  for (unsigned i : {0u, 1u, 511u}) {
    const spte_t c = split_child(huge, 3, i);
    REQUIRE(is_leaf(c, 2));
    REQUIRE((c & kLarge) != 0);
    REQUIRE(pfn_addr(c) == 0x40000000ull + i * 0x200000ull);
    REQUIRE((c & ~kPfnMask) == (huge & ~kPfnMask));
  }
  const spte_t h2 = make_leaf(0x200000, 2, 7, true);
  const spte_t c = split_child(h2, 2, 3);
  REQUIRE(is_leaf(c, 1));
  REQUIRE((c & kLarge) == 0);
  REQUIRE(pfn_addr(c) == 0x203000);
}

namespace {
struct Rec {
  int writes = 0;
  spte_t last_old = 0, last_new = 0;
};
void record(void* ctx, spte_t*, spte_t o, spte_t n, int) {
  auto* r = static_cast<Rec*>(ctx);
  r->writes++;
  r->last_old = o;
  r->last_new = n;
}
}  // namespace

TEST_CASE("spte ops: every write that takes effect reaches the recorder", "[spte]") {
  Rec rec;
  g_spte_recorder = {record, &rec};
  spte_t word = 0;
  spte_store(&word, 5, 1);
  REQUIRE(rec.writes == 1);
  REQUIRE(rec.last_new == 5);
  spte_t expected = 4;
  REQUIRE(!spte_cmpxchg(&word, expected, 9, 1));
  REQUIRE(expected == 5);
  REQUIRE(rec.writes == 1);  // a failed CAS wrote nothing
  REQUIRE(spte_cmpxchg(&word, expected, 9, 1));
  REQUIRE(rec.writes == 2);
  REQUIRE(rec.last_old == 5);
  REQUIRE(spte_exchange(&word, 0, 1) == 9);
  REQUIRE(rec.writes == 3);
  word = kAccessed | 1;
  REQUIRE(spte_clear_bits(&word, kAccessed, 1) == (kAccessed | 1));
  REQUIRE(word == 1);
  REQUIRE(rec.writes == 4);
  spte_clear_bits(&word, kAccessed, 1);  // nothing to clear: no write recorded
  REQUIRE(rec.writes == 4);
  g_spte_recorder = {};
}
