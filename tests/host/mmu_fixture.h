// Test fixture: one VM's MMU on the host platform (epoch, memslots, Mmu), plus helpers to add
// slots and to inspect every root's tree.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mmu/epoch.h"
#include "mmu/memslot.h"
#include "mmu/mmu.h"
#include "tests/host/host_platform.h"
#include "tests/host/tree_check.h"

namespace hvtest {

struct TestVm {
  HostPlatform& platform;
  mmu::Epoch epoch;
  mmu::Memslots slots;
  mmu::Mmu mmu;

  explicit TestVm(HostPlatform& p, mmu::MmuConfig cfg = {}, unsigned maxphyaddr = 46)
      : platform(p), epoch(p), slots(p, epoch, mmu::MemslotConfig{maxphyaddr}), mmu(p, epoch, slots, cfg) {}

  mmu::MemslotError add_slot(uint32_t id, mmu::gfn_t base, uint64_t npages, mmu::hpa_t backing,
                             uint8_t max_level, uint32_t flags = 0, uint32_t as_id = 0) {
    mmu::Memslot s;
    s.id = id;
    s.as_id = as_id;
    s.base_gfn = base;
    s.npages = npages;
    s.backing_hpa = backing;
    s.max_level = max_level;
    s.flags = flags;
    return mmu.update_memslot(mmu::MemslotOp::create(s));
  }

  // The slots of an address space as the checks see them.
  std::vector<SlotRef> slot_refs(uint32_t as_id = 0) {
    std::vector<SlotRef> out;
    mmu::EpochReadGuard g(epoch);
    if (const mmu::MemslotSet* set = slots.active(as_id)) {
      for (const mmu::Memslot& s : *set) out.push_back({s.base_gfn, s.npages, s.backing_hpa, s.read_only()});
    }
    return out;
  }

  // check_tree() over every root of `as_id` (valid or not) that is not torn down yet. Not the
  // MMU's RootWalk: this checker also runs from the SPTE-write recorder, i.e. in the middle of
  // MMU code that holds the lock or an epoch section, where no walk mode's assertion holds;
  // Roots::next() itself works in any context.
  std::string check_all_roots(const std::vector<SlotRef>& refs, uint32_t as_id = 0,
                              const std::function<void(const LeafInfo&)>& on_leaf = {}) {
    std::string err;
    for (mmu::Root* r = mmu.roots().next(nullptr, as_id); r; r = mmu.roots().next(r, as_id)) {
      if (err.empty()) err = check_tree(platform, r->table, r->level, 0, refs, on_leaf);
    }
    return err;
  }

  // Fault until the outcome is not `retry` (bounded).
  mmu::FaultOutcome fault(mmu::VcpuMmu& v, mmu::gfn_t gfn, unsigned access = mmu::spte::kAccRead) {
    mmu::FaultOutcome o = mmu::FaultOutcome::retry;
    for (int i = 0; i < 100 && o == mmu::FaultOutcome::retry; i++) {
      mmu.vcpu_load_root(v);
      o = mmu.map(v, gfn, access);
    }
    return o;
  }

  // The entry at `level` on the walk to gfn in the vCPU's root: 0 where the walk ends above it
  // at an empty entry (a fault would link a fresh, empty table there); a leaf above it is
  // returned as it is (non-zero: nothing at `level` is empty there).
  mmu::spte_t entry(mmu::VcpuMmu& v, mmu::gfn_t gfn, int level) {
    if (!v.root()) return 0;
    mmu::spte_t* table = v.root()->table;
    for (int l = v.root()->level;; l--) {
      const mmu::spte_t e = table[mmu::spte::index_of(gfn, l)];
      if (l == level || !mmu::spte::is_table(e, l)) return l == level || e != 0 ? e : 0;
      table = static_cast<mmu::spte_t*>(platform.table_va(mmu::spte::pfn_addr(e)));
    }
  }

  // Leaf (value, level) mapping gfn in the vCPU's root, level 0 if none.
  std::pair<mmu::spte_t, int> leaf(mmu::VcpuMmu& v, mmu::gfn_t gfn) {
    mmu::spte_t s = 0;
    int level = 0;
    if (v.root() && mmu.lookup(v.root(), gfn, &s, &level)) return {s, level};
    return {0, 0};
  }
};

// A vCPU that releases its MMU state when it goes out of scope (also when a REQUIRE throws).
struct TestVcpu : mmu::VcpuMmu {
  TestVm& vm;
  explicit TestVcpu(TestVm& v, unsigned as_id = 0) : vm(v) { vm.mmu.vcpu_init(*this, as_id); }
  ~TestVcpu() { vm.mmu.vcpu_release(*this); }
};

inline constexpr mmu::hpa_t kGiB = mmu::hpa_t{1} << 30;
inline constexpr uint64_t kPagesPer2M = 512;
inline constexpr uint64_t kPagesPer1G = 512 * 512;

}  // namespace hvtest
