// Cross-CPU requests (see cpu_work.h).
#include "hv/cpu_work.h"

#include "arch/x86/apic.h"
#include "arch/x86/cpu.h"
#include "arch/x86/idt.h"
#include "arch/x86/percpu.h"
#include "arch/x86/smp.h"
#include "arch/x86/tick.h"
#include "arch/x86/timer.h"
#include "arch/x86/vmx/invalidate.h"
#include "arch/x86/vmx/root_mode.h"
#include "hv/counter.h"
#include "hv/panic.h"
#include "hv/trace.h"
#include "mmu/atomic.h"

namespace hv::cpu_work {

detail::Slot detail::g_slots[x86::kMaxCpus];

namespace {

using mmu::Atomic;
using mmu::Order;

// Bit 63 of a flush request: "everything" (global INVEPT); VM t uses bit t % 63.
constexpr uint64_t kFlushAll = 1ull << 63;
uint64_t tag_bit(uint64_t tag) { return 1ull << (tag % 63); }

using detail::g_slots;
using detail::Slot;
const x86::vmx::Capabilities* g_caps = nullptr;
// Statistics (hv/counter.h: relaxed, they order nothing).
Counter g_flush_requests;
Counter g_remote_flushes;
Counter g_flush_ipis;
Counter g_flush_skipped;
Counter g_fence_requests;
Counter g_fence_waits;
Counter g_fence_skipped;
// A fence request that waits this long for one CPU is a hang (a CPU spinning somewhere that
// answers nothing): panic with its name rather than freeze. Generous: Bochs runs slowly.
constexpr uint64_t kFenceTimeoutUs = 30'000'000;

void kick_handler(x86::idt::InterruptFrame*) { x86::apic::eoi(); }

void (*g_idle_work)() = nullptr;

void idle_hook(unsigned) {
  service();
  x86::tick::consume();
  if (g_idle_work) g_idle_work();
}

void local_flush(const Slot& s, uint64_t tags) {
  // INVEPT is only valid in VMX operation (#UD otherwise); a CPU outside it caches no
  // EPT-derived translation anyway.
  if (!x86::vmx::in_root_mode()) return;
  if (tags & kFlushAll) {
    x86::vmx::invept_global();
  } else if (s.loaded_eptp && (tags & tag_bit(s.loaded_tag.load(Order::relaxed)))) {
    // Single-context where the CPU has it (invept_context falls back to global).
    x86::vmx::invept_context(*g_caps, s.loaded_eptp);
  }
  // Any other VM: this CPU holds none of its translations (a vCPU flushes its EPTP when it
  // leaves this CPU or switches roots), nothing to do.
}

bool online(unsigned cpu) { return cpu == 0 || x86::percpu(cpu).online; }

Slot& self() { return g_slots[x86::cpu_index()]; }

}  // namespace

void init(void (*idle_work)(), const x86::vmx::Capabilities* caps) {
  g_idle_work = idle_work;
  g_caps = caps;
  x86::idt::set_handler(kKickVector, kick_handler);
  x86::smp::set_ap_idle_hook(idle_hook);
}

void kick(unsigned cpu) { x86::apic::send_fixed(x86::percpu(cpu).apic_id, kKickVector); }

void answer_fences_slow(Slot& s, uint64_t want) {
  // The fence point the requester waits for: our stores before it are in memory before
  // "done" is, and our loads after it see what the requester stored before its request.
  mmu::atomic_thread_fence(Order::seq_cst);
  // Release: pairs with the requester's acquire load of fence_done.
  s.fence_done.store(want, Order::release);
}

void service_flushes() {
  answer_fences();
  Slot& s = self();
  // Acquire: pairs with the requester's bump of flush_want (a seq_cst RMW, so a release);
  // the tag bits it OR-ed before the bump are seen by the exchange below.
  const uint64_t want = s.flush_want.load(Order::seq_cst);
  if (want == s.flush_done.load(Order::relaxed)) return;
  const uint64_t tags = s.flush_tags.exchange(0, Order::acq_rel);
  local_flush(s, tags);
  g_remote_flushes++;
  if (trace::on(trace::kCatFlush)) trace::record(trace::kFlushServe, 0, 0xFF, x86::rdtsc(), tags, 0);
  // Release: the requester's acquire load sees the flush as done only after INVEPT retired.
  s.flush_done.store(want, Order::release);
}

void service() {
  service_flushes();
  Slot& s = self();
  if (s.running) return;
  // Acquire pairs with the requester's release store of fn (arg was written before it).
  void (*fn)(void*) = s.fn.load(Order::acquire);
  if (!fn) return;
  s.running = true;
  fn(s.arg);
  s.running = false;
  s.fn.store(nullptr, Order::release);
}

bool yield_wanted() {
  const Slot& s = self();
  if (x86::tick::pending()) return true;
  if (s.fence_want.load(Order::relaxed) != s.fence_done.load(Order::relaxed)) return true;
  if (s.flush_want.load(Order::relaxed) != s.flush_done.load(Order::relaxed))
    return true;
  return !s.running && s.fn.load(Order::relaxed) != nullptr;
}

namespace {
// Spins until answered() holds or the clock passes deadline_us, and says which. Meanwhile it
// answers other CPUs' flush and fence requests: two CPUs waiting for each other must not
// deadlock.
template <class Answered>
bool wait_answered(Answered answered, uint64_t deadline_us) {
  while (!answered()) {
    if (x86::timer::now_us() > deadline_us) return answered();
    service_flushes();
    x86::cpu_relax();
  }
  return true;
}
}  // namespace

bool post(unsigned cpu, void (*fn)(void*), void* arg) {
  Slot& s = g_slots[cpu];
  if (s.fn.load(Order::acquire) != nullptr) return false;
  s.arg = arg;
  s.fn.store(fn, Order::release);
  kick(cpu);
  return true;
}

bool done(unsigned cpu) { return g_slots[cpu].fn.load(Order::acquire) == nullptr; }

bool run_on(unsigned cpu, void (*fn)(void*), void* arg, uint64_t timeout_us) {
  if (cpu == x86::cpu_index()) {
    fn(arg);
    return true;
  }
  const uint64_t deadline = x86::timer::now_us() + timeout_us;
  if (!wait_answered([&] { return post(cpu, fn, arg); }, deadline)) return false;
  while (!done(cpu)) {
    if (x86::timer::now_us() > deadline) return false;
    service();
    x86::cpu_relax();
  }
  return true;
}

void set_loaded_ept(uint64_t tlb_tag, uint64_t eptp) {
  Slot& s = self();
  // Atomic: flush_ept() reads it from other CPUs. Ordered before this CPU's next
  // enter_guest_mode() XCHG, which is what a requester's guest_state load synchronizes with.
  s.loaded_tag.store(tlb_tag, Order::relaxed);
  s.loaded_eptp = eptp;
}

void flush_ept(uint64_t tlb_tag) {
  g_flush_requests++;
  const uint64_t t0 = trace::on(trace::kCatFlush) ? x86::rdtsc() : 0;
  uint64_t ipis = 0;
  const unsigned me = x86::cpu_index();
  const unsigned n = x86::smp::cpus_online();
  const uint64_t bit = tag_bit(tlb_tag);
  uint64_t want[x86::kMaxCpus];
  uint64_t state[x86::kMaxCpus];
  // This CPU is outside guest mode: flush at once.
  local_flush(g_slots[me], bit);
  for (unsigned cpu = 0; cpu < n; cpu++) {
    state[cpu] = 0;
    if (cpu == me || !online(cpu)) continue;
    Slot& s = g_slots[cpu];
    s.flush_tags.fetch_or(bit, Order::seq_cst);
    want[cpu] = s.flush_want.fetch_add(1, Order::seq_cst) + 1;
    // Sequentially consistent: pairs with the XCHG in the target's enter_guest_mode().
    state[cpu] = s.guest_state.load(Order::seq_cst);
    // In guest mode for another VM: that CPU holds no translation of this one (a vCPU flushes
    // its EPTP when it leaves a CPU or switches roots, hv/vcpu.cpp), and the request bit set
    // above makes it flush before it could enter this VM. So neither an IPI nor a wait: one
    // VM's zaps must not force exits on, or wait for, another VM's CPUs. The tag is read after
    // guest_state: the owner stored it before the XCHG that made guest_state odd (its
    // enter_guest_mode), and our seq_cst load of guest_state synchronizes with that XCHG, so
    // we see the tag of the VM that is in guest mode there now (or a later one, which entered
    // after our request and flushed on its way in).
    if ((state[cpu] & 1) && s.loaded_tag.load(Order::acquire) != tlb_tag) state[cpu] = 0;
    if (state[cpu] & 1) {
      kick(cpu);
      g_flush_ipis++;
      ipis++;
    } else {
      g_flush_skipped++;
    }
  }
  for (unsigned cpu = 0; cpu < n; cpu++) {
    if (!(state[cpu] & 1)) continue;
    Slot& s = g_slots[cpu];
    uint64_t kicked = state[cpu];
    // No timeout: returning before the CPU flushed or left guest mode would let the MMU free a
    // table its TLB may still use. The IPI forces the exit (external-interrupt exiting), so a
    // guest can't hold us here; a CPU that never answers is a hang we want to see.
    while (s.flush_done.load(Order::acquire) < want[cpu]) {
      const uint64_t now = s.guest_state.load(Order::seq_cst);
      if (!(now & 1)) break;  // left guest mode: it flushes before its next entry
      if (now != kicked) {
        // It re-entered, maybe without having seen our request: make it exit once more.
        kick(cpu);
        kicked = now;
      }
      service_flushes();
      x86::cpu_relax();
    }
  }
  // The request as one slice on this CPU (how long it waited); tools/hv_trace.py draws a flow
  // from it to each kFlushServe of the same VM's tag on other CPUs inside that slice.
  if (t0) trace::record(trace::kFlushReq, static_cast<uint32_t>(tlb_tag), 0xFF, t0, bit, ((x86::rdtsc() - t0) & 0xFFFFFFFFu) | (ipis << 32));
}

unsigned flush_ept_all_cpus_sync(uint64_t timeout_us) {
  const unsigned me = x86::cpu_index();
  const unsigned n = x86::smp::cpus_online();
  uint64_t want[x86::kMaxCpus];
  const uint64_t t0 = trace::on(trace::kCatFlush) ? x86::rdtsc() : 0;
  uint64_t ipis = 0;
  local_flush(g_slots[me], kFlushAll);
  for (unsigned cpu = 0; cpu < n; cpu++) {
    if (cpu == me || !online(cpu)) continue;
    g_slots[cpu].flush_tags.fetch_or(kFlushAll, Order::seq_cst);
    want[cpu] = g_slots[cpu].flush_want.fetch_add(1, Order::seq_cst) + 1;
    kick(cpu);
    ipis++;
  }
  unsigned answered = 0;
  const uint64_t deadline = x86::timer::now_us() + timeout_us;
  for (unsigned cpu = 0; cpu < n; cpu++) {
    if (cpu == me || !online(cpu)) continue;
    if (wait_answered([&] { return g_slots[cpu].flush_done.load(Order::acquire) >= want[cpu]; }, deadline)) answered++;
  }
  // As flush_ept()'s record, for every tag (vm = kAllVms).
  if (t0) trace::record(trace::kFlushReq, trace::kAllVms, 0xFF, t0, kFlushAll, ((x86::rdtsc() - t0) & 0xFFFFFFFFu) | (ipis << 32));
  return answered;
}

namespace {
// Sends the requests and returns, for each CPU, the guest_state it had (bit 0 set: in guest
// mode, skipped; ~0: not asked). `want` receives each target's request number.
void request_fences(uint64_t* want, uint64_t* state, bool kick_all) {
  const unsigned me = x86::cpu_index();
  const unsigned n = x86::smp::cpus_online();
  for (unsigned cpu = 0; cpu < n; cpu++) {
    state[cpu] = ~0ull;
    if (cpu == me || !online(cpu)) continue;
    Slot& s = g_slots[cpu];
    // seq_cst RMW, after the caller's own fence (Platform::asymmetric_fence_heavy): what we
    // stored before is in memory before the target can see the request.
    want[cpu] = s.fence_want.fetch_add(1, Order::seq_cst) + 1;
    // What makes skipping an odd value safe is that this load comes after the caller's store
    // (the writer's kWriter, the advanced epoch; x86 keeps loads after earlier locked
    // instructions), so the target's next XCHG out of guest mode comes after that store was
    // in memory. The order against the fetch_add above does not matter
    // (models/asym_fence.pml @lock_kernel/@epoch_kernel verify with the two swapped);
    // seq_cst keeps the argument on hardware weaker than x86.
    state[cpu] = s.guest_state.load(Order::seq_cst);
    if ((state[cpu] & 1) && !kick_all) {
      g_fence_skipped++;
      continue;
    }
    // Wakes an idle or parked CPU (its service() answers); a running one answers at its next
    // service point or spin-wait, or moves guest_state.
    kick(cpu);
    g_fence_waits++;
  }
}
// Whether `cpu` has answered request `want`, or passed one of the guest_state XCHGs since we
// read `state` (a full fence after our request).
bool fence_answered(unsigned cpu, uint64_t want, uint64_t state) {
  const Slot& s = g_slots[cpu];
  if (s.fence_done.load(Order::acquire) >= want) return true;
  return s.guest_state.load(Order::seq_cst) != state;
}
}  // namespace

void fence_all_cpus() {
  g_fence_requests++;
  const unsigned n = x86::smp::cpus_online();
  uint64_t want[x86::kMaxCpus];
  uint64_t state[x86::kMaxCpus];
  request_fences(want, state, false);
  for (unsigned cpu = 0; cpu < n; cpu++) {
    if (state[cpu] == ~0ull || (state[cpu] & 1)) continue;
    if (!wait_answered([&] { return fence_answered(cpu, want[cpu], state[cpu]); }, x86::timer::now_us() + kFenceTimeoutUs))
      hv::panic("cpu_work: cpu %u did not answer a fence request for %lu s (guest_state %lu)", cpu,
                 kFenceTimeoutUs / 1'000'000, state[cpu]);
  }
}

unsigned fence_all_cpus_sync(uint64_t timeout_us) {
  const unsigned n = x86::smp::cpus_online();
  uint64_t want[x86::kMaxCpus];
  uint64_t state[x86::kMaxCpus];
  mmu::atomic_thread_fence(Order::seq_cst);
  request_fences(want, state, true);
  unsigned answered = 0;
  const uint64_t deadline = x86::timer::now_us() + timeout_us;
  for (unsigned cpu = 0; cpu < n; cpu++) {
    if (state[cpu] == ~0ull) continue;
    // Only a real answer counts here (the CPUs are idle: guest_state does not move).
    if (wait_answered([&] { return g_slots[cpu].fence_done.load(Order::acquire) >= want[cpu]; }, deadline)) answered++;
  }
  return answered;
}

uint64_t fence_requests() { return g_fence_requests.get(); }
uint64_t fence_waits() { return g_fence_waits.get(); }
uint64_t fence_skipped() { return g_fence_skipped.get(); }

uint64_t flush_requests() { return g_flush_requests.get(); }
uint64_t remote_flushes() { return g_remote_flushes.get(); }
uint64_t flush_ipis() { return g_flush_ipis.get(); }
uint64_t flush_skipped() { return g_flush_skipped.get(); }

}  // namespace hv::cpu_work
