// Test helpers: a full structural check of an EPT tree against the memslots that may back it,
// and a recorder that runs that check after every single SPTE write (see mmu/spte_ops.h).
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "mmu/spte.h"
#include "mmu/spte_ops.h"
#include "tests/host/host_platform.h"

namespace hvtest {

// A memslot as the checks see it (independent of mmu/memslot.h).
struct SlotRef {
  mmu::gfn_t base = 0;
  uint64_t npages = 0;
  mmu::hpa_t backing = 0;
  bool read_only = false;
};

struct LeafInfo {
  mmu::gfn_t gfn;
  int level;
  mmu::spte_t spte;
};

// Walks the tree below `table` (at `level`, covering gfns from `base`), checking that
//  - every entry is well-formed: 0, FROZEN, a dead link, an MMIO marker, a link to a live page,
//    or a leaf with write-back type, aligned PFN and no reserved bits;
//  - every link points to a page the platform considers allocated (not freed, not poisoned);
//  - every leaf maps inside one slot of `slots`, at the slot's backing address for its gfn, and
//    grants W only if the slot is writable.
// Returns "" or a description of the first violation. `on_leaf` sees every leaf.
inline std::string check_tree(HostPlatform& p, const mmu::spte_t* table, int level, mmu::gfn_t base,
                              const std::vector<SlotRef>& slots,
                              const std::function<void(const LeafInfo&)>& on_leaf = {}) {
  using namespace mmu;
  char buf[256];
  for (unsigned i = 0; i < spte::kEntriesPerTable; i++) {
    const spte_t s = __atomic_load_n(&table[i], __ATOMIC_ACQUIRE);
    const gfn_t g = base + i * spte::pages_per_entry(level);
    if (!spte::is_present(s)) {
      const bool ok = s == 0 || spte::is_frozen(s) || spte::is_mmio(s) ||
                      (s & ~spte::kPfnMask) == spte::kFrozenMark;
      if (!ok) {
        std::snprintf(buf, sizeof buf, "malformed non-present entry %#llx at gfn %#llx level %d",
                      (unsigned long long)s, (unsigned long long)g, level);
        return buf;
      }
      continue;
    }
    if (spte::is_table(s, level)) {
      if ((s & (spte::kMemTypeMask | spte::kIgnorePat | spte::kLarge)) != 0 ||
          (s & spte::kRwx) != spte::kRwx) {
        std::snprintf(buf, sizeof buf, "malformed link %#llx at level %d", (unsigned long long)s, level);
        return buf;
      }
      if (!p.is_live(spte::pfn_addr(s))) {
        std::snprintf(buf, sizeof buf, "link at gfn %#llx level %d to a page that is not live",
                      (unsigned long long)g, level);
        return buf;
      }
      auto* child = static_cast<const spte_t*>(p.phys_to_virt(spte::pfn_addr(s)));
      std::string e = check_tree(p, child, level - 1, g, slots, on_leaf);
      if (!e.empty()) return e;
      continue;
    }
    // A leaf.
    const uint64_t span = spte::pages_per_entry(level);
    if (level > spte::kMaxHugeLevel ||
        ((s & spte::kMemTypeMask) >> spte::kMemTypeShift) != spte::kMemTypeWb ||
        (spte::pfn_addr(s) >> 12) % span != 0 || (s & spte::kRead) == 0) {
      std::snprintf(buf, sizeof buf, "malformed leaf %#llx at gfn %#llx level %d",
                    (unsigned long long)s, (unsigned long long)g, level);
      return buf;
    }
    const SlotRef* slot = nullptr;
    for (const SlotRef& sr : slots) {
      if (g >= sr.base && g + span <= sr.base + sr.npages) slot = &sr;
    }
    if (slot == nullptr) {
      std::snprintf(buf, sizeof buf, "leaf at gfn %#llx level %d outside every slot",
                    (unsigned long long)g, level);
      return buf;
    }
    if (spte::pfn_addr(s) != slot->backing + ((g - slot->base) << 12)) {
      std::snprintf(buf, sizeof buf, "leaf at gfn %#llx level %d maps %#llx, not its backing",
                    (unsigned long long)g, level, (unsigned long long)spte::pfn_addr(s));
      return buf;
    }
    if (slot->read_only && (s & spte::kWrite)) {
      std::snprintf(buf, sizeof buf, "writable leaf at gfn %#llx in a read-only slot",
                    (unsigned long long)g);
      return buf;
    }
    if (on_leaf) on_leaf({g, level, s});
  }
  return "";
}

// Installs itself as the SPTE write recorder for its lifetime and runs `check` after every
// write that took effect (single-threaded tests only). Counts writes and remembers the first
// failure.
class WriteRecorder {
 public:
  explicit WriteRecorder(std::function<std::string(mmu::spte_t*, mmu::spte_t, mmu::spte_t, int)> check)
      : check_(std::move(check)) {
    mmu::g_spte_recorder = {&WriteRecorder::hook, this};
  }
  ~WriteRecorder() { mmu::g_spte_recorder = {}; }
  WriteRecorder(const WriteRecorder&) = delete;
  WriteRecorder& operator=(const WriteRecorder&) = delete;

  uint64_t writes = 0;
  uint64_t links = 0;
  std::string first_error;

 private:
  static void hook(void* ctx, mmu::spte_t* p, mmu::spte_t o, mmu::spte_t n, int level) {
    auto* self = static_cast<WriteRecorder*>(ctx);
    self->writes++;
    if (mmu::spte::is_present(n) && level > 1 && !mmu::spte::is_leaf(n, level)) self->links++;
    if (!self->first_error.empty()) return;
    std::string e = self->check_(p, o, n, level);
    if (!e.empty()) self->first_error = e + " (after write #" + std::to_string(self->writes) + ")";
  }
  std::function<std::string(mmu::spte_t*, mmu::spte_t, mmu::spte_t, int)> check_;
};

}  // namespace hvtest
