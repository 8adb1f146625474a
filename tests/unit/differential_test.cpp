// Differential test: long seeded random sequences of map / zap / memslot create-delete-move-
// set_flags / invalidate-all (+ deferred teardown) / age / out-of-memory / pre-fault / dirty
// logging (start, stop, harvest with each mechanism), with fault-around on (a per-seed N),
// checked after every step against a simple reference model (memslots as a list: gfn ->
// backing, permissions, expected leaf level; which neighbours a 4 KiB fault must have mapped
// around itself; for a logged slot the pages written since its last harvest, each of which the
// next harvest must report). HV_SEED=<n> replays a run; HV_DIFF_STEPS=<n> changes its length.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cstdlib>
#include <map>
#include <vector>
#include <set>

#include "tests/host/dirty_cpu.h"
#include "tests/host/mmu_fixture.h"
#include "tests/host/tree_census.h"
#include "tests/stress/stress_seed.h"

using namespace mmu;
using hvtest::HostPlatform;
using hvtest::kPagesPer1G;
using hvtest::kPagesPer2M;
using hvtest::TestVcpu;
using hvtest::TestVm;

namespace {

struct ModelSlot {
  gfn_t base = 0;
  uint64_t npages = 0;
  hpa_t backing = 0;
  int max_level = 1;
  bool ro = false;
  // Dirty logging: on, with which mechanism; the pages (relative to base) written since the last
  // harvest, which the next harvest must report; and whether that harvest is the first.
  bool logged = false;
  DirtyMode mode = DirtyMode::write_protect;
  std::set<uint64_t> written;
  bool first_harvest = false;
};

// The reference: what a fault on `gfn` must produce, from first principles.
struct Model {
  std::map<uint32_t, ModelSlot> slots;
  int vm_max = 3;

  const ModelSlot* find(gfn_t g) const {
    for (auto& [id, s] : slots)
      if (g >= s.base && g < s.base + s.npages) return &s;
    return nullptr;
  }
  bool overlaps(gfn_t base, uint64_t n, uint32_t except) const {
    for (auto& [id, s] : slots)
      if (id != except && base < s.base + s.npages && s.base < base + n) return true;
    return false;
  }
  int level(const ModelSlot& s, gfn_t g) const {
    if (s.logged) return 1;  // a logged slot maps 4 KiB leaves only
    for (int l = std::min(s.max_level, vm_max); l > 1; l--) {
      const uint64_t span = spte::pages_per_entry(l);
      const gfn_t b = g & ~(span - 1);
      if (b >= s.base && b + span <= s.base + s.npages && ((s.backing >> 12) + (b - s.base)) % span == 0)
        return l;
    }
    return 1;
  }
  std::vector<hvtest::SlotRef> refs() const {
    std::vector<hvtest::SlotRef> out;
    for (auto& [id, s] : slots) out.push_back({s.base, s.npages, s.backing, s.ro});
    return out;
  }
};

}  // namespace

TEST_CASE("differential: random operation sequences against a reference model", "[differential]") {
  const uint64_t seed = hvtest::stress_seed("differential");
  const char* env_steps = std::getenv("HV_DIFF_STEPS");
  const unsigned steps = env_steps ? unsigned(std::strtoul(env_steps, nullptr, 0)) : 3000;
  hvtest::SplitMix rng(seed);
  HostPlatform p;
  uint64_t ops[14] = {};
  uint64_t around_expected = 0;
  uint64_t faults_by_outcome[int(FaultOutcome::kCount)] = {};
  {
    // Fault-around: off, small, the default's size or a whole table, per seed.
    static constexpr unsigned kAround[] = {0, 3, 15, MmuConfig::kMaxFaultAround};
    MmuConfig cfg;
    cfg.fault_around = kAround[rng.below(4)];
    cfg.ept_ad = true;  // every dirty-log mechanism is available
    std::printf("[differential] fault-around %u\n", cfg.fault_around);
    TestVm vm(p, cfg);
    Model model;
    TestVcpu v(vm);
    // The vCPU's PML buffer: a simulated write that sets D in a pml-logged slot appends its GPA,
    // as the CPU does, and a harvest drains it (without it, pml would miss every 4 KiB write).
    hvtest::PmlLog pml;
    p.set_drain_hook([&](uint64_t) { pml.drain(vm.mmu); });
    struct Unhook {
      HostPlatform& p;
      ~Unhook() { p.set_drain_hook(nullptr); }
    } unhook{p};
    const gfn_t kSpace = 4 * kPagesPer1G;  // 16 GiB of guest-physical space
    uint32_t next_id = 1;
    auto random_gfn = [&]() -> gfn_t {
      // Mostly inside slots, sometimes anywhere, sometimes hostile.
      const uint64_t r = rng.below(100);
      if (r < 75 && !model.slots.empty()) {
        auto it = model.slots.begin();
        std::advance(it, rng.below(model.slots.size()));
        return it->second.base + rng.below(it->second.npages);
      }
      if (r < 97) return rng.below(kSpace);
      return rng.next();
    };
    for (unsigned step = 0; step < steps; step++) {
      const uint64_t op = rng.below(100);
      INFO("seed " << seed << " step " << step << " op " << op);
      if (op < 50) {  // fault
        ops[0]++;
        const gfn_t g = random_gfn();
        const unsigned access = 1u << rng.below(3) | (rng.below(2) ? spte::kAccRead : 0);
        // Fault-around's reference: the neighbours in the window (the aligned power of two
        // >= N + 1 entries of the fault's level around g's, whole frames inside g's slot)
        // whose entry at that level was empty before the fault; the first N of them (by gfn)
        // must be mapped with leaves of that level after a fault that installed a new 4 KiB or
        // 2 MiB leaf.
        const ModelSlot* fs = g < (gfn_t{1} << 34) ? model.find(g) : nullptr;
        const int flevel = fs ? model.level(*fs, g) : 0;
        const bool around_on = fs && !fs->logged && cfg.fault_around && flevel <= 2;
        const uint64_t span = flevel == 2 ? kPagesPer2M : 1;
        std::vector<gfn_t> empty_before;
        bool had_leaf = false;
        if (around_on) {
          vm.mmu.vcpu_load_root(v);
          // Anything at the fault's level (a leaf, a table left by a leaf zap, which the fault
          // replaces with its huge leaf) means no new leaf: no fault-around.
          had_leaf = vm.leaf(v, g).second != 0 || vm.entry(v, g, flevel) != 0;
          uint64_t w = 1;
          while (w < cfg.fault_around + 1u) w <<= 1;
          w *= span;
          const gfn_t own = g & ~(span - 1);
          const gfn_t lo = ((fs->base + span - 1) & ~(span - 1)), hi = (fs->base + fs->npages) & ~(span - 1);
          const gfn_t first = std::max(g & ~(w - 1), lo), last = std::min((g & ~(w - 1)) + w, hi);
          for (gfn_t n = first; n < last; n += span)
            if (n != own && vm.entry(v, n, flevel) == 0) empty_before.push_back(n);
        }
        const uint64_t around0 = vm.mmu.stats().fault_around_leaves;
        const FaultOutcome o = vm.fault(v, g, access);
        if (around_on && o == FaultOutcome::fixed && !had_leaf) {
          const size_t want = std::min<size_t>(empty_before.size(), cfg.fault_around);
          REQUIRE(vm.mmu.stats().fault_around_leaves - around0 == want);
          around_expected += want;
          for (size_t i = 0; i < empty_before.size(); i++) {
            auto [nl, nlevel] = vm.leaf(v, empty_before[i]);
            if (i < want) {
              REQUIRE(nlevel == flevel);
              REQUIRE(spte::pfn_addr(nl) == fs->backing + ((empty_before[i] - fs->base) << 12));
              REQUIRE(((nl & spte::kWrite) != 0) == !fs->ro);
            } else {
              REQUIRE(nlevel == 0);
            }
          }
        } else {
          REQUIRE(vm.mmu.stats().fault_around_leaves == around0);
        }
        faults_by_outcome[int(o)]++;
        const ModelSlot* s = g < (gfn_t{1} << 34) ? model.find(g) : nullptr;
        if (g >= (gfn_t{1} << 34)) {
          REQUIRE(o == FaultOutcome::bad_gfn);
        } else if (!s) {
          REQUIRE(o == FaultOutcome::unbacked);
        } else if (s->ro && (access & spte::kAccWrite)) {
          REQUIRE(o == FaultOutcome::write_protected);
        } else {
          REQUIRE((o == FaultOutcome::fixed || o == FaultOutcome::spurious));
          auto [leaf, level] = vm.leaf(v, g);
          // A new leaf has exactly the level the model allows; an existing one (spurious) may be
          // larger if it was installed before the per-VM maximum was lowered.
          if (o == FaultOutcome::fixed) REQUIRE(level == model.level(*s, g));
          if (o == FaultOutcome::spurious) REQUIRE(level >= model.level(*s, g));
          const gfn_t b = spte::align_down(g, level);
          REQUIRE(spte::pfn_addr(leaf) == s->backing + ((b - s->base) << 12));
          if (s->logged && s->mode == DirtyMode::write_protect) {
            // W only once a write faulted it in since the last harvest.
            if (access & spte::kAccWrite) REQUIRE((leaf & spte::kWrite) != 0);
          } else {
            REQUIRE(((leaf & spte::kWrite) != 0) == !s->ro);
          }
          if ((access & spte::kAccWrite) && s->logged) {
            // The guest's write: the CPU sets A and D in the leaf it writes through.
            spte_t* t = v.root()->table;
            for (int l = v.root()->level; l > level; l--)
              t = static_cast<spte_t*>(p.phys_to_virt(spte::pfn_addr(t[spte::index_of(g, l)])));
            const spte_t old = __atomic_fetch_or(&t[spte::index_of(g, level)], spte::kAccessed | spte::kDirty,
                                                 __ATOMIC_RELAXED);
            if (s->mode == DirtyMode::pml && !(old & spte::kDirty)) {
              std::lock_guard<std::mutex> g_pml(pml.lock);
              pml.gpas.push_back(g << kPageShift);
            }
            const_cast<ModelSlot*>(s)->written.insert(g - s->base);
          }
        }
      } else if (op < 55) {  // pre-fault a range, to its end, in bounded calls
        ops[11]++;
        const gfn_t a = random_gfn() % kSpace;
        const gfn_t e = std::min<gfn_t>(a + 1 + rng.below(rng.below(2) ? 64 : 3 * kPagesPer2M), kSpace);
        const unsigned budget = 1 + unsigned(rng.below(100));
        // Samples: both ends and random gfns inside; what each had before.
        std::vector<gfn_t> sample = {a, e - 1};
        for (int i = 0; i < 32; i++) sample.push_back(a + rng.below(e - a));
        vm.mmu.vcpu_load_root(v);
        std::vector<int> before;
        for (gfn_t g : sample) before.push_back(vm.leaf(v, g).second);
        gfn_t next = a;
        for (unsigned calls = 0; next < e; calls++) {
          REQUIRE(calls < 100000);
          const PrefaultResult r = vm.mmu.prefault(v, next, e, budget);
          REQUIRE(r.status == FaultOutcome::fixed);  // one thread, no page limit: no obstacle
          REQUIRE(r.units <= budget);
          REQUIRE(r.next > next);
          next = r.next;
        }
        for (size_t i = 0; i < sample.size(); i++) {
          const gfn_t g = sample[i];
          const ModelSlot* s = model.find(g);
          auto [leaf, level] = vm.leaf(v, g);
          if (!s) {
            REQUIRE(level == 0);
            continue;
          }
          // A new leaf has the model's level; an existing one is kept (a larger one from before
          // the per-VM maximum was lowered) or replaced by the model's level (smaller ones).
          REQUIRE(level != 0);
          if (before[i] == 0) REQUIRE(level == model.level(*s, g));
          REQUIRE(level >= model.level(*s, g));
          REQUIRE(spte::pfn_addr(leaf) == s->backing + ((spte::align_down(g, level) - s->base) << 12));
          if (s->logged && s->mode == DirtyMode::write_protect) {
            // Pre-fault asks for read access: W only where a write faulted it in since the
            // last harvest, never in a read-only slot.
            if (s->ro) REQUIRE((leaf & spte::kWrite) == 0);
          } else {
            REQUIRE(((leaf & spte::kWrite) != 0) == !s->ro);
          }
        }
      } else if (op < 63) {  // zap a range
        ops[1]++;
        const gfn_t a = random_gfn() % kSpace, n = 1 + rng.below(rng.below(2) ? 64 : kPagesPer2M * 3);
        vm.mmu.zap_range(0, a, a + n);
        // No leaf may remain that intersects the range, in any root.
        std::string err = vm.check_all_roots(model.refs(), 0, [&](const hvtest::LeafInfo& l) {
          if (l.gfn < a + n && a < l.gfn + spte::pages_per_entry(l.level)) FAIL("leaf survived a zap");
        });
        REQUIRE(err.empty());
      } else if (op < 70) {  // create a slot
        ops[2]++;
        const int gran = int(rng.below(3));  // 4K, 2M or 1G placement
        const uint64_t unit = spte::pages_per_entry(gran + 1);
        const gfn_t base = rng.below(kSpace / unit) * unit + (rng.below(4) == 0 ? rng.below(512) : 0);
        const uint64_t n = gran == 2 ? kPagesPer1G * (1 + rng.below(2)) : 1 + rng.below(gran ? 4 * kPagesPer2M : 4096);
        const hpa_t backing = (rng.below(1 << 12) << 30) + (rng.below(3) == 0 ? rng.below(512) << 12 : 0);
        const int max_level = 1 + int(rng.below(3));
        const bool ro = rng.below(5) == 0;
        const uint32_t id = next_id++;
        const MemslotError e = vm.add_slot(id, base, n, backing, uint8_t(max_level), ro ? Memslot::kReadOnly : 0);
        const bool fits = base + n <= (gfn_t{1} << 34);
        if (model.overlaps(base, n, 0) || !fits) {
          REQUIRE(e != MemslotError::ok);
        } else if (e == MemslotError::ok) {
          ModelSlot ms;
          ms.base = base;
          ms.npages = n;
          ms.backing = backing;
          ms.max_level = max_level;
          ms.ro = ro;
          model.slots[id] = ms;
        } else {
          REQUIRE(e == MemslotError::too_many);
        }
      } else if (op < 75 && !model.slots.empty()) {  // delete
        ops[3]++;
        auto it = model.slots.begin();
        std::advance(it, rng.below(model.slots.size()));
        REQUIRE(vm.mmu.update_memslot(MemslotOp::remove(0, it->first)) == MemslotError::ok);
        model.slots.erase(it);
      } else if (op < 80 && !model.slots.empty()) {  // move
        ops[4]++;
        auto it = model.slots.begin();
        std::advance(it, rng.below(model.slots.size()));
        const gfn_t nb = rng.below(2) ? rng.below(kSpace) : rng.below(kSpace / kPagesPer2M) * kPagesPer2M;
        const MemslotError e = vm.mmu.update_memslot(MemslotOp::move(0, it->first, nb));
        if (model.overlaps(nb, it->second.npages, it->first) || nb + it->second.npages > (gfn_t{1} << 34)) {
          REQUIRE(e != MemslotError::ok);
        } else {
          REQUIRE(e == MemslotError::ok);
          it->second.base = nb;
        }
      } else if (op < 84 && !model.slots.empty()) {  // flags
        ops[5]++;
        auto it = model.slots.begin();
        std::advance(it, rng.below(model.slots.size()));
        const bool ro = rng.below(2);
        const uint32_t f = (ro ? Memslot::kReadOnly : 0) | (it->second.logged ? Memslot::kDirtyLog : 0);
        const MemslotError e = vm.mmu.update_memslot(MemslotOp::set_flags(0, it->first, f));
        if (ro && it->second.logged) {
          REQUIRE(e == MemslotError::bad_flags);  // a logged slot cannot become read-only
        } else {
          REQUIRE(e == MemslotError::ok);
          it->second.ro = ro;
        }
      } else if (op < 88) {  // fast zap, teardown left to deferred work
        ops[6]++;
        vm.mmu.invalidate_all_roots();
        if (rng.below(3) == 0) vm.mmu.vcpu_load_root(v);
      } else if (op < 94) {  // deferred work with a random budget
        ops[7]++;
        vm.mmu.run_deferred_work(1 + unsigned(rng.below(3000)));
      } else if (op < 96 && !model.slots.empty()) {  // dirty logging: start, stop, harvest
        // Mostly a logged slot (harvests), else any (starts).
        std::vector<uint32_t> logged;
        for (auto& [id, ms] : model.slots)
          if (ms.logged) logged.push_back(id);
        auto it = model.slots.begin();
        if (!logged.empty() && rng.below(4) != 0) {
          it = model.slots.find(logged[rng.below(logged.size())]);
        } else {
          std::advance(it, rng.below(model.slots.size()));
        }
        ModelSlot& s = it->second;
        if (!s.logged) {
          ops[12]++;
          const DirtyMode mode = DirtyMode(rng.below(3));
          const MemslotError e = vm.mmu.dirty_log_start(v, 0, it->first, mode);
          if (s.ro) {
            REQUIRE(e == MemslotError::read_only_slot);
          } else {
            REQUIRE(e == MemslotError::ok);
            s.logged = true;
            s.mode = mode;
            s.written.clear();
            s.first_harvest = true;
          }
        } else if (rng.below(4) == 0) {
          ops[12]++;
          REQUIRE(vm.mmu.dirty_log_stop(v, 0, it->first) == MemslotError::ok);
          REQUIRE(vm.mmu.dirty_log_stop(v, 0, it->first) == MemslotError::not_logging);
          s.logged = false;
        } else {
          ops[13]++;
          std::vector<uint64_t> bm(Mmu::dirty_log_words(s.npages) + 1, 0);
          bm.back() = 0x5A5A;  // beyond the bitmap: untouched
          uint64_t n = 0;
          REQUIRE(vm.mmu.dirty_log_harvest(v, 0, it->first, bm.data(), bm.size() - 1, &n) == MemslotError::ok);
          REQUIRE(bm.back() == 0x5A5A);
          uint64_t set = 0;
          for (size_t w = 0; w + 1 < bm.size(); w++) set += uint64_t(__builtin_popcountll(bm[w]));
          REQUIRE(set == n);
          if (s.first_harvest) REQUIRE(n == s.npages);
          for (uint64_t page : s.written) {
            INFO("page " << page << " of slot " << it->first << " written, not reported (mode " << int(s.mode) << ")");
            REQUIRE(((bm[page / 64] >> (page % 64)) & 1) != 0);
          }
          if (s.mode == DirtyMode::write_protect) {
            // Exact, but for the first harvest: nothing else writes or drops a writable leaf's bit.
            if (!s.first_harvest) REQUIRE(n == s.written.size());
          }
          s.written.clear();
          s.first_harvest = false;
        }
      } else if (op < 98) {  // aging
        ops[8]++;
        const gfn_t a = random_gfn() % kSpace, n = 1 + rng.below(kPagesPer1G);
        uint64_t expect_young = 0;
        vm.check_all_roots(model.refs(), 0, [&](const hvtest::LeafInfo& l) {
          if (l.gfn < a + n && a < l.gfn + spte::pages_per_entry(l.level) && spte::is_accessed(l.spte))
            expect_young++;
        });
        REQUIRE(vm.mmu.age_range(0, a, a + n) == expect_young);
        REQUIRE(vm.mmu.age_range(0, a, a + n) == 0);
      } else if (op < 99) {  // per-VM maximum level, with an eager split when lowered
        ops[10]++;
        model.vm_max = 1 + int(rng.below(3));
        vm.mmu.set_max_level(model.vm_max);
        // Split a window (splitting all of a 1 GiB leaf to 4 KiB makes the per-step tree check slow).
        const gfn_t w = random_gfn() % kSpace;
        if (model.vm_max < 3 && v.root()) REQUIRE(vm.mmu.split_huge_pages(v, w, w + 2 * kPagesPer2M, model.vm_max));
      } else {  // memory pressure on one fault
        ops[9]++;
        p.set_page_limit(p.live_pages() + rng.below(3));
        const gfn_t g = random_gfn();
        const uint64_t around0 = vm.mmu.stats().fault_around_leaves;
        const FaultOutcome o = vm.mmu.map(v, g, spte::kAccRead);
        p.set_page_limit(0);
        around_expected += vm.mmu.stats().fault_around_leaves - around0;  // the tree check covers them
        faults_by_outcome[int(o)]++;
        REQUIRE(o != FaultOutcome::kCount);
      }
      // After every step: the whole tree against the model's slots; stats against a count.
      uint64_t counted[4] = {};
      std::string err = vm.check_all_roots(model.refs(), 0, [&](const hvtest::LeafInfo& l) {
        counted[l.level]++;
        // The CPU would set Accessed on use: simulate it on a few leaves, for aging.
        (void)l;
      });
      REQUIRE(err.empty());
      const MmuStats st = vm.mmu.stats();
      for (int l = 1; l <= 3; l++) REQUIRE(st.leaves[l] == counted[l]);
      // Every 16th step (two more walks of every tree): tables_live agrees with the links in the
      // trees (and no FROZEN entry is left), and the MMU's own count_leaves() with the count.
      if (step % 16 == 0) {
        REQUIRE(hvtest::census(p, vm.mmu).compare(st) == "");
        uint64_t walked[4];
        vm.mmu.count_leaves(0, walked);
        for (int l = 1; l <= 3; l++) REQUIRE(walked[l] == counted[l]);
      }
      if (rng.below(10) == 0 && v.root()) {
        spte_t leaf;
        int level;
        const gfn_t g = random_gfn();
        if (g < (gfn_t{1} << 34) && vm.mmu.lookup(v.root(), g, &leaf, &level)) {
          // Set Accessed as the CPU's page walk would.
          spte_t* t = v.root()->table;
          for (int l = v.root()->level; l > level; l--)
            t = static_cast<spte_t*>(p.phys_to_virt(spte::pfn_addr(t[spte::index_of(g, l)])));
          __atomic_fetch_or(&t[spte::index_of(g, level)], spte::kAccessed, __ATOMIC_RELAXED);
        }
      }
    }
    const MmuStats st = vm.mmu.stats();
    std::printf("[differential] %u steps: faults %llu, zaps %llu, creates %llu, deletes %llu, moves %llu, "
                "flag changes %llu, fast zaps %llu, deferred runs %llu, agings %llu, oom probes %llu, max-level changes %llu, "
                "pre-faults %llu, dirty-log starts/stops %llu, harvests %llu\n",
                steps, (unsigned long long)ops[0], (unsigned long long)ops[1], (unsigned long long)ops[2],
                (unsigned long long)ops[3], (unsigned long long)ops[4], (unsigned long long)ops[5],
                (unsigned long long)ops[6], (unsigned long long)ops[7], (unsigned long long)ops[8],
                (unsigned long long)ops[9], (unsigned long long)ops[10], (unsigned long long)ops[11],
                (unsigned long long)ops[12], (unsigned long long)ops[13]);
    std::printf("[differential] outcomes:");
    for (int i = 0; i < int(FaultOutcome::kCount); i++)
      std::printf(" %s=%llu", to_string(FaultOutcome(i)), (unsigned long long)faults_by_outcome[i]);
    std::printf("; splits %llu, huge replacements %llu, teardown steps %llu, pre-faulted leaves %llu, "
                "fault-around leaves %llu (model %llu)\n", (unsigned long long)st.splits,
                (unsigned long long)st.huge_replacements, (unsigned long long)st.teardown_steps,
                (unsigned long long)st.prefault_leaves, (unsigned long long)st.fault_around_leaves,
                (unsigned long long)around_expected);
    REQUIRE(ops[11] > 0);  // pre-faults
    REQUIRE(st.fault_around_leaves == around_expected);
    REQUIRE(faults_by_outcome[int(FaultOutcome::fixed)] > steps / 10);
  }
  REQUIRE(p.live_pages() == 0);
  REQUIRE(p.check_quarantine() == 0);
  REQUIRE(p.errors() == 0);
}
