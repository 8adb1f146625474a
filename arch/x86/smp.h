// Bring-up of the application processors by INIT-SIPI-SIPI.
//
// start_aps() copies boot/ap_trampoline.asm to the low page the memory manager set aside,
// then starts the CPUs of the MADT one at a time: each gets CPU index i (1, 2, ...), a kernel
// stack and IST stacks from the memory manager, and enters ap_main(), which loads its own
// GDT/TSS, the IDT and GS base, enables its LAPIC, reports itself online and then idles
// with interrupts enabled (STI; HLT), so that it answers IPIs.
#pragma once

#include <stdint.h>

namespace x86::smp {

struct Result {
  unsigned expected;  // CPUs listed (the BSP included)
  unsigned online;    // CPUs that reported in (the BSP included)
  const char* error;  // why bring-up stopped early, or nullptr
};

// apic_ids: the enabled CPUs from the MADT (the BSP among them).
Result start_aps(const uint32_t* apic_ids, unsigned count);

unsigned cpus_online();

// Sends a fixed-vector IPI to every online AP and waits (up to timeout_us) for each handler
// to run. Returns the number of APs that answered; checks IPIs, the APs' IDT and their
// interrupt return path.
unsigned ping_aps(uint64_t timeout_us);

// Called by every AP once it is up (the hook for the VMX and scheduler work to come).
using ApIdleHook = void (*)(unsigned cpu);
void set_ap_idle_hook(ApIdleHook hook);

}  // namespace x86::smp
