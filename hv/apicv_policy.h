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
// Every other x2APIC write exits to hv/exit_msr.cpp.
inline bool x2apic_write_virtualized(uint32_t msr) {
  if (msr < apic::kX2apicMsrBase || msr > apic::kX2apicMsrLast) return false;
  const unsigned off = (msr - apic::kX2apicMsrBase) << 4;
  return off == apic::kTpr || off == apic::kEoi || off == apic::kSelfIpi;
}

// The guest interrupt status (SDM 25.4.2): RVI = the highest IRR vector (0: none) in bits 7:0,
// SVI = the highest ISR vector (0: none) in bits 15:8. Owner only.
inline uint16_t guest_interrupt_status(const Vlapic& l) {
  const int irr = l.highest_irr(), isr = l.highest_isr();
  return static_cast<uint16_t>((irr < 0 ? 0 : irr) | (isr < 0 ? 0 : isr) << 8);
}

}  // namespace hv::apicv
