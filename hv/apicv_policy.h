// The pure rules of the hardware APIC path (hv/apicv.h), apart so host tests can hold them
// against the register page (tests/unit/apicv_policy_test.cpp): which x2APIC MSRs the CPU may
// serve from the virtual-APIC page, and the guest interrupt status hv writes before an entry.
#pragma once

#include <stdint.h>

#include "hv/devices/vlapic.h"

namespace hv::apicv {

// RDMSR the CPU serves from the page with "APIC-register virtualization" (SDM 30.5): the MSR
// bitmap lets exactly these through. They are the registers whose value is stored, not
// computed, and that exist in x2APIC mode (6 LVT entries: no CMCI). The CPU reads 8 bytes at
// (msr & 0xFF) << 4, so the page must hold each one's x2APIC value there with 0 above it (the
// ICR: its upper half at +4). The current count (0x839) is computed from time; DFR, APR and
// ICR-high do not exist in x2APIC mode; EOI and SELF_IPI are write-only: those keep exiting.
inline bool x2apic_read_virtualized(uint32_t msr) {
  if (msr < apic::kX2apicMsrBase || msr > apic::kX2apicMsrLast) return false;
  const unsigned off = (msr - apic::kX2apicMsrBase) << 4;
  switch (off) {
    case apic::kId: case apic::kVersion: case apic::kTpr: case apic::kPpr: case apic::kLdr: case apic::kSvr:
    case apic::kEsr: case apic::kIcrLow: case apic::kLvtTimer: case apic::kLvtThermal: case apic::kLvtPerf:
    case apic::kLvtLint0: case apic::kLvtLint1: case apic::kLvtError: case apic::kTimerInitial:
    case apic::kTimerDivide:
      return true;
    default: break;
  }
  return off >= apic::kIsr && off < apic::kIrr + 0x80;  // ISR, TMR, IRR
}

// WRMSR the CPU virtualizes with virtual-interrupt delivery: TPR, EOI, SELF_IPI (SDM 30.5).
// Every other x2APIC write exits to hv/exit_msr.cpp. With the IF = 0 guard (below) SELF_IPI
// exits too: its virtualization makes the new vector recognized wherever the guest sends it,
// interrupts disabled or not.
inline bool x2apic_write_virtualized(uint32_t msr, bool if0_guard) {
  if (msr < apic::kX2apicMsrBase || msr > apic::kX2apicMsrLast) return false;
  const unsigned off = (msr - apic::kX2apicMsrBase) << 4;
  return off == apic::kTpr || off == apic::kEoi || (off == apic::kSelfIpi && !if0_guard);
}

// The IF = 0 guard (hv.apicv-guard, on by default). Bochs 2.7 delivers a recognized virtual
// interrupt even with RFLAGS.IF = 0 when a physical interrupt arrives (its InterruptAcknowledge
// tests "a virtual interrupt is pending", not "pending and unmasked"; see
// abandoned_virtual_interrupt below): the masked-eoi group of guest-lapic takes one with IF = 0
// in 19 of 20 rounds without the guard (guest-lapic-apicv-noguard-bochs-2cpu). A correct CPU
// never does that, but hv cannot tell the two apart, so the guard keeps the CPU from
// recognizing a virtual interrupt anywhere hv does not see:
//   - at VM entry hv sees the guest's IF and shadows and sets interrupt-window exiting while a
//     vector waits and the guest cannot take it, which suspends recognition (SDM 30.2.1;
//     hv/irq_inject.cpp);
//   - inside the guest's run only an EOI (a vector waiting behind the one in service), a
//     SELF_IPI and a TPR write can make one recognized. SELF_IPI exits (above). While a vector
//     waits behind another (two in the IRR, or one in the IRR and one in the ISR), every EOI
//     exits (EOI-induced, trap-like: no evaluation in the guest) and the next entry decides
//     with the guest's IF in view. TPR writes stay virtualized: a guest that lowers CR8 with
//     IF = 0 still opens the window (Linux does not).
// Cost on a correct CPU: an exit per self-IPI and per EOI while vectors queue up; the vCPU
// report counts the guard's EOI exits. hv.apicv-guard=off measures or avoids it.
//
// Whether a vector in the IRR waits behind another, from the page's 8 IRR and ISR words.
// No population count: the kernel is built for the baseline ISA (no POPCNT), where it is a
// dozen instructions a word, and this runs before every entry.
inline bool vector_waits_behind(const uint32_t irr[8], const uint32_t isr[8]) {
  bool one = false;
  for (unsigned i = 0; i < 8; i++) {
    const uint32_t w = irr[i];
    if (!w) continue;
    if (one || (w & (w - 1))) return true;  // a second vector
    one = true;
  }
  if (!one) return false;
  for (unsigned i = 0; i < 8; i++)
    if (isr[i]) return true;
  return false;
}

// 64 bits (vectors 64*i .. 64*i+63) of the EOI-exit bitmap: the TMR's level-triggered vectors,
// whose EOIs the IOAPIC must see, and with the guard every vector while one waits behind another.
inline uint64_t eoi_exit_quad(uint64_t tmr_quad, bool guard_exits_all) { return guard_exits_all ? ~uint64_t{0} : tmr_quad; }

// The guest interrupt status (SDM 25.4.2): RVI = the highest IRR vector (0: none) in bits 7:0,
// SVI = the highest ISR vector (0: none) in bits 15:8. Owner only.
inline uint16_t guest_interrupt_status(const Vlapic& l) {
  const int irr = l.highest_irr(), isr = l.highest_isr();
  return static_cast<uint16_t>((irr < 0 ? 0 : irr) | (isr < 0 ? 0 : isr) << 8);
}

// The TPR threshold for TPR shadowing without virtual-interrupt delivery (SDM 29.1.2: a TPR
// write exits when VTPR[7:4] drops below threshold[3:0]): the class of the highest IRR vector
// when the TPR alone keeps it from being delivered (its class is above the ISR's and at or
// below the TPR's), else 0 (no exit: nothing waits, or the ISR holds it and the EOI, which
// exits, lets it in). Owner only.
inline uint8_t tpr_threshold(const Vlapic& l) {
  const int irr = l.highest_irr(), isr = l.highest_isr();
  if (irr < 0) return 0;
  const unsigned cls = static_cast<unsigned>(irr) >> 4;
  if (isr >= 0 && cls <= (static_cast<unsigned>(isr) >> 4)) return 0;
  return cls <= (l.tpr() >> 4) ? static_cast<uint8_t>(cls) : 0;
}

// Which virtual interrupt's delivery an exit during event delivery interrupted, when the
// IDT-vectoring information cannot be trusted to say so.
//
// The SDM (28.2.4, 30.2.2): a VM exit during the delivery of a virtual interrupt reports it in
// the IDT-vectoring information as an external interrupt (type 0) with its vector, after the
// CPU has already moved the vector from VIRR to VISR (SVI = the vector, VPPR = its class).
// Bochs 2.7 does not: it records the IDT-vectoring information only where it delivers
// exceptions, INT n, physical interrupts and injected events, and its virtual-interrupt
// delivery calls the IDT delivery directly, so an EPT violation while it reads the IDT entry
// or pushes the frame reports the LAST event recorded before it (seen: a #PF with error code
// 2, which hv re-injected at a RET: Linux's bogus page fault in timer_irq_works under
// hv.stress-zap-ms=5, with the timer vector left in service forever). A second Bochs 2.7
// defect makes this worse: when a physical interrupt arrives while a virtual one is
// recognized, its InterruptAcknowledge delivers the virtual interrupt even with RFLAGS.IF = 0
// (it tests "pending", not "pending and unmasked"); hv keeps that from happening where it
// can (evaluate_interrupts: interrupt-window exiting while the guest cannot take a vector,
// which suspends the recognition of virtual interrupts, SDM 30.2.1), but an EOI or TPR write
// in an IF = 0 region can still make one recognized.
//
// The remedy does not re-inject anything: an abandoned delivery had no architectural effect
// on the guest yet, so hv moves the vector back from VISR to VIRR (undo) and drops the
// reported event; the CPU delivers the vector again once the guest can take it. That is right
// on a real CPU too (where the report names the virtual interrupt) and needs no RFLAGS.IF = 1,
// which re-injecting an external interrupt would. The rule reads the state an abandoned
// delivery leaves behind:
//   - it set VISR[V] and SVI = V (V the highest ISR vector) during THIS run of the guest
//     (VIRR[V] was set at the entry and is clear now, or VISR[V] was clear at the entry and is
//     set now): hv does not touch the page while the guest runs, and with virtual-interrupt
//     delivery only the CPU's own delivery moves a vector into the ISR;
//   - when the exit names the linear address it accessed (EPT violations) and that address is
//     an IDT entry, the entry's vector is the event's vector: that decides;
//   - a report of "external interrupt V" (V = SVI) is the virtual interrupt (a real CPU's
//     report; or Bochs's stale one of an earlier injection of V);
//   - otherwise only with RFLAGS.IF = 1 and no STI/MOV-SS blocking, which a (correct) delivery
//     requires and an abandoned one leaves unchanged.
// The case that stays ambiguous: V delivered completely in this run, its handler re-enabled
// interrupts before its EOI (STI, or a trap gate) and then took an exception whose delivery
// exited outside the IDT: hv would drop the exception and deliver V a second time (the
// faulting instruction raises the exception again after V's handler returns).
struct VectoringCheck {
  uint32_t vectoring = 0;      // IDT-vectoring information of the exit (bit 31 set)
  bool if_set = false;         // guest RFLAGS.IF at the exit
  bool shadow = false;         // STI or MOV-SS blocking at the exit
  uint8_t svi = 0;             // SVI of the guest interrupt status at the exit
  bool svi_delivered = false;  // svi_delivered_this_run() for svi
  int idt_vector = -1;         // the IDT entry the exit's linear address falls in, -1: none/unknown
};

// Whether vector v went into the virtual ISR through a delivery since the entry, from the
// 8 IRR and 8 ISR words (one per 32 vectors) at the entry and now.
inline bool svi_delivered_this_run(uint8_t v, const uint32_t irr_entry[8], const uint32_t isr_entry[8],
                                   const uint32_t irr_now[8], const uint32_t isr_now[8]) {
  const unsigned w = v / 32;
  const uint32_t bit = 1u << (v % 32);
  if (!(isr_now[w] & bit)) return false;
  return !(isr_entry[w] & bit) || ((irr_entry[w] & bit) && !(irr_now[w] & bit));
}

// The vector of the virtual interrupt whose delivery the exit interrupted (hv puts it back
// from VISR into VIRR and drops the reported event), or -1: the reported event stands and is
// re-injected.
inline int abandoned_virtual_interrupt(const VectoringCheck& c) {
  if (!(c.vectoring & (1u << 31)) || c.svi < 16 || !c.svi_delivered) return -1;
  if (c.idt_vector >= 0) return c.idt_vector == c.svi ? c.svi : -1;
  const bool names_svi = ((c.vectoring >> 8) & 7) == 0 && (c.vectoring & 0xFF) == c.svi;
  if (names_svi) return c.svi;
  if (!c.if_set || c.shadow) return -1;
  return c.svi;
}

}  // namespace hv::apicv
