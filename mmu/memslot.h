// Memslots: which guest-physical ranges are backed by which host-physical memory.
//
// Three layers:
// * Memslot: one guest-physical range [base_gfn, base_gfn + npages) backed by host-physical
//   contiguous memory at backing_hpa.
// * MemslotSet: an immutable, sorted (by base_gfn), non-overlapping array of the memslots of
//   one address space, in one Platform page. Never modified after it is built: a change builds
//   a new set from the old one (copy-on-write), so that lockless readers of the old set stay
//   valid until it is reclaimed through the Epoch.
// * Memslots: the published sets of one VM (one per address space) and the lock that
//   serializes changes.
//
// Using it
// --------
// Readers (the fault path, any lookup), lock-free:
//     EpochReadGuard g(epoch);
//     const Memslot* s = memslots.find(as_id, gfn);   // valid until the guard ends
// A change (orchestrated by the TDP MMU), under memslots.update_lock():
//     const MemslotSet* next;
//     MemslotError err = memslots.prepare(MemslotOp::remove(as_id, id), next);
//     if (err != MemslotError::ok) -> report `to_string(err)`, nothing changed;
//     const MemslotSet* old = memslots.publish(next);     // readers now see `next`
//     ... bump the invalidation sequence, zap the old range's leaves, flush TLBs ...
//     memslots.retire(old);                               // freed after a grace period
// A prepared set that is not published goes back with discard().
#pragma once

#include "mmu/atomic.h"
#include "mmu/epoch.h"
#include "mmu/lock.h"
#include "mmu/platform.h"
#include "base/thread_safety.h"
#include "mmu/types.h"

namespace mmu {

class DirtyLog;  // mmu/dirty_log.h

enum class MemslotError : uint8_t {
  ok,
  overlap,            // the range intersects another slot of the address space
  misaligned,         // backing_hpa not 4 KiB aligned
  zero_size,          // npages == 0
  too_large,          // guest range or backing reaches 2^maxphyaddr or beyond
  gfn_wraps,          // base_gfn + npages (or backing + size) overflows 64 bits
  too_many,           // the address space already has kMaxMemslots slots
  no_such_slot,       // remove/move/set_flags of an id the address space does not have
  bad_flags,          // unknown flag bits; kDirtyLog with kReadOnly, or changed by set_flags
  bad_address_space,  // as_id >= Memslots::kAddressSpaces
  duplicate_id,       // create with an id the address space already has
  out_of_memory,      // no page for the new set
  bad_level,          // max_level not 1 (4 KiB), 2 (2 MiB) or 3 (1 GiB)
  // Dirty logging (mmu/dirty_log.h):
  read_only_slot,     // dirty logging asked for a read-only slot (the guest cannot write it)
  already_logging,    // dirty_log_start on a slot that is logged already
  not_logging,        // dirty_log_stop/harvest on a slot that is not logged
  buffer_too_small,   // a harvest buffer with fewer words than the slot's bitmap
  unsupported,        // the mechanism needs what this MMU lacks (EPT A/D bits for dirty_bit/pml)
};
const char* to_string(MemslotError e);

struct MemslotConfig {
  // Width of physical addresses: every slot's guest range and backing range must end at or
  // below 2^maxphyaddr. With 4-level EPT the guest side is limited to 48 bits whatever the
  // CPU's MAXPHYADDR; the TDP MMU passes min(MAXPHYADDR, 48).
  unsigned maxphyaddr = 52;
  uint64_t gfn_limit() const { return uint64_t{1} << (maxphyaddr - kPageShift); }  // exclusive
};

struct Memslot {
  static constexpr uint32_t kReadOnly = 1;  // the guest may read, a write exits to the VMM
  // Dirty logging is on: the slot owns `dirty_log` (set exactly when this flag is). Only the MMU
  // turns it on and off (Mmu::dirty_log_start/stop, or a create with the flag through
  // Mmu::update_memslot, which makes the log); set_flags may not change it.
  static constexpr uint32_t kDirtyLog = 2;
  static constexpr uint32_t kKnownFlags = kReadOnly | kDirtyLog;

  uint32_t id = 0;
  uint32_t as_id = 0;      // address space: 0 normal, 1 the second (SMM-like) view
  gfn_t base_gfn = 0;
  uint64_t npages = 0;
  hpa_t backing_hpa = 0;   // 4 KiB aligned host-physical base
  uint8_t max_level = 1;   // largest leaf the backing allows: 1 = 4K, 2 = 2M, 3 = 1G
  uint32_t flags = 0;
  DirtyLog* dirty_log = nullptr;  // with kDirtyLog: the slot's bitmap (owned by the MMU)

  gfn_t end_gfn() const { return base_gfn + npages; }  // exclusive
  // Unsigned wrap-around makes this one comparison: a gfn below base_gfn becomes huge.
  bool contains(gfn_t gfn) const { return gfn - base_gfn < npages; }
  hpa_t gfn_to_hpa(gfn_t gfn) const { return backing_hpa + ((gfn - base_gfn) << kPageShift); }
  bool read_only() const { return (flags & kReadOnly) != 0; }
  bool dirty_logging() const { return (flags & kDirtyLog) != 0; }
  // The largest leaf level (1..max_level) that may map `gfn` (which the slot contains): the
  // naturally aligned huge range around it must lie inside the slot, and the guest and host
  // addresses must be congruent modulo the huge page size (else no single host huge page
  // backs it).
  uint8_t max_mapping_level(gfn_t gfn) const;
};

class MemslotSet {
 public:
  static constexpr unsigned kMaxMemslots = 64;

  uint32_t as_id() const { return as_id_; }
  unsigned size() const { return count_; }
  const Memslot& at(unsigned i) const { return slots_[i]; }
  const Memslot* begin() const { return slots_; }
  const Memslot* end() const { return slots_ + count_; }
  // Bumped by every change of this address space: a reader that saw generation g and then a
  // larger one knows the slots changed in between.
  uint64_t generation() const { return generation_; }

  // The slot containing `gfn`, or nullptr (binary search).
  const Memslot* find(gfn_t gfn) const;
  const Memslot* find_id(uint32_t id) const;

  // Sorted, non-overlapping, inside the address limit, valid fields: true for every set the
  // builders produce. For assertions and tests.
  bool check_invariants(const MemslotConfig& cfg) const;

  // Builders. Each validates, allocates one page, and returns the new set in `out`; on error
  // `out` is untouched and nothing is allocated. `old` is the set to start from (nullptr: the
  // address space has no slot yet) and is never modified; the new set belongs to the same
  // address space and has generation old->generation() + 1.
  static MemslotError with_created(Platform& p, const MemslotConfig& cfg, const MemslotSet* old,
                                   const Memslot& slot, const MemslotSet*& out);
  static MemslotError with_removed(Platform& p, const MemslotSet* old, uint32_t id,
                                   const MemslotSet*& out);
  // Same backing, same size, new guest-physical base.
  static MemslotError with_moved(Platform& p, const MemslotConfig& cfg, const MemslotSet* old,
                                 uint32_t id, gfn_t new_base_gfn, const MemslotSet*& out);
  static MemslotError with_flags(Platform& p, const MemslotSet* old, uint32_t id, uint32_t flags,
                                 const MemslotSet*& out);
  // Dirty logging on (`log` != nullptr: kDirtyLog set, the slot takes `log`) or off (nullptr).
  static MemslotError with_dirty_log(Platform& p, const MemslotSet* old, uint32_t id, DirtyLog* log,
                                     const MemslotSet*& out);

  // Free a set that no reader can reach (never published, or after a grace period).
  void destroy() const;
  // Free after a grace period. The EpochCallback lives inside the set: that is safe although
  // readers may still be reading the set, because retire() writes only the node and no reader
  // ever reads the node's bytes (they read the header fields and slots_).
  void retire(Epoch& epoch) const;

 private:
  MemslotSet(Platform& p, hpa_t self, uint32_t as_id, uint64_t generation)
      : platform_(&p), self_(self), as_id_(as_id), generation_(generation) {}
  static MemslotSet* allocate(Platform& p, uint32_t as_id, const MemslotSet* old);
  static void retire_fn(EpochCallback* cb);
  void insert_sorted(const Memslot& s);
  void remove_at(unsigned i);
  int index_of(uint32_t id) const;

  // Written only when the set is retired (hence mutable on an otherwise immutable object).
  mutable EpochCallback retire_node_;
  Platform* platform_;
  hpa_t self_;  // the page holding this set
  uint32_t as_id_;
  uint32_t count_ = 0;
  uint64_t generation_;
  Memslot slots_[kMaxMemslots];
};

// A change to one address space's slots.
struct MemslotOp {
  enum class Kind : uint8_t { create, remove, move, set_flags, set_dirty_log };
  Kind kind = Kind::create;
  // create: all fields; remove: id, as_id; move: + base_gfn; set_flags: + flags;
  // set_dirty_log: + dirty_log (the MMU's own op: Mmu::dirty_log_start/stop)
  Memslot slot;

  static MemslotOp create(const Memslot& s) { return {Kind::create, s}; }
  static MemslotOp remove(uint32_t as_id, uint32_t id) {
    MemslotOp op{Kind::remove, {}};
    op.slot.as_id = as_id;
    op.slot.id = id;
    return op;
  }
  static MemslotOp move(uint32_t as_id, uint32_t id, gfn_t new_base_gfn) {
    MemslotOp op = remove(as_id, id);
    op.kind = Kind::move;
    op.slot.base_gfn = new_base_gfn;
    return op;
  }
  static MemslotOp set_flags(uint32_t as_id, uint32_t id, uint32_t flags) {
    MemslotOp op = remove(as_id, id);
    op.kind = Kind::set_flags;
    op.slot.flags = flags;
    return op;
  }
  static MemslotOp set_dirty_log(uint32_t as_id, uint32_t id, DirtyLog* log) {
    MemslotOp op = remove(as_id, id);
    op.kind = Kind::set_dirty_log;
    op.slot.dirty_log = log;
    return op;
  }
};

// The memslots of one VM.
class Memslots {
 public:
  static constexpr unsigned kAddressSpaces = 2;

  Memslots(Platform& platform, Epoch& epoch, const MemslotConfig& cfg = {});
  // Frees the published sets directly: no reader may be left (VM teardown).
  ~Memslots();
  Memslots(const Memslots&) = delete;
  Memslots& operator=(const Memslots&) = delete;

  // --- Readers: lock-free, inside an epoch read-side section (asserted). ---
  // The published set of `as_id` (nullptr: no slot yet). Valid until the section ends.
  const MemslotSet* active(uint32_t as_id) const;
  const Memslot* find(uint32_t as_id, gfn_t gfn) const;
  // The generation of the set published last for `as_id` (0: none yet), readable without a
  // section: a vCPU that copied a slot out of the set of generation g may use its copy again
  // while this still says g (Mmu::lookup_slot_vcpu). Acquire: pairs with publish(), which
  // stores it after the set's pointer, so a reader that sees a later generation sees that set.
  uint64_t generation(uint32_t as_id) const { return generations_[as_id % kAddressSpaces].load(Order::acquire); }

  // --- The updater's view: under update_lock() (no section needed). ---
  // The published set of `as_id`. Valid while the lock is held: only a holder publishes, and
  // the set it replaces is freed only after retire() and a grace period.
  const MemslotSet* active_locked(uint32_t as_id) const REQUIRES(update_lock_);

  // --- Updates: serialized by update_lock(). ---
  SpinLock& update_lock() RETURN_CAPABILITY(update_lock_) { return update_lock_; }
  // Build the set that results from applying `op` to the published set of op.slot.as_id.
  // Nothing is published; on error nothing is allocated and `new_set` is untouched.
  MemslotError prepare(const MemslotOp& op, const MemslotSet*& new_set) REQUIRES(update_lock_);
  // Make `new_set` (from prepare()) the published set of its address space; returns the set it
  // replaced (nullptr if none), which readers may still be using: retire() it when the MMU
  // has finished with the change.
  const MemslotSet* publish(const MemslotSet* new_set) REQUIRES(update_lock_);
  // Free a set that was replaced by publish(), after a grace period (nullptr: nothing).
  void retire(const MemslotSet* old);
  // Free a prepared set that was never published.
  void discard(const MemslotSet* unpublished);

  const MemslotConfig& config() const { return cfg_; }
  Epoch& epoch() { return epoch_; }

 private:
  Platform& platform_;
  Epoch& epoch_;
  const MemslotConfig cfg_;
  SpinLock update_lock_;
  // Written with release in publish() under update_lock_, read with acquire in active().
  Atomic<const MemslotSet*> sets_[kAddressSpaces];
  // sets_[i]->generation(), stored after sets_[i] in publish() (see generation()).
  Atomic<uint64_t> generations_[kAddressSpaces] = {};
};

}  // namespace mmu
