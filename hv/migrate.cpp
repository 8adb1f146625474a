// Live migration of a running VM to a new VM on the same machine (see migrate.h and
// docs/migration.md).
//
// The protocol's shared state is one Migration per source VM. Its phase word orders it:
//   kArmed -> kStarting (a vCPU claimed the trigger: it builds the target) -> kPreCopy
//   (bounded copy steps at safe points) -> kPausing (every vCPU leaves its run loop) ->
//   kSwitched (the target is ready) or kAborted (a vCPU ended by itself: the target is gone);
//   kArmed -> kOff (a vCPU ended before the trigger: no migration), kStarting -> kFailed (the
//   target could not be built: the source runs on).
// Memory ordering, pair by pair:
//   - the pre-copy cursor is owned by whoever holds `busy`: the CAS that takes it (acquire)
//     pairs with the store that gives it back (release), so each step sees the previous one's
//     cursor and counters;
//   - each vCPU's saved state is written before its fetch_add on `arrived` (acq_rel); the last
//     arriver's fetch_add reads every earlier one's, so it sees all saved states and the abort
//     flag;
//   - the last arriver builds the target (memory, memslots, devices, run state) before its
//     release store of kSwitched; the vCPUs that wait for it load the phase with acquire and
//     only then read the target;
//   - `released` (acq_rel): the last vCPU to let go of the source's VMCS destroys the source, after
//     every other VMCLEAR (the source's memory must not be freed under a current VMCS);
//   - `restored` (acq_rel): the last restore prints the downtime.
#include "hv/migrate.h"

#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/pmm.h"
#include "arch/x86/string.h"
#include "arch/x86/tick.h"
#include "arch/x86/timer.h"
#include "hv/cmdline.h"
#include "hv/cpu_work.h"
#include "hv/devices/nmi_button.h"
#include "hv/live_vms.h"
#include "hv/vm_runner.h"
#include "hv/vm_stat.h"
#include "hv/vm_state.h"
#include "mmu/atomic.h"

namespace hv {

constexpr uint64_t kPage = 4096;
constexpr unsigned kMaxSlotIds = 64;
constexpr unsigned kMaxRounds = 16;

struct Migration {
  enum Phase : uint32_t { kOff, kArmed, kStarting, kFailed, kPreCopy, kPausing, kSwitched, kAborted };
  struct Slot {
    uint32_t id = 0;
    uint64_t base_gfn = 0, npages = 0, hpa = 0;
    uint32_t flags = 0;
    uint8_t max_level = 1;
    bool logging = false;  // DirtySource::start succeeded
  };

  RunVm* a = nullptr;
  RunVm* b = nullptr;
  DirtySource* dirty = nullptr;
  uint64_t due = 0;  // TSC of the trigger
  unsigned max_rounds = 3;
  uint64_t step_pages = 512;
  uint64_t stop_pages = 256;     // hv.migrate-stop-pages: a dirty round at or below it ends pre-copy
  bool lose_final_copy = false;  // hv.migrate-test=lose-final-copy: the check must bite
  uint64_t lose_from_gpa = 0;    // hv.migrate-test-lose-gpa: only final-copy pages at or above it
  mmu::Atomic<uint32_t> phase{kOff};
  mmu::Atomic<uint32_t> busy{0};
  mmu::Atomic<uint32_t> arrived{0};
  mmu::Atomic<uint32_t> abort{0};
  mmu::Atomic<uint32_t> released{0};
  mmu::Atomic<uint32_t> restored{0};

  // --- the pre-copy cursor and counters (owned by the holder of `busy`; then by the last arriver) ---
  unsigned round = 0;  // 1: the whole pool; 2..max_rounds: dirty pages
  unsigned slot_idx = 0;
  uint64_t page = 0;
  bool harvested = false;
  bool full_copy_final = false;  // a harvest failed: the stop-and-copy copies the whole pool
  uint64_t next_step = 0;        // TSC before which no step starts (the duty cycle, migrate_poll)
  Slot slots[kMaxSlotIds];
  unsigned nslots = 0;
  uint64_t* bitmap = nullptr;
  size_t words = 0;
  uint64_t bitmap_frames = 0;
  uint64_t round_pages[kMaxRounds + 1] = {};  // pages copied in each round
  uint64_t round_dirty[kMaxRounds + 1] = {};  // pages the round's harvests reported (rounds 2..)
  unsigned rounds_done = 0;                   // pre-copy rounds completed before the pause
  enum StopRule : uint8_t { kRoundLimit, kSmallDirtySet, kAbandoned } stop_rule = kRoundLimit;
  uint64_t final_pages = 0;
  uint64_t total_pages = 0;
  uint64_t t_start = 0, t_pause = 0, t_switch = 0;
  uint64_t t_arrived = 0;   // the last vCPU of the source arrived: the stop-and-copy starts
  uint64_t t_restored = 0;  // the last vCPU of the target restored: the downtime ends
  unsigned final_by = 0;    // the vCPU that did the stop-and-copy
  bool final_full = false;  // the stop-and-copy copied the whole pool
  // The report (rounds, stop rule, stop-and-copy, done) is printed after the downtime, at a
  // safe point of the target, by whoever claims it (report: 0 -> 1): hv's serial output is
  // slow (under Bochs a 115200-baud line of 150 characters is about 13 ms of guest time), and
  // printed while the source is paused it was most of the downtime.
  mmu::Atomic<uint32_t> report{0};

  VcpuState vcpu[kMaxVcpus];
  DeviceState dev;

  void reset() {
    a = b = nullptr;
    dirty = nullptr;
    due = 0;
    phase.store(kOff, mmu::Order::relaxed);
    busy.store(0, mmu::Order::relaxed);
    arrived.store(0, mmu::Order::relaxed);
    abort.store(0, mmu::Order::relaxed);
    released.store(0, mmu::Order::relaxed);
    restored.store(0, mmu::Order::relaxed);
    round = slot_idx = 0;
    page = 0;
    harvested = full_copy_final = false;
    next_step = 0;
    nslots = 0;
    bitmap = nullptr;
    words = 0;
    bitmap_frames = 0;
    for (uint64_t& r : round_pages) r = 0;
    for (uint64_t& r : round_dirty) r = 0;
    rounds_done = 0;
    stop_rule = kRoundLimit;
    final_pages = total_pages = 0;
    t_start = t_pause = t_switch = 0;
    t_arrived = t_restored = 0;
    final_by = 0;
    final_full = false;
    report.store(0, mmu::Order::relaxed);
  }
};

namespace {

// One migration per VM number (1..kMaxVms; the memtouch VM, 0, has no pool and is refused), and
// its target. Static: the kernel has no heap, and a RunVm is too big for a stack.
Migration g_migrations[kMaxVms];
RunVm g_targets[kMaxVms];
AllDirtySource g_all_dirty;

MmuDirtySource g_mmu_dirty;

// hv.migrate-dirty=log (default) | all.
DirtySource& dirty_source() {
  char v[8];
  if (cmdline::get("hv.migrate-dirty", v, sizeof v) && !strcmp(v, "all")) return g_all_dirty;
  return g_mmu_dirty;
}

const char* phase_name(uint32_t p) {
  static const char* const names[] = {"off", "armed", "starting", "failed", "pre-copy", "pausing", "switched", "aborted"};
  return p < sizeof names / sizeof names[0] ? names[p] : "?";
}

unsigned slot_of(const RunVm* target) { return static_cast<unsigned>(target - g_targets); }

uint64_t words_for(uint64_t npages) { return (npages + 63) / 64; }

// Whole pages, 8 bytes at a time (REP MOVSQ: 512 iterations a page). memcpy's REP MOVSB is as
// fast on a CPU with fast strings, but an emulator charges time per iteration: under Bochs
// (one TSC tick per instruction or REP iteration) a 4 KiB page costs 4096 ticks with MOVSB and
// 512 with MOVSQ, and a one-vCPU guest does not run while its vCPU copies.
void copy_pages(uint64_t dst, uint64_t src, uint64_t npages) {
  uint64_t n = npages * (kPage / 8);
  asm volatile("rep movsq" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
}

// Copies guest page `a_hpa` (inside the source's pool) to the same offset of the target's pool.
bool copy_page(Migration& m, uint64_t a_hpa) {
  const uint64_t base = m.a->vm.pool_hpa();
  if (a_hpa < base || a_hpa - base >= m.a->vm.pool_bytes()) return false;  // not pool-backed
  copy_pages(m.b->vm.pool_hpa() + (a_hpa - base), a_hpa, 1);
  return true;
}

void copy_pool(Migration& m, uint64_t* counter) {
  const uint64_t pages = m.a->vm.pool_bytes() / kPage;
  copy_pages(m.b->vm.pool_hpa(), m.a->vm.pool_hpa(), pages);
  *counter += pages;
}

// The source's memslots now (address space 0, ids 0..63). Called with the source's vCPUs
// paused, or racing with the guest's memslot hypercalls during pre-copy (a slot that changes
// later is caught by the comparison at the stop-and-copy).
unsigned list_slots(Vm& vm, Migration::Slot* out) {
  unsigned n = 0;
  for (uint32_t id = 0; id < kMaxSlotIds; id++) {
    mmu::Memslot s;
    if (!vm.mmu().find_slot(id, &s)) continue;
    out[n].id = id;
    out[n].base_gfn = s.base_gfn;
    out[n].npages = s.npages;
    out[n].hpa = s.backing_hpa;
    // Without the dirty-log flag: the migration's own logging sets it (the comparison of
    // same_slots() is about the guest's changes), and B's slots are created without it.
    out[n].flags = s.flags & ~mmu::Memslot::kDirtyLog;
    out[n].max_level = s.max_level;
    out[n].logging = false;
    n++;
  }
  return n;
}

void free_bitmap(Migration& m) {
  if (!m.bitmap) return;
  const uint64_t pa = reinterpret_cast<uint64_t>(m.bitmap);
  for (uint64_t f = 0; f < m.bitmap_frames; f++) x86::pmm::free_4k(pa + f * kPage);
  m.bitmap = nullptr;
  m.bitmap_frames = 0;
}

void stop_logging(Migration& m, unsigned self) {
  for (unsigned i = 0; i < m.nslots; i++)
    if (m.slots[i].logging) {
      m.dirty->stop(m.a->vm, self, m.slots[i].id);
      m.slots[i].logging = false;
    }
}

// Harvest slot i into the bitmap (cleared first). False: the slot can't be harvested.
bool harvest(Migration& m, unsigned self, unsigned i, uint64_t* pages) {
  const Migration::Slot& s = m.slots[i];
  const uint64_t w = words_for(s.npages);
  *pages = 0;
  if (!s.logging || w > m.words) return false;
  memset(m.bitmap, 0, w * 8);
  return m.dirty->harvest(m.a->vm, self, s.id, s.npages, m.bitmap, w, pages);
}

void begin_pausing(Migration& m, unsigned self) {
  m.t_pause = x86::rdtsc();
  // Release: the counters of the last step are published with the phase (the last arriver
  // reads them after its acquire of `arrived`, which follows this store on every vCPU).
  m.phase.store(Migration::kPausing, mmu::Order::release);
  kick_vcpus(m.a->state, self);
}

// End of round m.round. Pre-copy ends (the pause is requested) when this round's dirty set was
// small enough that copying it with the guest stopped is cheap (hv.migrate-stop-pages: the next
// dirty set, written while this one was copied, is expected to be no larger), or when the round
// limit is reached; round 1 (the whole pool) has no dirty set and never ends pre-copy early.
void next_round(Migration& m) {
  m.rounds_done = m.round;
  const bool small = m.round >= 2 && m.round_dirty[m.round] <= m.stop_pages;
  m.round++;
  m.slot_idx = 0;
  m.page = 0;
  m.harvested = false;
  if (small || m.round > m.max_rounds) {
    m.stop_rule = small ? Migration::kSmallDirtySet : Migration::kRoundLimit;
    m.round = m.max_rounds + 1;  // no more copying: the next step asks for the pause
  }
}

// One bounded pre-copy step: at most step_pages pages copied (and at most one harvest).
void precopy_step(Migration& m, unsigned self) {
  if (m.abort.load(mmu::Order::relaxed)) {  // a vCPU ended: don't copy for nothing
    m.stop_rule = Migration::kAbandoned;
    begin_pausing(m, self);
    return;
  }
  // Pre-copy is over: pause now, one duty-cycle gap after the last copying step. The guest ran
  // in that gap, as it runs between the last round and the pause on any machine: what it wrote
  // there is the stop-and-copy's work (with one vCPU, pausing in the step that ended the last
  // round would leave the stop-and-copy nothing to do, and its path untested).
  if (m.round > m.max_rounds) {
    begin_pausing(m, self);
    return;
  }
  uint64_t budget = m.step_pages;
  Vm& a = m.a->vm;
  while (budget && m.round <= m.max_rounds) {
    if (m.round == 1) {
      const uint64_t pool_pages = a.pool_bytes() / kPage;
      uint64_t n = pool_pages - m.page < budget ? pool_pages - m.page : budget;
      copy_pages(m.b->vm.pool_hpa() + m.page * kPage, a.pool_hpa() + m.page * kPage, n);
      m.page += n;
      budget -= n;
      m.round_pages[1] += n;
      if (m.page == pool_pages) next_round(m);
      continue;
    }
    if (m.slot_idx >= m.nslots) {
      next_round(m);
      continue;
    }
    const Migration::Slot& s = m.slots[m.slot_idx];
    if (!m.harvested) {
      uint64_t pages = 0;
      if (!harvest(m, self, m.slot_idx, &pages)) {
        m.full_copy_final = true;  // nothing lost: the stop-and-copy copies the whole pool
        m.slot_idx++;
        continue;
      }
      m.harvested = true;
      m.page = 0;
      m.round_dirty[m.round] += pages;
      if (--budget == 0) break;  // a harvest counts as a page of work
    }
    while (budget && m.page < s.npages) {
      const uint64_t word = m.bitmap[m.page / 64];
      if (!word) {
        m.page = (m.page | 63) + 1;  // 64 clean pages at once
        continue;
      }
      if ((word >> (m.page % 64)) & 1) {
        if (copy_page(m, s.hpa + m.page * kPage)) m.round_pages[m.round]++;
        budget--;
      }
      m.page++;
    }
    if (m.page >= s.npages) {
      m.slot_idx++;
      m.harvested = false;
      m.page = 0;
    }
  }
}

// The trigger, on the vCPU that claimed it: build the target, start the dirty log.
void start(Migration& m, Vcpu& vcpu) {
  RunVm& a = *m.a;
  m.t_start = x86::rdtsc();
  if (const char* err = build_migration_target(a, *m.b)) {
    x86::log::error("vm%u: migration: not possible: %s; vm%u keeps running", a.id, err, a.id);
    m.phase.store(Migration::kFailed, mmu::Order::release);
    return;
  }
  const uint64_t pool_pages = a.vm.pool_bytes() / kPage;
  m.words = words_for(pool_pages);
  m.bitmap_frames = (m.words * 8 + kPage - 1) / kPage;
  m.bitmap = reinterpret_cast<uint64_t*>(x86::pmm::alloc_pages(static_cast<unsigned>(m.bitmap_frames), true));
  if (!m.bitmap) {
    x86::log::error("vm%u: migration: not possible: no memory for the dirty bitmap (%lu pages); vm%u keeps running", a.id,
                    m.bitmap_frames, a.id);
    m.bitmap_frames = 0;
    m.b->vm.destroy();
    m.phase.store(Migration::kFailed, mmu::Order::release);
    return;
  }
  {
    x86::SpinLockGuard g(a.vm.slot_lock);  // no memslot change while the list is taken
    m.nslots = list_slots(a.vm, m.slots);
  }
  m.dirty = &dirty_source();
  unsigned logging = 0;
  for (unsigned i = 0; i < m.nslots; i++) {
    Migration::Slot& s = m.slots[i];
    if (const char* why = m.dirty->start(a.vm, vcpu.index(), s.id, s.npages)) {
      x86::log::warn("vm%u: migration: slot %u is not logged (%s): copied whole at the stop-and-copy", a.id, s.id, why);
      m.full_copy_final = true;  // this slot is copied whole at the stop-and-copy
      continue;
    }
    s.logging = true;
    logging++;
    // The first harvest reports everything: discard it, round 1 copies the whole pool after it,
    // and every write from here on is in a later harvest.
    uint64_t pages = 0;
    if (!harvest(m, vcpu.index(), i, &pages)) m.full_copy_final = true;
  }
  m.round = 1;
  m.page = 0;
  x86::log::info("vm%u: migration: started by vcpu%u: target VM with a %lu MiB RAM pool at 0x%lx, %u memslot(s), %u logged; "
                 "dirty pages: %s",
                 a.id, vcpu.index(), a.vm.pool_bytes() >> 20, m.b->vm.pool_hpa(), m.nslots, logging, m.dirty->name());
  m.phase.store(Migration::kPreCopy, mmu::Order::release);
}

bool same_slots(Migration& m) {
  static Migration::Slot now[kMaxSlotIds];  // only the last arriver of one migration uses it at a time
  const unsigned n = list_slots(m.a->vm, now);
  if (n != m.nslots) return false;
  for (unsigned i = 0; i < n; i++) {
    const Migration::Slot &x = now[i], &y = m.slots[i];
    if (x.id != y.id || x.base_gfn != y.base_gfn || x.npages != y.npages || x.hpa != y.hpa || x.flags != y.flags)
      return false;
  }
  return true;
}

// Mirrors the source's memslots into the target (slot 0 exists there already: init_pool).
const char* mirror_slots(Migration& m) {
  static Migration::Slot now[kMaxSlotIds];
  Vm& a = m.a->vm;
  Vm& b = m.b->vm;
  const unsigned n = list_slots(a, now);
  for (unsigned i = 0; i < n; i++) {
    const Migration::Slot& s = now[i];
    if (s.id == 0) continue;
    if (s.hpa < a.pool_hpa() || s.hpa - a.pool_hpa() + s.npages * kPage > a.pool_bytes()) return "a memslot outside the RAM pool";
    mmu::Memslot ms;
    ms.id = s.id;
    ms.as_id = 0;
    ms.base_gfn = s.base_gfn;
    ms.npages = s.npages;
    ms.backing_hpa = b.pool_hpa() + (s.hpa - a.pool_hpa());
    ms.max_level = s.max_level;
    ms.flags = s.flags;
    if (b.mmu().update_memslot(mmu::MemslotOp::create(ms)) != mmu::MemslotError::ok) return "a memslot could not be created";
  }
  uint64_t guest_slots = 0;
  {
    x86::SpinLockGuard g(a.slot_lock);
    guest_slots = a.guest_slots;
  }
  x86::SpinLockGuard g(b.slot_lock);
  b.guest_slots = guest_slots;
  return nullptr;
}

// The target could not take over, or a vCPU ended: the target goes, the source stays.
void drop_target(Migration& m, unsigned self) {
  stop_logging(m, self);
  free_bitmap(m);
  m.b->vm.destroy();
}

// The last vCPU of the source to arrive: every vCPU is out of its run loop (paused, or one of
// them ended), no pre-copy step runs.
void finish_stop_and_copy(Migration& m, Vcpu& self) {
  RunVm& a = *m.a;
  RunVm& b = *m.b;
  m.t_arrived = x86::rdtsc();
  if (m.abort.load(mmu::Order::relaxed)) {
    drop_target(m, self.index());
    x86::log::info("vm%u: migration: abandoned in phase %s (a vCPU ended by itself); the target VM is destroyed, vm%u "
                   "runs on",
                   a.id, phase_name(m.phase.load(mmu::Order::relaxed)), a.id);
    m.phase.store(Migration::kAborted, mmu::Order::release);
    return;
  }
  // The rest of the memory: what the final harvests report, or the whole pool when a slot
  // could not be logged or the guest changed its memslots since the start.
  // The target's pool is not zeroed when it is built (build_migration_target): round 1 writes
  // every page of it. Should the pause ever come before round 1 ended, the whole pool is copied.
  const bool round1_whole = m.round_pages[1] == m.a->vm.pool_bytes() / kPage;
  const bool full = m.full_copy_final || !round1_whole || !same_slots(m);
  uint64_t n = 0;
  uint64_t lost = 0;
  if (m.lose_final_copy)
    x86::log::warn("vm%u: migration: test: the stop-and-copy loses its pages at or above gpa 0x%lx "
                   "(hv.migrate-test=lose-final-copy); the guest's writes there since the last pre-copy round are lost",
                   a.id, m.lose_from_gpa);
  if (m.lose_final_copy && full) {
    // Nothing is copied (the knob's test does not change its memslots: not reached there).
  } else if (full) {
    copy_pool(m, &n);
  } else {
    for (unsigned i = 0; i < m.nslots; i++) {
      uint64_t pages = 0;
      if (!harvest(m, self.index(), i, &pages)) {  // can't happen after same_slots; copy everything instead
        n = 0;
        copy_pool(m, &n);
        break;
      }
      const Migration::Slot& s = m.slots[i];
      for (uint64_t p = 0; p < s.npages; p++) {
        if (!((m.bitmap[p / 64] >> (p % 64)) & 1)) continue;
        // The test knob loses the guest's data pages only: its code and stack (below the
        // threshold) still arrive, so the guest runs on to find the lost words itself.
        if (m.lose_final_copy && (s.base_gfn + p) * kPage >= m.lose_from_gpa) {
          lost++;
          continue;
        }
        n += copy_page(m, s.hpa + p * kPage);
      }
    }
  }
  m.final_pages = n;
  if (m.lose_final_copy) x86::log::warn("vm%u: migration: test: %lu page(s) of the final copy lost on purpose", a.id, lost);
  free_bitmap(m);
  // The source's dirty logs stay on: it is destroyed right after the switch, and its MMU's
  // teardown frees the logs of slots still logged (Mmu::~Mmu). Stopping them here would zap
  // every slot (the stop lets huge leaves come back), a pass over all of the source's leaves
  // inside the downtime for nothing. Only if the source runs on are they stopped.
  if (const char* err = mirror_slots(m)) {
    stop_logging(m, self.index());
    // The source is intact (paused, its state saved but not released): abandon.
    x86::log::error("vm%u: migration: %s in the target; the target VM is destroyed, vm%u runs on", a.id, err, a.id);
    m.b->vm.destroy();
    m.phase.store(Migration::kAborted, mmu::Order::release);
    return;
  }
  // Devices, the VM's guest-visible words, and what the runner gives a VM before its start.
  save_devices(a.vm, m.dev);
  restore_devices(b.vm, m.dev);
  const uint64_t khz = x86::timer::tsc_khz();
  b.state.reset(a.vcpus, a.state.time_limit_ms(), a.state.deadline());
  for (unsigned i = 0; i < a.vcpus; i++) {
    b.state.place(i, a.state.cpu_of(i));
    if (a.state.wake_pending(i)) b.state.post_wake(i);
  }
  b.vm.run_state = &b.state;
  b.vm.stat_clock.start(x86::rdtsc(), stat_period_ms() * khz);
  vm_stress_start(b.vm, x86::rdtsc(), khz);
  b.vm.stress.slot_live = a.vm.stress.slot_live;  // the stress slot was mirrored with the others
  nmi_button_start(b.vm, x86::rdtsc(), khz);       // hv.nmi-ms: the button keeps being pressed
  b.t0 = a.t0;
  // Idle CPUs help the target from now on; the source's deferred work is finished by its destroy.
  live_vms_remove(a.vm);
  live_vms_add(b.vm);
  for (unsigned r = 1; r <= m.rounds_done && r <= kMaxRounds; r++) m.total_pages += m.round_pages[r];
  m.total_pages += m.final_pages;
  m.final_by = self.index();
  m.final_full = full;
  // The target's vCPUs look for the report at their safe points (print_report).
  b.vm.migration = &m;
  m.t_switch = x86::rdtsc();
  // Release: the target is complete before a waiting vCPU sees kSwitched (acquire).
  m.phase.store(Migration::kSwitched, mmu::Order::release);
}

// The report, once, after the downtime (see Migration::report): by the first vCPU of the target
// that passes a safe point after the last restore, or by one that ends before that.
void print_report(Migration& m) {
  // Acquire: pairs with the last restore's release store of 1 (its counters and times).
  uint32_t due = 1;
  if (m.report.load(mmu::Order::relaxed) != 1) return;  // every safe point of the target looks: a load, no CAS
  if (!m.report.compare_exchange(due, 2, mmu::Order::acquire)) return;
  const unsigned id = m.b->id;
  for (unsigned r = 1; r <= m.rounds_done && r <= kMaxRounds; r++) {
    if (r == 1)
      x86::log::info("vm%u: migration: pre-copy round 1: %lu pages (the whole RAM pool)", id, m.round_pages[1]);
    else
      x86::log::info("vm%u: migration: pre-copy round %u: %lu pages (dirty set %lu pages)", id, r, m.round_pages[r],
                     m.round_dirty[r]);
  }
  if (m.stop_rule == Migration::kSmallDirtySet)
    x86::log::info("vm%u: migration: pre-copy ended after round %u of at most %u: its dirty set (%lu pages) was at most "
                   "hv.migrate-stop-pages=%lu",
                   id, m.rounds_done, m.max_rounds, m.round_dirty[m.rounds_done], m.stop_pages);
  else
    x86::log::info("vm%u: migration: pre-copy ended after round %u: the round limit (hv.migrate-rounds=%u); the last "
                   "dirty set was %lu pages (hv.migrate-stop-pages=%lu)",
                   id, m.rounds_done, m.max_rounds, m.rounds_done >= 2 ? m.round_dirty[m.rounds_done] : 0, m.stop_pages);
  x86::log::info("vm%u: migration: stop-and-copy by vcpu%u: %lu pages%s, the state of %u vCPU(s) and the devices", id,
                 m.final_by, m.final_pages, m.final_full ? " (the whole RAM pool)" : "", m.b->vcpus);
  for (unsigned i = 0; i < m.a->vcpus; i++) m.a->vcpu[i].print_run_reports();  // the source's, until the pause
  x86::log::info("vm%u: migration: the source VM is destroyed, its %lu MiB RAM pool and page tables freed", id,
                 m.b->vm.pool_bytes() >> 20);
  const uint64_t khz = x86::timer::tsc_khz() ?: 1;
  const uint64_t down = m.t_restored - m.t_pause;
  const uint64_t us = down * 1000 / khz;
  x86::log::info("vm%u: migration: done: %u pre-copy round(s), %lu pages (%lu MiB) copied in total, downtime %lu TSC ticks "
                 "(%lu us = %lu.%03lu ms) from the pause request to the last vCPU restored, final copy %lu pages, "
                 "%lu ms in all",
                 id, m.rounds_done, m.total_pages, m.total_pages * kPage >> 20, down, us, us / 1000, us % 1000,
                 m.final_pages, (m.t_restored - m.t_start) / khz);
  x86::log::info("vm%u: migration: downtime in TSC ticks: %lu until every vCPU had paused, %lu for the stop-and-copy "
                 "(memory, slots, devices), %lu to hand the vCPUs over (source released and destroyed, target "
                 "vCPUs set up and restored)",
                 id, m.t_arrived - m.t_pause, m.t_switch - m.t_arrived, m.t_restored - m.t_switch);
}

}  // namespace

const char* MmuDirtySource::start(Vm& vm, unsigned vcpu, unsigned slot_id, uint64_t) {
  const mmu::MemslotError e = vm.mmu().dirty_log_start(vcpu, slot_id);
  return e == mmu::MemslotError::ok ? nullptr : mmu::to_string(e);
}

void MmuDirtySource::stop(Vm& vm, unsigned vcpu, unsigned slot_id) { vm.mmu().dirty_log_stop(vcpu, slot_id); }

bool MmuDirtySource::harvest(Vm& vm, unsigned vcpu, unsigned slot_id, uint64_t, uint64_t* bitmap, size_t words,
                             uint64_t* pages) {
  return vm.mmu().dirty_log_harvest(vcpu, slot_id, bitmap, words, pages) == mmu::MemslotError::ok;
}

const char* MmuDirtySource::name() const { return "the MMU's dirty log (hv.dirty)"; }

bool AllDirtySource::harvest(Vm&, unsigned, unsigned, uint64_t npages, uint64_t* bitmap, size_t words, uint64_t* pages) {
  if (words_for(npages) > words) return false;
  for (uint64_t w = 0; w < npages / 64; w++) bitmap[w] = ~0ull;
  if (npages % 64) bitmap[npages / 64] |= (1ull << (npages % 64)) - 1;
  *pages = npages;
  return true;
}

void migrate_arm(RunVm& rv, uint64_t now, uint64_t khz) {
  rv.vm.migration = nullptr;
  if (!cmdline::has("hv.migrate-ms")) return;
  if (!rv.vm.pool_bytes()) {
    x86::log::warn("vm%u: migration: not supported for this VM (no RAM pool); hv.migrate-ms ignored", rv.id);
    return;
  }
  Migration& m = g_migrations[rv.id % kMaxVms];
  m.reset();
  m.a = &rv;
  m.b = &g_targets[rv.id % kMaxVms];
  m.dirty = &dirty_source();
  const uint64_t ms = cmdline::get_number("hv.migrate-ms", 0);
  m.due = now + ms * khz;
  uint64_t rounds = cmdline::get_number("hv.migrate-rounds", 3);
  m.max_rounds = static_cast<unsigned>(rounds < 1 ? 1 : rounds > kMaxRounds ? kMaxRounds : rounds);
  const uint64_t step = cmdline::get_number("hv.migrate-step-pages", 512);
  m.step_pages = step ? step : 1;
  m.stop_pages = cmdline::get_number("hv.migrate-stop-pages", 256);
  char test[24];
  const bool test_knob = cmdline::get("hv.migrate-test", test, sizeof test);
  m.lose_final_copy = test_knob && !strcmp(test, "lose-final-copy");
  // hv.migrate-test=lose-fpu: the target's vCPUs do not get the saved x87/SSE/AVX registers
  // (the CPU's were reset at the save): the guest's register check must fail.
  set_fpu_restore_skipped_for_test(test_knob && !strcmp(test, "lose-fpu"));
  if (test_knob && !strcmp(test, "lose-fpu"))
    x86::log::warn("vm%u: migration: test: the x87/SSE/AVX registers are not restored in the target "
                   "(hv.migrate-test=lose-fpu)", rv.id);
  m.lose_from_gpa = cmdline::get_number("hv.migrate-test-lose-gpa", 0);
  m.phase.store(Migration::kArmed, mmu::Order::relaxed);  // published to the vCPUs by cpu_work::post
  rv.vm.migration = &m;
  x86::log::info("vm%u: migration armed: %lu ms after the start (hv.migrate-ms), %u pre-copy round(s), %lu pages per step, "
                 "early stop at a dirty set of at most %lu pages",
                 rv.id, ms, m.max_rounds, m.step_pages, m.stop_pages);
}

void migrate_poll(Vcpu& vcpu, uint64_t now) {
  Migration* m = vcpu.vm().migration;
  if (!m) return;
  if (&m->b->vm == &vcpu.vm()) {  // the target, after the switch: only the report is left
    print_report(*m);
    return;
  }
  uint32_t ph = m->phase.load(mmu::Order::acquire);
  if (ph == Migration::kArmed) {
    if (now < m->due) return;
    if (m->phase.compare_exchange(ph, Migration::kStarting, mmu::Order::acq_rel)) start(*m, vcpu);
    return;
  }
  if (ph != Migration::kPreCopy) return;
  uint32_t free = 0;
  if (!m->busy.compare_exchange(free, 1, mmu::Order::acquire)) return;  // another vCPU copies
  // The step may have ended pre-copy meanwhile (a step on another vCPU just before ours).
  // Duty cycle: after a step that took T, no step starts for another T, so the copying takes at
  // most half of the time of the vCPUs that do it. Without it a step that outlasts a tick
  // period finds the next tick pending at VM entry, the guest exits at once, and a one-vCPU
  // guest would not run at all during the pre-copy rounds.
  if (m->phase.load(mmu::Order::relaxed) == Migration::kPreCopy && now >= m->next_step) {
    precopy_step(*m, vcpu.index());
    const uint64_t end = x86::rdtsc();
    m->next_step = end + (end - now);
  }
  m->busy.store(0, mmu::Order::release);  // pairs with the next taker's acquire CAS
}

bool migrate_pause_requested(const Vcpu& vcpu) {
  Vm& vm = const_cast<Vcpu&>(vcpu).vm();
  const Migration* m = vm.migration;
  return m && &m->a->vm == &vm && m->phase.load(mmu::Order::relaxed) == Migration::kPausing;
}

MigrateNext migrate_vcpu_ended(RunVm& rv, unsigned i, bool started, RunVm** target) {
  Migration* m = rv.vm.migration;
  if (!m) return MigrateNext::kNone;
  if (m->b == &rv) {  // a vCPU of the target ended: the migration is over, its report may not be out yet
    print_report(*m);
    return MigrateNext::kNone;
  }
  Vcpu& v = rv.vcpu[i];
  uint32_t ph = m->phase.load(mmu::Order::acquire);
  // Before the trigger: this vCPU's end disarms it (the trigger's CAS and this one: one wins).
  while (ph == Migration::kArmed)
    if (m->phase.compare_exchange(ph, Migration::kOff, mmu::Order::acq_rel)) return MigrateNext::kNone;
  if (ph == Migration::kOff || ph == Migration::kFailed) return MigrateNext::kNone;
  const bool paused = v.paused_for_migration();
  if (paused) {
    save_vcpu_state(v, m->vcpu[i]);
    m->vcpu[i].started = started;
  } else {
    m->abort.store(1, mmu::Order::relaxed);  // published by the fetch_add below
  }
  if (m->arrived.fetch_add(1, mmu::Order::acq_rel) + 1 == rv.vcpus) {
    finish_stop_and_copy(*m, v);
  } else {
    // Wait like a parked vCPU: serve requests, help deferred work.
    for (;;) {
      ph = m->phase.load(mmu::Order::acquire);
      if (ph == Migration::kSwitched || ph == Migration::kAborted || ph == Migration::kFailed) break;
      cpu_work::service();
      x86::tick::consume();
      idle_work();
      asm volatile("pause" ::: "memory");
    }
  }
  ph = m->phase.load(mmu::Order::acquire);
  if (ph != Migration::kSwitched) {
    if (!(paused && ph == Migration::kAborted)) return MigrateNext::kNone;
    restore_vcpu_fpu(m->vcpu[i]);  // the save reset the CPU's registers: the guest's go back
    return MigrateNext::kResume;
  }
  // Moved: this vCPU's console line goes out now (its target vCPU starts a fresh one), then
  // let go of the source's VMCS; the last one to do so destroys the source.
  v.console_flush();
  v.release();
  if (m->released.fetch_add(1, mmu::Order::acq_rel) + 1 == rv.vcpus) rv.vm.destroy();  // reported by print_report
  *target = m->b;
  return MigrateNext::kMoved;
}

void migrate_vcpu_resume(RunVm& b, unsigned i, bool* started) {
  Migration& m = g_migrations[slot_of(&b)];
  restore_vcpu_state(b.vcpu[i], m.vcpu[i]);
  *started = m.vcpu[i].started;
  if (m.restored.fetch_add(1, mmu::Order::acq_rel) + 1 == b.vcpus) {
    m.t_restored = x86::rdtsc();
    // The target's vCPUs find the report due at their next safe point (print_report).
    m.report.store(1, mmu::Order::release);  // pairs with print_report's acquire CAS
  }
}

RunVm* migrate_target_of(RunVm& rv) {
  Migration* m = rv.vm.migration;
  if (!m || m->a != &rv) return nullptr;  // not migrated, or the target itself
  return m->phase.load(mmu::Order::acquire) == Migration::kSwitched ? m->b : nullptr;
}

}  // namespace hv
