// TdpIter: coverage, ordering, range bounds, re-read before descent, yield/restart progress,
// 4- and 5-level roots. Trees are built by hand here, independent of the fault path.
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "mmu/tdp_iter.h"
#include "tests/host/host_platform.h"

using namespace mmu;

namespace {

// A hand-built EPT tree: install leaves at chosen levels, creating tables as needed.
struct HandTree {
  hvtest::HostPlatform& p;
  int root_level;
  spte_t* root;
  std::vector<hpa_t> pages;

  HandTree(hvtest::HostPlatform& plat, int levels) : p(plat), root_level(levels) {
    root = table(alloc());
  }
  ~HandTree() {
    for (hpa_t a : pages) p.free_page(a);
  }
  hpa_t alloc() {
    hpa_t a = p.alloc_page();
    REQUIRE(a != 0);
    pages.push_back(a);
    return a;
  }
  spte_t* table(hpa_t a) { return static_cast<spte_t*>(p.phys_to_virt(a)); }
  // False (and nothing changed below the conflict) if a leaf or table is in the way.
  bool map(gfn_t gfn, int level) {
    spte_t* t = root;
    for (int l = root_level; l > level; l--) {
      spte_t& e = t[spte::index_of(gfn, l)];
      if (!spte::is_present(e)) e = spte::make_table(alloc());
      if (!spte::is_table(e, l)) return false;
      t = table(spte::pfn_addr(e));
    }
    spte_t& leaf = t[spte::index_of(gfn, level)];
    if (spte::is_present(leaf)) return false;
    leaf = spte::make_leaf(spte::align_down(gfn, level) << 12, level, 7, true);
    return true;
  }
  // Reference: every (level, gfn) entry a pre-order walk of [start,end) to min_level must visit.
  void expect(spte_t* t, int level, gfn_t base, gfn_t start, gfn_t end, int min_level,
              std::vector<std::pair<int, gfn_t>>& out) {
    for (unsigned i = 0; i < 512; i++) {
      gfn_t g = base + i * spte::pages_per_entry(level);
      if (g + spte::pages_per_entry(level) <= start || g >= end) continue;
      out.push_back({level, g});
      if (level > min_level && spte::is_table(t[i], level))
        expect(table(spte::pfn_addr(t[i])), level - 1, g, start, end, min_level, out);
    }
  }
  std::vector<std::pair<int, gfn_t>> expected(gfn_t start, gfn_t end, int min_level) {
    std::vector<std::pair<int, gfn_t>> out;
    if (start >= end) return out;
    expect(root, root_level, 0, start, end, min_level, out);
    return out;
  }
};

std::vector<std::pair<int, gfn_t>> walk(hvtest::HostPlatform& p, HandTree& t, gfn_t s, gfn_t e,
                                        int min_level) {
  std::vector<std::pair<int, gfn_t>> out;
  for (TdpIter it(p, t.root, t.root_level, s, e, min_level); it.valid(); it.next()) {
    REQUIRE(*it.sptep() == it.old_spte);
    out.push_back({it.level(), it.gfn()});
  }
  return out;
}

}  // namespace

TEST_CASE("tdp_iter: empty root visits only root entries", "[iter]") {
  hvtest::HostPlatform p;
  HandTree t(p, 4);
  auto v = walk(p, t, 0, ~gfn_t{0}, 1);
  REQUIRE(v.size() == 512);
  REQUIRE(v.front() == std::make_pair(4, gfn_t{0}));
  REQUIRE(v.back().second == 511 * spte::pages_per_entry(4));
}

TEST_CASE("tdp_iter: pre-order coverage matches a reference walk", "[iter]") {
  hvtest::HostPlatform p;
  HandTree t(p, 4);
  t.map(0, 1);
  t.map(1, 1);
  t.map(511, 1);
  t.map(512, 2);
  t.map(0x40000, 3);           // 1 GiB leaf
  t.map(0x40000 * 3 + 7, 1);   // a 4K leaf in the 4th GiB
  t.map((gfn_t{1} << 27) + 5, 1);  // under the second PML4 entry
  struct Range { gfn_t s, e; int min; };
  for (Range r : {Range{0, ~gfn_t{0}, 1}, Range{0, 600, 1}, Range{1, 2, 1}, Range{511, 513, 1},
                  Range{3, 0x40000 * 4, 2}, Range{0x40001, 0x40002, 1},
                  Range{(gfn_t{1} << 27), (gfn_t{1} << 27) + 6, 1}, Range{0, ~gfn_t{0}, 3},
                  Range{100, 100, 1}}) {
    auto got = walk(p, t, r.s, r.e, r.min);
    auto want = t.expected(r.s, r.e, r.min);
    REQUIRE(got == want);
    // Ordering: gfns never decrease, parents precede their children.
    for (size_t i = 1; i < got.size(); i++) REQUIRE(got[i].second >= got[i - 1].second);
  }
}

TEST_CASE("tdp_iter: re-reads an entry before stepping into it", "[iter]") {
  hvtest::HostPlatform p;
  HandTree t(p, 4);
  t.map(0, 1);
  t.map(0x40000, 1);
  std::vector<std::pair<int, gfn_t>> seen;
  for (TdpIter it(p, t.root, 4, 0, 0x80000, 1); it.valid(); it.next()) {
    seen.push_back({it.level(), it.gfn()});
    // Unlink the first 1 GiB's table while positioned on its entry (as another CPU might):
    // the walk must not descend into it.
    if (it.level() == 3 && it.gfn() == 0) *it.sptep() = 0;
  }
  for (auto& e : seen) REQUIRE(!(e.first < 3 && e.second < 0x40000));
  REQUIRE(std::find(seen.begin(), seen.end(), std::make_pair(1, gfn_t{0x40000})) != seen.end());
}

TEST_CASE("tdp_iter: yield and restart keeps coverage and always progresses", "[iter]") {
  hvtest::HostPlatform p;
  HandTree t(p, 4);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 300; i++) t.map(rng() % (1 << 20), 1 + (i % 7 == 0));
  for (double prob : {0.0, 0.2, 1.0}) {
    std::set<std::pair<int, gfn_t>> got;
    uint64_t steps = 0, yields = 0;
    for (TdpIter it(p, t.root, 4, 10, 1 << 20, 1); it.valid(); it.next()) {
      steps++;
      REQUIRE(steps < 10'000'000);  // no livelock even when yielding at every chance
      if (it.may_yield() && std::uniform_real_distribution<>(0, 1)(rng) < prob) {
        yields++;
        it.mark_yielded();
        continue;
      }
      got.insert({it.level(), it.gfn()});
    }
    auto want = t.expected(10, 1 << 20, 1);
    REQUIRE(got == std::set<std::pair<int, gfn_t>>(want.begin(), want.end()));
    if (prob == 1.0) REQUIRE(yields > 100);
  }
}

TEST_CASE("tdp_iter: 5-level roots and the translatable range", "[iter]") {
  hvtest::HostPlatform p;
  HandTree t(p, 5);
  const gfn_t high = (gfn_t{1} << 40) + 3;  // above what a 4-level root translates
  t.map(high, 1);
  auto v = walk(p, t, high, high + 1, 1);
  REQUIRE(v.size() == 5);
  REQUIRE(v.back() == std::make_pair(1, high));
  // A 4-level root clamps the range at 2^36 frames: nothing beyond is visited.
  HandTree t4(p, 4);
  REQUIRE(walk(p, t4, gfn_t{1} << 36, ~gfn_t{0}, 1).empty());
  REQUIRE(walk(p, t4, (gfn_t{1} << 36) - 1, ~gfn_t{0}, 1).size() == 1);
}

// TdpPath (the fault's walker) must reach the same entries, in the same tables, as TdpIter
// walking the one-page range down to the same level.
TEST_CASE("tdp_path: the entries of a one-page TdpIter walk, for random trees and gfns", "[iter]") {
  hvtest::HostPlatform p;
  std::mt19937_64 rng(0x7d9a7);
  for (int levels : {4, 5}) {
    HandTree t(p, levels);
    const gfn_t span = gfn_t{1} << 20;  // 4 GiB: several tables at every level below the root
    for (int i = 0; i < 300; i++) t.map(rng() % span, 1 + static_cast<int>(rng() % 3));
    for (int i = 0; i < 2000; i++) {
      const gfn_t g = i % 4 == 0 ? (rng() % levels == 0 ? rng() % (gfn_t{1} << 35) : rng() % span) : rng() % span;
      const int goal = 1 + static_cast<int>(rng() % 3);
      // TdpIter: the entries covering g, root first, down to `goal` or to the first non-link.
      std::vector<std::pair<int, spte_t*>> want;
      for (TdpIter it(p, t.root, levels, g, g + 1, goal); it.valid(); it.next()) want.push_back({it.level(), it.sptep()});
      TdpPath path(p, t.root, levels, g);
      std::vector<std::pair<int, spte_t*>> got{{path.level(), path.sptep()}};
      REQUIRE(path.gfn() == spte::align_down(g, levels));
      while (path.level() > goal) {
        const spte_t before = path.old_spte;
        if (!path.step_down()) {
          REQUIRE_FALSE(spte::is_table(before, path.level()));
          break;
        }
        REQUIRE(path.table() == static_cast<spte_t*>(p.phys_to_virt(spte::pfn_addr(before))));
        REQUIRE(path.gfn() == spte::align_down(g, path.level()));
        REQUIRE(path.old_spte == *path.sptep());
        got.push_back({path.level(), path.sptep()});
      }
      REQUIRE(got == want);
    }
  }
}

TEST_CASE("tdp_path: re-reads an entry before stepping into it", "[iter]") {
  hvtest::HostPlatform p;
  HandTree t(p, 4);
  t.map(0x40000 + 3, 1);
  TdpPath path(p, t.root, 4, 0x40000 + 3);
  REQUIRE(path.step_down());  // into the PDPT
  REQUIRE(path.level() == 3);
  REQUIRE(spte::is_table(path.old_spte, 3));
  // Another CPU unlinks the directory after we read the link: the walk must not follow it.
  *path.sptep() = 0;
  REQUIRE_FALSE(path.step_down());
  REQUIRE(path.level() == 3);
  REQUIRE(path.old_spte == 0);
  // Linked again (a fresh table): now it is followed.
  const hpa_t fresh = t.alloc();
  *path.sptep() = spte::make_table(fresh);
  REQUIRE(path.step_down());
  REQUIRE(path.level() == 2);
  REQUIRE(path.table() == t.table(fresh));
  REQUIRE(path.old_spte == 0);
}
