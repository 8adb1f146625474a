// The virtual local APIC of one vCPU (SDM Vol. 3A, chapter 11 "Advanced Programmable Interrupt
// Controller"): its registers, the IRR/ISR/TMR priority logic, and the LAPIC timer.
//
// Pure code: no VMCS, no IPIs, no clocks. The caller passes the guest TSC where time matters
// and acts on what a write asks for (WriteEffect: send an IPI through apic_deliver, broadcast
// an EOI to the IOAPIC), so every rule runs in host unit tests (tests/unit/vlapic_test.cpp).
// The kernel side: hv/devices/apic_bus.cpp (delivery between vLAPICs), hv/irq_inject.cpp
// (injection at VM entry, HLT, the timer on the vCPU's CPU), hv/devices/vlapic_mmio.cpp
// (xAPIC page), hv/exit_msr.cpp (x2APIC MSRs, IA32_APIC_BASE).
//
// Register access goes by the xAPIC page offset (0x000-0x3F0, 16-byte aligned); x2APIC MSR
// 0x800 + n is offset n << 4. The two modes differ in what they allow (read()/write() take the
// mode from the state): xAPIC has DFR and a writable LDR and 32-bit ICR halves, x2APIC has a
// read-only LDR derived from the ID, a 64-bit ICR, SELF_IPI and #GP for reserved registers.
//
// The register store is one 4 KiB page at the architectural offsets (the SDM's virtual-APIC
// page layout, Vol. 3C 30.1): both paths use it. With hv's software path only hv reads and
// writes it; with APIC virtualization (hv/apicv.h) the CPU reads and writes the same page while
// the guest runs (TPR, PPR, ISR/IRR, EOI, the x2APIC reads), and hv completes what it leaves to
// software, so switching paths, or taking the state elsewhere, needs no translation. Bytes that
// are not a register stay 0 (the CPU's 64-bit x2APIC reads see 0 in their upper half), and the
// x2APIC ICR is 64 bits at 0x300 (its upper half at 0x304, where the CPU reads and writes it),
// the xAPIC ICR's upper half at 0x310. Not stored: the current count (computed from time).
//
// Posted mode (set_posted, hv.apicv=on): deliveries from other CPUs never touch the IRR, which
// the CPU rewrites while the guest runs, but go to the posted-interrupt descriptor's PIR (edge)
// or a level latch (level-triggered: the EOI-exit bitmap must name the vector before the guest
// can see it, so those wait for the owner's next entry); the owner folds both into the IRR
// (sync_posted) before every entry, and the CPU folds the PIR itself when the notification
// vector reaches it in the guest (posted-interrupt processing).
//
// Concurrency: IRR and TMR are set by any CPU (another vCPU's IPI, a device through the
// IOAPIC): atomic bitmaps (accept()). The rest belongs to the vCPU's own CPU: only its exits
// and its entries read or write it. The NMI/INIT/SIPI latches are atomics for the same reason
// as the IRR. accept() publishes the IRR bit with release order; the owner's reads of the IRR
// (highest_irr) are acquire, so whatever the sender wrote before the IPI is visible to the
// handler the vector runs.
#pragma once

#include <stdint.h>

#include "hv/irq.h"
#include "mmu/atomic.h"

namespace hv {

namespace apic {
// Register offsets in the xAPIC page.
inline constexpr unsigned kId = 0x20, kVersion = 0x30, kTpr = 0x80, kApr = 0x90, kPpr = 0xA0, kEoi = 0xB0,
                          kRrd = 0xC0, kLdr = 0xD0, kDfr = 0xE0, kSvr = 0xF0, kIsr = 0x100, kTmr = 0x180, kIrr = 0x200,
                          kEsr = 0x280, kLvtCmci = 0x2F0, kIcrLow = 0x300, kIcrHigh = 0x310, kLvtTimer = 0x320,
                          kLvtThermal = 0x330, kLvtPerf = 0x340, kLvtLint0 = 0x350, kLvtLint1 = 0x360, kLvtError = 0x370,
                          kTimerInitial = 0x380, kTimerCurrent = 0x390, kTimerDivide = 0x3E0, kSelfIpi = 0x3F0;
// Version register: version 0x14 (integrated APIC), max LVT entry 5 (timer, thermal,
// performance, LINT0, LINT1, error; no CMCI), no EOI-broadcast suppression.
inline constexpr uint32_t kVersionValue = 0x00050014;
inline constexpr uint32_t kLvtMasked = 1u << 16;
inline constexpr uint32_t kSvrEnable = 1u << 8;
// ESR bits (SDM 11.5.3).
inline constexpr uint32_t kEsrSendIllegalVector = 1u << 5, kEsrReceiveIllegalVector = 1u << 6,
                          kEsrIllegalRegister = 1u << 7;
// Timer modes of LVT timer bits 18:17.
inline constexpr uint32_t kTimerOneShot = 0, kTimerPeriodic = 1, kTimerTscDeadline = 2;
inline constexpr uint32_t kX2apicMsrBase = 0x800, kX2apicMsrLast = 0x8FF;
inline constexpr uint32_t kTscDeadlineMsr = 0x6E0;
}  // namespace apic

// What a register write asks the caller to do.
struct WriteEffect {
  bool send = false;       // deliver `msg` (ICR or SELF_IPI write) from this vCPU
  ApicMessage msg;
  int eoi_level_vector = -1;  // an EOI of a level-triggered vector: ioapic_eoi(vector)
  bool timer_changed = false; // the timer was (re)armed or stopped: recompute the next deadline
};

// The posted-interrupt descriptor (SDM 30.6): PIR bits 255:0, ON bit 256; 64-byte aligned.
struct alignas(64) PostedDesc {
  uint32_t pir[8];
  uint32_t control;  // bit 0: outstanding notification (ON); bit 1 SN; 23:16 NV (VT-d only)
  uint32_t rest[7];
};
static_assert(sizeof(PostedDesc) == 64, "posted-interrupt descriptor is 64 bytes");

// What an edge on one of a LAPIC's LINT pins does there (SDM 11.5.1), by its LVT entry.
enum class LintAction : uint8_t {
  kNone,    // masked, software-disabled (its LVTs are masked), or a mode hv does not wire (SMI, ExtINT on LINT1, reserved)
  kNmi,     // NMI mode, or (LINT1) a hardware-disabled LAPIC: the pin goes straight to the CPU's NMI input
  kFixed,   // fixed mode: `vector` into the IRR, edge-triggered (LINT1 is always edge, SDM 11.5.1)
  kInit,    // INIT mode
  kExtInt,  // (LINT0) ExtINT mode, or a hardware-disabled LAPIC: the 8259's INTR, acknowledged by the CPU
};
struct LintEvent {
  LintAction action = LintAction::kNone;
  uint8_t vector = 0;
};

class Vlapic {
 public:
  static constexpr unsigned kPageBytes = 4096;
  // Power-up/reset state (SDM 11.4.7.1 and table 10-1): ID = `id`, everything masked and
  // software-disabled, xAPIC mode. `tsc_khz`: the TSC rate the timer converts against
  // (the LAPIC timer counts at kLapicTimerKhz, hv/cpuid_policy.h). `tsc_deadline`: the mode
  // is offered (CPUID.1:ECX[24]).
  void reset(uint32_t id, uint64_t tsc_khz, bool tsc_deadline);

  // --- mode (IA32_APIC_BASE; the MSR policy validates the transition) ---
  void set_mode(bool enabled, bool x2apic);
  bool x2apic() const { return x2apic_; }
  bool hw_enabled() const { return hw_enabled_; }
  bool sw_enabled() const { return (reg(apic::kSvr) & apic::kSvrEnable) != 0; }
  uint32_t id() const { return id_; }

  // --- registers ---
  // False: the access is not allowed (x2APIC: #GP; xAPIC: reads 0, writes dropped, and the
  // caller treats it so). `now` is the guest TSC (current count).
  bool read(unsigned offset, uint64_t now, uint64_t& value) const;
  bool write(unsigned offset, uint64_t value, uint64_t now, WriteEffect& fx);
  // The same write after the CPU already stored `value` at `offset` in the page (an APIC-write
  // exit of "virtualize APIC accesses", hv/apicv.cpp): the previous value, where the write's
  // effect depends on it (SVR, LVT timer), is restored from hv's copy first.
  bool write_stored(unsigned offset, uint64_t value, uint64_t now, WriteEffect& fx);

  // --- interrupts ---
  // Any CPU: a fixed/lowest-priority interrupt with `vector` arrives (IRR, TMR). False when
  // refused (illegal vector 0-15: ESR "receive illegal vector", latched by the owner later).
  bool accept(uint8_t vector, bool level);
  // Any CPU: an NMI arrives.
  void accept_nmi() { nmi_.store(1, mmu::Order::release); }
  bool take_nmi() { return nmi_.exchange(0, mmu::Order::acquire) != 0; }
  bool nmi_pending() const { return nmi_.load(mmu::Order::relaxed) != 0; }
  // Owner: the vector the CPU would take now (highest IRR above PPR), or -1.
  int deliverable() const;
  // Owner: the CPU takes `vector` (IRR -> ISR, PPR updated). Returns the vector.
  void ack(uint8_t vector);
  // Owner: the EOI register was written (highest ISR cleared).
  void eoi(WriteEffect& fx);
  uint8_t tpr() const { return static_cast<uint8_t>(reg(apic::kTpr)); }
  uint8_t ppr() const;
  // SDM 11.8.3.1: the PPR from the TPR and the highest ISR vector (-1: none). ppr() scans the
  // ISR for it; the hardware path's entry code has it from its own pass over the page.
  static uint8_t ppr_of(uint32_t tpr, int isr_top) {
    const uint32_t isr_class = isr_top < 0 ? 0 : static_cast<uint32_t>(isr_top) & 0xF0;
    return static_cast<uint8_t>((tpr & 0xF0) >= isr_class ? tpr & 0xFF : isr_class);
  }
  void set_tpr(uint8_t v) {  // MOV to CR8 (CR8 = TPR[7:4])
    set_reg(apic::kTpr, v);
    refresh_ppr();
  }
  int highest_irr() const;
  int highest_isr() const;
  bool irr_bit(uint8_t v) const { return (irr_word(v / 32) >> (v % 32)) & 1; }
  bool isr_bit(uint8_t v) const { return (reg(apic::kIsr + 16 * (v / 32)) >> (v % 32)) & 1; }

  // --- the register page and the posted-interrupt descriptor (hv/apicv.h) ---
  // The page's host address (the kernel maps memory 1:1, so it is also the physical address
  // the VMCS takes) and its words. Owner only, while the guest does not run.
  const uint32_t* page() const { return page_; }
  uint32_t* page() { return page_; }
  PostedDesc& posted_desc() { return pi_; }
  // Before any vCPU of the VM runs: deliveries go to the PIR / level latch (see above).
  void set_posted(bool on) { posted_ = on; }
  bool posted() const { return posted_; }
  // Owner, before entry: the PIR and the level latch into the IRR (ON cleared first, so a
  // sender that comes later sets it again and notifies). True when any bit moved.
  bool sync_posted();
  // Any CPU: a delivery from another vCPU reached this LAPIC with a posted-interrupt
  // notification (`posted`) or with a kick / wake-up (statistics for the vCPU report).
  void note_remote_delivery(bool posted) { (posted ? remote_posted_ : remote_kicked_).fetch_add(1, mmu::Order::relaxed); }
  uint64_t remote_posted() const { return remote_posted_.load(mmu::Order::relaxed); }
  uint64_t remote_kicked() const { return remote_kicked_.load(mmu::Order::relaxed); }
  void reset_stats() {  // a new VM (not a guest's APIC reset, which keeps them)
    remote_posted_.store(0, mmu::Order::relaxed);
    remote_kicked_.store(0, mmu::Order::relaxed);
  }
  // Owner: PPR recomputed from TPR and ISR into the page (the CPU reads VPPR from it at entry).
  void refresh_ppr() { set_reg(apic::kPpr, ppr()); }
  // Owner: 64 bits of the TMR (index 0-3: vectors 64*i .. 64*i+63), the EOI-exit bitmap the
  // CPU needs so that EOIs of level-triggered vectors exit and reach the IOAPIC.
  uint64_t tmr_quad(unsigned i) const {
    return static_cast<uint64_t>(tmr_word(2 * i)) | static_cast<uint64_t>(tmr_word(2 * i + 1)) << 32;
  }

  // --- destinations (apic_bus.cpp) ---
  // Whether this LAPIC is a target of a message with `dest` in the given mode.
  bool matches_physical(uint32_t dest, bool x2apic_format) const;
  bool matches_logical(uint32_t dest, bool x2apic_format) const;
  uint32_t ldr() const;

  // --- timer ---
  // Owner: the guest TSC at which the timer next fires, or 0 (not armed).
  uint64_t timer_deadline() const { return deadline_; }
  // Owner: if the timer is due at `now`, fire it (IRR unless masked; periodic re-armed from
  // the previous deadline, missed periods coalesced into one interrupt). True if it fired.
  bool timer_poll(uint64_t now);
  // IA32_TSC_DEADLINE (0x6E0): reads 0 and ignores writes outside TSC-deadline mode.
  uint64_t tsc_deadline_msr() const;
  void set_tsc_deadline_msr(uint64_t v);
  // TSC cycles of `count` timer ticks at the current divide (for the tests too).
  uint64_t ticks_to_tsc(uint64_t count) const;
  uint64_t timer_fired() const { return timer_fired_; }
  // Whether this LAPIC takes the 8259's INTR (the PC's "virtual wire"): hardware-disabled (the
  // INTR pin goes straight to the CPU), or LINT0 unmasked in ExtINT mode (SDM 11.5.1). A
  // software-disabled LAPIC has its LVTs masked, so it takes nothing.
  bool takes_extint() const { return lint_event(0).action == LintAction::kExtInt; }
  // Any CPU: what an edge on LINT`pin` (0 or 1) does at this LAPIC now. The LVT word is read
  // once, relaxed: its owner may rewrite it at the same moment, and the edge then sees the old
  // or the new entry, as a pin that toggles while the CPU writes the LVT would.
  LintEvent lint_event(unsigned pin) const;

 private:
  uint32_t reg(unsigned off) const { return page_[off >> 2]; }
  void set_reg(unsigned off, uint32_t v) { page_[off >> 2] = v; }
  uint32_t irr_word(unsigned i) const;
  // Inline: the EOI-exit bitmap reads it before every entry. Relaxed: a sender's accept()
  // writes it first and then the IRR, PIR or level latch with release, whose acquire side
  // (irr_word, sync_posted) is what orders the TMR for the owner.
  uint32_t tmr_word(unsigned i) const { return mmu::atomic_load(&page_[(apic::kTmr + 16 * i) >> 2], mmu::Order::relaxed); }
  uint32_t lvt(unsigned index) const { return reg(apic::kLvtTimer + 16 * index); }
  uint32_t timer_mode() const { return (lvt(0) >> 17) & 3; }
  unsigned divide_shift() const;
  void arm_count(uint64_t now);
  void stop_timer() { deadline_ = 0; }
  bool send_icr(uint64_t icr, WriteEffect& fx);
  // Owner: an interrupt of its own (the timer) into the IRR, edge-triggered.
  void raise_local(uint8_t vector);
  void write_lvt(unsigned index, uint32_t v);
  uint32_t icr_high() const { return reg(x2apic_ ? apic::kIcrLow + 4 : apic::kIcrHigh); }
  void set_icr_high(uint32_t v) { set_reg(x2apic_ ? apic::kIcrLow + 4 : apic::kIcrHigh, v); }
  // The mode-dependent registers rewritten in the page's format for the current mode.
  void write_mode_registers();
  bool write_reg(unsigned offset, uint64_t value, uint64_t now, WriteEffect& fx);
  // hv's copy of the registers write_stored() needs from before the CPU's store: after every
  // change hv makes (the page itself, outside an APIC-write exit, always equals them).
  void note_committed() {
    svr_committed_ = reg(apic::kSvr);
    lvt_timer_committed_ = reg(apic::kLvtTimer);
  }

  // The registers, at their architectural offsets (first: the page must be 4 KiB aligned).
  alignas(4096) uint32_t page_[kPageBytes / 4];
  PostedDesc pi_;
  uint32_t level_latch_[8] = {};  // posted mode: level-triggered vectors waiting for the owner
  uint32_t latch_pending_ = 0;    // set after a latch bit (sync_posted's cheap check)
  bool posted_ = false;
  uint32_t id_ = 0;
  uint64_t tsc_khz_ = 1;
  bool tsc_deadline_ok_ = false;
  bool hw_enabled_ = true;
  bool x2apic_ = false;
  uint32_t ldr_ = 0;        // xAPIC LDR (bits 31:24), kept across x2APIC mode
  uint32_t esr_pending_ = 0;
  uint32_t svr_committed_ = 0xFF, lvt_timer_committed_ = apic::kLvtMasked;  // note_committed()
  uint64_t start_ = 0;      // guest TSC when the count was loaded / the last period began
  uint64_t deadline_ = 0;   // guest TSC of the next expiry (0: none)
  uint64_t period_ = 0;     // periodic: TSC cycles of one period
  uint64_t tsc_deadline_ = 0;
  uint64_t timer_fired_ = 0;
  mmu::Atomic<uint32_t> nmi_{0};
  mmu::Atomic<uint32_t> esr_remote_{0};  // receive errors seen by accept(), folded into esr_pending_
  mmu::Atomic<uint64_t> remote_posted_{0}, remote_kicked_{0};  // note_remote_delivery (not state)
 public:
  // --- migration state (hv/vm_state.h, docs/migration.md): everything the guest can observe ---
  // The register page (IRR/ISR/TMR, LVTs, timer registers), the posted-interrupt words and the
  // timer. The timer's start/deadline are guest-TSC values: valid unchanged in a VM that keeps
  // the guest TSC (the migration target keeps the VM's TSC origin and every vCPU's offset).
  struct State {
    uint32_t page[kPageBytes / 4] = {};
    uint32_t pir[8] = {};
    uint32_t pi_control = 0;
    uint32_t level_latch[8] = {};
    uint32_t latch_pending = 0;
    bool posted = false;
    uint32_t id = 0;
    uint64_t tsc_khz = 1;
    bool tsc_deadline_ok = false, hw_enabled = true, x2apic = false;
    uint32_t ldr = 0, esr_pending = 0;
    uint64_t start = 0, deadline = 0, period = 0, tsc_deadline = 0, timer_fired = 0;
    uint32_t nmi = 0, esr_remote = 0;
    bool operator==(const State&) const = default;
  };
  void save(State& s) const;
  void restore(const State& s);
};

}  // namespace hv
