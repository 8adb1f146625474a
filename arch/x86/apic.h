// The local APIC, in x2APIC mode (MSRs) when the CPU supports it, else in xAPIC mode (MMIO).
//
// The mode is chosen once on the BSP and then used by every CPU. Provides the CPU's APIC id,
// EOI, and the IPIs the kernel needs: fixed vectors, NMI, INIT and SIPI.
#pragma once

#include <stdint.h>

namespace x86::apic {

// BSP: picks the mode (x2APIC if CPUID.1:ECX[21]) and enables the LAPIC. mmio_base: the
// xAPIC register page from the MADT (the IA32_APIC_BASE MSR is used when 0).
void init_bsp(uint64_t mmio_base);
// APs: enable the LAPIC in the mode the BSP chose.
void init_ap();

bool x2apic_mode();
// True once init_bsp() has run (IPIs can be sent).
bool enabled();
uint32_t id();
void eoi();

void send_fixed(uint32_t apic_id, uint8_t vector);
void send_nmi(uint32_t apic_id);
void send_init(uint32_t apic_id);
void send_sipi(uint32_t apic_id, uint8_t page_vector);
// NMI to every CPU but the sender (the panic path's "stop").
void send_nmi_all_but_self();

// LAPIC timer (divide by 16). calibrate_timer() measures its rate against the TSC on the
// calling CPU (all CPUs share the bus clock); timer_oneshot() arms one interrupt at `vector`
// after `us` microseconds; timer_stop() disarms it.
uint64_t calibrate_timer();  // ticks per millisecond
void timer_oneshot(uint64_t us, uint8_t vector);
// Periodic mode: an interrupt at `vector` every `us` microseconds until timer_stop().
void timer_periodic(uint64_t us, uint8_t vector);
void timer_stop();

}  // namespace x86::apic
