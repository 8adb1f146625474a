// hv's event trace (issue 15): per-CPU rings of fixed-size records stamped with the TSC, cheap
// enough to leave on, read out after the run and turned into a Perfetto/Chrome timeline by
// tools/hv_trace.py (`tools/hv trace`).
//
// hv.trace=CATS turns it on for the categories listed (comma-separated, or "all"):
//   exit      VM entries and exits (reason, qualification): per-vCPU "guest" and "exit" slices
//   fault     EPT faults handled by the MMU: GPA, outcome, write or not, duration
//   irq       interrupts and NMIs injected, wake-up IPIs to vCPUs
//   flush     remote EPT flushes: the request (and how long it waited), each CPU's flush
//   mmu       deferred MMU work passes (teardown units), each teardown step of a root, reclaim
//             passes, fast zaps (all roots invalidated, with the wait for their teardown),
//             memslot changes, and the range zaps they (or a dirty-log stop) make
//   hcall     hypercalls (number, status)
// hv.trace-kib=N sizes each CPU's ring (default 1024 KiB: 32768 records); hv.trace-drain=0 records
// without printing (the guest benchmark's trace-cost run).
//
// Contract:
// - One ring per CPU, written only by that CPU (its vCPU loop, its exit handlers, its
//   cross-CPU work), append-only: when it is full further records are dropped and counted,
//   never waited for; recording never blocks and never takes a lock. The first N records
//   of a run are kept (a boot's timeline from its start).
// - A record is published by a release store of the ring's count after it is written; the
//   reader (print_all, after the VMs have stopped) loads the count with acquire and reads only
//   what is below it, so a CPU still recording (an idle CPU serving a late flush) is harmless.
// - Off (the default), each trace point costs one load and a not-taken branch.
// - Output: after the run summary, print_all() writes "trace: begin ...", per CPU lines of
//   records ("trace: C cpu type.vm.vcpu.dtsc.a.b ...", hex, dtsc the delta from the CPU's
//   previous record) and "trace: cpuN: K records, D dropped", through hv's console. The serial
//   line limits it (115200 baud: about 500 records a second under Bochs), so keep rings small
//   (hv.trace-kib) for long runs.
// - Not for interrupt handlers: record() assumes nothing else on the CPU appends meanwhile.
#pragma once

#include <stdint.h>

namespace hv::trace {

// Categories (hv.trace=...).
enum Cat : uint32_t {
  kCatExit = 1u << 0,
  kCatFault = 1u << 1,
  kCatIrq = 1u << 2,
  kCatFlush = 1u << 3,
  kCatMmu = 1u << 4,
  kCatHcall = 1u << 5,
};

// Record types and what a and b hold (tools/hv_trace.py reads them by these numbers).
enum Type : uint8_t {
  kEntry = 1,       // VM entry at tsc
  kExit = 2,        // VM exit at tsc; a = basic exit reason, b = exit qualification
  kVcpuStop = 3,    // the vCPU's run loop ended; a = 1 when it failed
  kFault = 4,       // EPT fault started at tsc; a = GPA, b = duration | outcome << 32 | write << 48
                    // (outcome: mmu::FaultOutcome; duration in TSC ticks, low 32 bits)
  kInject = 5,      // an event injected at the next entry; a = vector, b = type (0 external, 2 NMI)
  kWakeIpi = 6,     // a wake-up IPI to a vCPU; a = target vCPU, b = target CPU
  kFlushReq = 7,    // remote EPT flush requested at tsc (vm = the VM's TLB tag); a = the tag's bit,
                    // b = duration (how long it waited) | IPIs sent << 32
  kFlushServe = 8,  // this CPU flushed for another's request; a = the tag bits flushed
  kDeferred = 9,    // a deferred-work pass with work; a = units, b = duration
  kFastZap = 10,    // all roots of a VM invalidated (started at tsc), with the wait for their
                    // teardown when the caller asked for it; a = the invalidation's ticket,
                    // b = duration (invalidation and wait) | waited << 32
  kHcall = 11,      // hypercall at tsc; a = number, b = status
  kSlotUpdate = 12, // a memslot change (and the zap of the range it unmaps) started at tsc;
                    // a = slot id | kind << 32 (create, remove, move, flags), b = duration | error << 32
  kZapRange = 13,   // the MMU zapped the leaves of a gfn range, its TLB flush included (started at
                    // tsc); a = first gfn (kZapGfnMask) | address space << 56,
                    // b = duration | pages << 32 (saturated at 2^32 - 1)
  kTeardownStep = 14,  // one bounded teardown step of an invalidated root (started at tsc);
                       // a = the root's top table (page address) | pass (bits 0-3) | done << 4
                       // (the walk is complete) | helped << 5 (from another CPU's queue),
                       // b = duration | units << 32
  kReclaim = 15,    // reclaim(): teardown from every CPU's queue and an epoch push, for a vCPU
                    // refused a table page; a = units, b = duration | pages freed << 32
};
inline constexpr uint64_t kZapGfnMask = (uint64_t{1} << 52) - 1;
inline constexpr uint32_t kAllVms = 0xFFFFFFFFu;  // kFlushReq of every VM's tag (boot's check)

struct Record {
  uint64_t tsc;
  uint8_t type;
  uint8_t cpu;
  uint8_t vcpu;
  uint8_t pad;
  uint32_t vm;
  uint64_t a;
  uint64_t b;
};
static_assert(sizeof(Record) == 32, "tools/hv_trace.py and the ring sizes assume 32-byte records");

extern uint32_t g_mask;  // categories on; written once at boot (init), read-only after

inline bool on(Cat c) { return (g_mask & c) != 0; }

// Reads hv.trace / hv.trace-kib and allocates the rings of `cpus` CPUs. BSP, before any VM.
void init(unsigned cpus);
// Appends a record to this CPU's ring (the caller checked on(cat)).
void record(uint8_t type, uint32_t vm, uint8_t vcpu, uint64_t tsc, uint64_t a, uint64_t b);
// Prints every ring (after the run; see the contract above). Nothing when tracing is off.
void print_all();

}  // namespace hv::trace
