// Interrupts inside a VM: how a device's interrupt line or an IPI becomes a vector that a vCPU
// takes. The contract between the chipset devices (hv/devices/: IOAPIC, 8259 pair, PIT, RTC,
// 16550, ACPI SCI) and the local APICs of the vCPUs (hv/devices/vlapic.*), which are built
// separately: each side implements its half of this header.
//
//   device --irq_set_level(gsi)--> IOAPIC pin --ApicMessage--> apic_deliver --> vLAPIC IRR
//                               \-> 8259 IRQ (ISA lines 0-15) --INTA--> LINT0 (ExtINT)
//   vLAPIC ICR write -----------------ApicMessage--> apic_deliver --> vLAPIC IRR / NMI / INIT / SIPI
//   vLAPIC EOI of a level-triggered vector --> ioapic_eoi(vector) (remote IRR cleared)
//
// All functions may be called on any CPU, by any vCPU of the VM, concurrently: each device
// locks its own state. A delivery that makes an interrupt pending for a vCPU also makes sure
// that vCPU notices soon: it is kicked out of guest mode or woken from HLT (the vLAPIC side's
// job, hv/devices/vlapic.h).
#pragma once

#include <stdint.h>

namespace hv {

class Vm;

// Delivery modes (SDM Vol. 3A, 11.6.1 ICR; the IOAPIC redirection entries use the same codes).
enum class DeliveryMode : uint8_t {
  kFixed = 0,
  kLowestPriority = 1,
  kSmi = 2,
  kNmi = 4,
  kInit = 5,
  kStartup = 6,
  kExtInt = 7,
};

// Destination shorthands of the ICR (bits 19:18).
enum class Shorthand : uint8_t { kNone = 0, kSelf = 1, kAllIncludingSelf = 2, kAllExcludingSelf = 3 };

// One message on the VM's APIC bus: an IPI, an IOAPIC redirection entry (later an MSI).
struct ApicMessage {
  uint32_t dest = 0;           // physical APIC ID, or logical destination (flat/cluster model of the target)
  bool logical = false;        // destination mode
  Shorthand shorthand = Shorthand::kNone;
  DeliveryMode mode = DeliveryMode::kFixed;
  uint8_t vector = 0;          // fixed/lowest priority: the vector; startup: the SIPI page number
  bool level = false;          // trigger mode (level: the IOAPIC waits for the EOI)
  bool assert = true;          // INIT level de-assert is a no-op (SDM), others always assert
  bool x2apic_format = false;  // dest is a 32-bit x2APIC destination (broadcast 0xFFFFFFFF)
};

// vLAPIC side (hv/devices/apic_bus.cpp): delivers `m` to the local APICs it selects.
// `source_vcpu` is the sender (for the self shorthands), or -1 for the IOAPIC.
void apic_deliver(Vm& vm, const ApicMessage& m, int source_vcpu);
// vLAPIC side: the 8259 pair's INTR output rose (a new request, an unmask, an EOI that uncovers
// one). The vCPU that takes the 8259's interrupts (LINT0 in ExtINT mode, or its LAPIC
// disabled: the BSP after reset) must look at pic_output()/pic_intack() soon: kick it out of
// guest mode or wake it from HLT. Called without any chipset lock held.
void apic_pic_intr_raised(Vm& vm);
// vLAPIC side: the LINT1 line (the chipset's NMI) of every LAPIC is pulsed
// (hv/devices/apic_bus.cpp): each LAPIC acts on its LVT LINT1. `source_vcpu`: the vCPU whose
// CPU does this (not kicked), or -1. Returns how many LAPICs took it in which way.
struct LintPulseResult {
  unsigned nmis = 0, vectors = 0, inits = 0, ignored = 0;  // ignored: masked, SMI/ExtINT mode, vector < 16
};
LintPulseResult apic_lint1_pulse(Vm& vm, int source_vcpu);

// Chipset side (hv/devices/irq_router.cpp): a device drives interrupt line `gsi`. GSIs 0-23
// are IOAPIC pins; ISA IRQs 0-15 are also 8259 inputs (GSI n = IRQ n, except IRQ0 -> GSI 2
// on the IOAPIC, as the MADT's interrupt source override says). Edge devices pulse
// (true then false); level devices hold the line.
void irq_set_level(Vm& vm, unsigned gsi, bool level);
// Chipset side: a local APIC's EOI of a level-triggered `vector` (broadcast to the IOAPIC,
// which clears the remote IRR of the entries with that vector and re-delivers if still asserted).
void ioapic_eoi(Vm& vm, uint8_t vector);
// Chipset side: the 8259 pair's interrupt output (INTR) and its acknowledge cycle, for a
// vCPU whose LINT0 is in ExtINT mode or whose LAPIC is disabled (the BSP, as after reset).
bool pic_output(Vm& vm);
// The vector of the highest-priority pending IRQ (the INTA cycle: IRR -> ISR), or -1.
int pic_intack(Vm& vm);

}  // namespace hv
