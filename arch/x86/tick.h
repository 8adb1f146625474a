// The per-CPU scheduler tick: a periodic LAPIC timer interrupt on every CPU that runs hv.
//
// It is what makes "should I yield?" answerable and what bounds how long a guest can keep a
// CPU: a guest runs with "external-interrupt exiting" on, so each tick ends its time slice
// with a VM exit whatever the guest does (spin with interrupts off included). In idle the tick
// wakes HLT so the CPU runs its deferred work regularly.
//
// A slice is the time between two safe points. It ends when a tick interrupt was taken since
// the last consume() or, where interrupts are off (inside the vCPU loop and the MMU, which run
// with IF = 0 and only see the interrupt at the next exit window), when the TSC passed the end
// of the slice computed at the last consume(). Either way pending() becomes true.
#pragma once

#include <stdint.h>

namespace x86::tick {

inline constexpr uint8_t kVector = 0xEE;

// BSP, once, after the TSC and the LAPIC timer are calibrated: installs the handler.
void init(uint64_t period_us);
// Arms / disarms the periodic timer on the calling CPU.
void start_this_cpu();
void stop_this_cpu();

// On the calling CPU: the current slice is over (a tick came, or its TSC end passed).
bool pending();
// On the calling CPU, at a safe point: start a new slice.
void consume();

uint64_t period_us();
uint64_t ticks(unsigned cpu);  // interrupts taken on `cpu` (statistics)

}  // namespace x86::tick
