// Cross-CPU requests: "run this function on CPU n" and "flush your EPT TLBs before your next
// VM entry", each carried by a request word plus an IPI.
//
// Idle APs sleep in smp's idle loop (STI; HLT) and run requests from its idle hook. A CPU that
// runs a guest gets the IPI as an external-interrupt VM exit (pin-based "external-interrupt
// exiting"); the vCPU loop then calls service() before the next VM entry. A CPU that waits for
// another CPU services its own requests while it spins, so two CPUs that flush each other at
// the same time can't deadlock with interrupts off.
#pragma once

#include <stdint.h>

namespace hv::cpu_work {

inline constexpr uint8_t kKickVector = 0xF1;  // "look at your requests" (the handler only EOIs)

// Installs the IPI handler and the AP idle hook. BSP, once, after the LAPIC is up.
// `idle_work` (may be null) runs on an AP each time it wakes in its idle loop, after its
// requests (the epoch's quiescent state and deferred callbacks).
void init(void (*idle_work)());

// Runs fn(arg) on `cpu` (the caller's own CPU: directly) and waits for it to return.
// Returns false if the CPU did not run it within timeout_us.
bool run_on(unsigned cpu, void (*fn)(void*), void* arg, uint64_t timeout_us);

// Asks every online CPU to flush all EPT-derived translations (INVEPT) before it next enters a
// guest, and waits until each has done so (this CPU flushes at once).
void flush_ept_all_cpus();

// Handle this CPU's pending requests (work items and flushes). Interrupts off.
void service();

// Counters for the summary.
uint64_t flush_requests();
uint64_t remote_flushes();

}  // namespace hv::cpu_work
