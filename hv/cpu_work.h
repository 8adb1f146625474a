// Cross-CPU requests: "run this function on CPU n" and "flush the EPT translations of VM t
// before your next VM entry", each carried by request words plus an IPI.
//
// Idle APs sleep in smp's idle loop (STI; HLT) and run requests from its idle hook. A CPU that
// runs a guest gets the IPI as an external-interrupt VM exit (pin-based "external-interrupt
// exiting"); the vCPU loop then calls service() before the next VM entry.
//
// EPT flushes follow the "request, then look at the target's mode" pattern (KVM's
// kvm_make_all_cpus_request): every CPU publishes whether it is in VMX non-root operation
// (guest mode). A requester sets its request bits and then reads the target's mode:
//   - outside guest mode the target can't use any EPT-derived translation, and it checks its
//     requests after it has published "in guest mode" and before VM entry, so it flushes
//     before it could use one again: the requester does not wait for it (no IPI either);
//   - in guest mode the requester sends the IPI and waits until the target has flushed or has
//     left guest mode (the exit is enough, for the same reason).
//   - in guest mode for another VM (its loaded EPT tag differs), it holds no translation of
//     this one: no IPI and no wait either; its request bit still makes it flush before it
//     could enter this VM. One VM's zaps never force exits on another VM's CPUs.
// Both sides write their word and then read the other's with sequentially consistent atomics
// (a locked RMW on x86): at least one of them sees the other's write (Dekker), so no target
// enters the guest with a stale translation unseen. A CPU that spins with interrupts off
// outside guest mode (waiting for the MMU lock, say) is never waited for: flushes can't
// deadlock against lock holders.
//
// The flush itself is a single-context INVEPT of the EPTP the CPU has loaded for that VM when
// the CPU supports it (global otherwise): a CPU caches translations only for the EPTP of the
// vCPU it runs (hv/vcpu.cpp flushes an EPTP when it stops using it).
//
// Fence requests: the heavy side of the MMU's asymmetric fences (mmu/platform.h,
// fence_all_cpus() below). The requester needs every other CPU to execute a full fence at some
// point after the request and before it returns. Unlike a flush it must wait for CPUs outside
// guest mode too (one may be inside an MMU section right now), and it skips the CPUs in guest
// mode: no MMU section is open there, and the way out of guest mode is a full fence of its own
// (exit_guest_mode() and the back-out of enter_guest_mode() are XCHGs), which the CPU passes
// after the request and before its next section. A CPU outside guest mode answers with a fence
// wherever it looks at its requests: service_flushes() (so KernelPlatform::cpu_relax(), every
// MMU wait), service() (idle, parked or halted vCPUs, whom the IPI wakes), and every spin-wait
// of a kernel or MMU lock (the spin-wait hooks, hv/mmu_platform.h fences_init()), so a CPU that spins
// for a lock the requester holds still answers. Its guest_state moving also answers: that was
// one of the XCHGs. A request that waits longer than kFenceTimeoutUs is a hang: panic, naming
// the CPU. models/asym_fence.pml checks this protocol under x86-TSO (@lock_kernel,
// @epoch_kernel), with CPUs going in and out of guest mode and the one section opened there
// (pml_drain's read_lock_fenced). Nothing checks at run time that no other section is opened
// in guest mode: keep the guest-mode exit handlers (hv/fast_entry.h) out of the MMU.
#pragma once

#include <stdint.h>

#include "arch/x86/percpu.h"
#include "arch/x86/vmx/capabilities.h"
#include "mmu/atomic.h"

namespace hv::cpu_work {

inline constexpr uint8_t kKickVector = 0xF1;  // "look at your requests" (the handler only EOIs)

// Installs the IPI handler and the AP idle hook. BSP, once, after the LAPIC is up.
// `idle_work` (may be null) runs on an AP each time it wakes in its idle loop, after its
// requests (the epoch's quiescent state and deferred callbacks). `caps` picks the INVEPT type.
void init(void (*idle_work)(), const x86::vmx::Capabilities* caps);

// Runs fn(arg) on `cpu` (the caller's own CPU: directly) and waits for it to return.
// Returns false if the CPU did not run it within timeout_us.
bool run_on(unsigned cpu, void (*fn)(void*), void* arg, uint64_t timeout_us);
// Queues fn(arg) on another `cpu` and returns at once (false: its slot is still busy). One
// requester per target at a time (the BSP). done(cpu) tells when fn has returned.
bool post(unsigned cpu, void (*fn)(void*), void* arg);
bool done(unsigned cpu);
// IPI `cpu`: a guest running there exits and its vCPU looks at its requests.
void kick(unsigned cpu);

// The MMU's remote flush (mmu::Platform::flush_remote_tlbs): every CPU that may use a
// translation of VM `tlb_tag` flushes it before it can use one again; returns when that holds.
void flush_ept(uint64_t tlb_tag);
// Self-test of the mechanism: every online CPU (guest mode or not) runs a global INVEPT and
// answers; returns how many other CPUs answered within timeout_us.
unsigned flush_ept_all_cpus_sync(uint64_t timeout_us);

// Each CPU's request words (cpu_work.cpp), here only for the two inline functions below.
namespace detail {
struct alignas(64) Slot {
  // Work item: set by the requester (release), cleared by the target when fn has returned
  // (release); the requester's acquire load of `fn == nullptr` then sees fn's effects.
  mmu::Atomic<void (*)(void*)> fn{nullptr};
  void* arg = nullptr;
  // Owner only: service() is inside fn right now (a vCPU loop posted as a work item calls
  // service() itself and must not run itself again).
  bool running = false;
  // Flush request: the VMs to flush (tag bits, OR-ed in by requesters) and a generation. A
  // requester ORs its bit, then bumps `flush_want`; the target takes the bits after it has
  // read `flush_want` and then copies want -> done, so a done generation covers every bit
  // OR-ed before its want was bumped.
  mmu::Atomic<uint64_t> flush_tags{0};
  mmu::Atomic<uint64_t> flush_want{0};
  mmu::Atomic<uint64_t> flush_done{0};
  // Fence request: requesters bump `fence_want`; the target fences and copies want -> done.
  mmu::Atomic<uint64_t> fence_want{0};
  mmu::Atomic<uint64_t> fence_done{0};
  // Even: outside guest mode; odd: between enter_guest_mode() and the VM exit. Bumped by the
  // owner only; read by requesters (see the protocol in cpu_work.h).
  mmu::Atomic<uint64_t> guest_state{0};
  // The EPTP this CPU has loaded and the VM it belongs to. Written by the owner only, outside
  // guest mode; `loaded_tag` is also read by requesters (flush_ept: atomic, see there).
  mmu::Atomic<uint64_t> loaded_tag{0};
  uint64_t loaded_eptp = 0;
};
extern Slot g_slots[x86::kMaxCpus];
}  // namespace detail

// The vCPU loop's side of the protocol, inline (every entry and exit). enter_guest_mode():
// publish "in guest mode", then look at the requests; false (and back outside) when any is
// pending: service() and try again. exit_guest_mode(): right after the VM exit.
inline bool enter_guest_mode() {
  detail::Slot& s = detail::g_slots[x86::cpu_index()];
  // Sequentially consistent store (XCHG): pairs with flush_ept(), which bumps flush_want and
  // then reads guest_state. Either it sees us in guest mode (and IPIs and waits), or our
  // load below sees its request and we flush before VM entry. (Fence requests need only the
  // XCHGs out of guest mode; the model verifies them with this one a plain store.)
  s.guest_state.store(s.guest_state.load(mmu::Order::relaxed) + 1, mmu::Order::seq_cst);
  if (s.flush_want.load(mmu::Order::seq_cst) == s.flush_done.load(mmu::Order::relaxed)) return true;
  // seq_cst (XCHG), as in exit_guest_mode(): a fence requester may have skipped us as "in guest
  // mode".
  s.guest_state.store(s.guest_state.load(mmu::Order::relaxed) + 1, mmu::Order::seq_cst);
  return false;
}
inline void exit_guest_mode() {
  detail::Slot& s = detail::g_slots[x86::cpu_index()];
  // After the VM exit no translation of the guest's EPTP is used until the next entry, which
  // looks at the requests first (enter_guest_mode): a requester that sees this even value may
  // stop waiting. Release: our flush_done stores before it are seen with it. seq_cst (an
  // XCHG, a full fence): a fence requester that saw us in guest mode did not wait for us; this
  // is our fence point for it, before any MMU section of this exit (see "Fence requests").
  s.guest_state.store(s.guest_state.load(mmu::Order::relaxed) + 1, mmu::Order::seq_cst);
}
// For a vCPU that handled an exit without leaving guest mode (hv/fast_entry.h): no flush
// request waits for this CPU, so it may enter again without passing exit_guest_mode() and
// enter_guest_mode(). A requester that saw this CPU in guest mode has sent it an IPI and waits
// for the flush or for guest_state to move; a request that this load misses still ends the
// next guest slice through that IPI, as for a guest that never exits.
// A hint, so no fence: a request it sees is served by service() after exit_guest_mode(),
// which reads the words again with the ordering the protocol needs (service_flushes).
inline bool flush_idle() {
  const detail::Slot& s = detail::g_slots[x86::cpu_index()];
  return s.flush_want.load(mmu::Order::relaxed) == s.flush_done.load(mmu::Order::relaxed);
}
// The EPTP this CPU has loaded for VM `tlb_tag` (0: none). Set by the vCPU on its CPU.
void set_loaded_ept(uint64_t tlb_tag, uint64_t eptp);

// The heavy side of the MMU's asymmetric fences (mmu::Platform::asymmetric_fence_heavy): every
// other online CPU executes a full fence after the call began and before it returns, or is in
// guest mode (see "Fence requests" above). Answers other CPUs' requests while it waits.
void fence_all_cpus();
// Answer a fence request, if one waits: a full fence, then "done". Cheap when none does (two
// loads of the CPU's own line); anywhere in the host, with interrupts on or off.
void answer_fences_slow(detail::Slot& s, uint64_t want);
inline void answer_fences() {
  detail::Slot& s = detail::g_slots[x86::cpu_index()];
  const uint64_t want = s.fence_want.load(mmu::Order::relaxed);
  if (want != s.fence_done.load(mmu::Order::relaxed)) answer_fences_slow(s, want);
}
// Self-test: one fence request to every other online CPU (not in guest mode yet); returns how
// many answered within timeout_us.
unsigned fence_all_cpus_sync(uint64_t timeout_us);

// Handle this CPU's pending requests (work items and flushes). Interrupts off.
void service();
// Flushes and fences only (never a work item): safe anywhere in the host, e.g. inside MMU spin
// loops.
void service_flushes();
// A request is waiting for this CPU, or its tick slice is over (mmu::Platform::should_yield).
bool yield_wanted();

// Counters for the summary.
uint64_t flush_requests();   // flush_ept() calls
uint64_t remote_flushes();   // flushes done by a CPU for another CPU's request
uint64_t flush_ipis();       // IPIs sent for flushes (targets that were in guest mode)
uint64_t flush_skipped();    // targets outside guest mode, flushed lazily before their entry
uint64_t fence_requests();   // fence_all_cpus() calls
uint64_t fence_waits();      // targets waited for (outside guest mode)
uint64_t fence_skipped();    // targets in guest mode, not waited for

}  // namespace hv::cpu_work
