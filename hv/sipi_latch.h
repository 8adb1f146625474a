// INIT and STARTUP (SIPI) for one vCPU: what the VM's APIC bus latched for it, and whether it
// is in the wait-for-SIPI state (SDM Vol. 3A, 9.4 "Multiple-Processor (MP) Initialization" and
// 11.6.1; the vCPU side is hv/vcpu_sipi.cpp, the sender side hv/devices/apic_bus.cpp).
//
// Why in software, not with the VMX "wait-for-SIPI" activity state: hv's local APICs are
// virtual (hv/devices/vlapic.h). A guest's INIT or STARTUP IPI is a write to a register that hv
// emulates; it never becomes a physical INIT or SIPI on the target's physical CPU, so a vCPU
// parked in the hardware wait-for-SIPI activity state would wait for a signal that can't come.
// (hv could inject nothing to end that state either: VM entry can't deliver a SIPI.) So a
// vCPU waits for SIPI *outside* the guest, in hv, sleeping like a halted vCPU, and is entered
// only once a SIPI arrived, with the real-mode state the SIPI defines. A physical SIPI exit
// (reason 4, possible only if the activity state were ever used) takes the same path
// (handle_sipi: the vector from the exit qualification).
//
// One word per vCPU, changed only by compare-and-swap:
//   kInit      an INIT arrived that the vCPU has not acted on yet
//   kWaiting   the vCPU is in the wait-for-SIPI state (set by the vCPU itself when it takes an
//              INIT; an AP that starts waiting is reset with an INIT pending)
//   kSipi      a SIPI was latched (vector in bits 7:0); at most one: later ones are ignored,
//              as a CPU ignores a SIPI once it has left the wait-for-SIPI state
// Senders (any CPU): INIT sets kInit and drops a latched SIPI (that SIPI predates the INIT,
// which resets the CPU again); a SIPI is latched only while the target waits or has an INIT
// pending (INIT then SIPI from one sender must start the target even if it has not yet seen
// the INIT: the INIT will put it into wait-for-SIPI, where the SIPI is already waiting).
// Owner (the vCPU's CPU): take_init() turns a pending INIT into kWaiting (keeping a SIPI that
// came after it), take_sipi() ends the wait with the latched vector.
//
// Memory ordering: the senders' CAS is release, the owner's acquire, so what a sender wrote
// before its INIT/SIPI (a trampoline in guest memory) is visible to the vCPU that starts from
// it. The IPI that follows (wake_vcpu) is ordered after the CAS by wake_vcpu's fence.
#pragma once

#include <stdint.h>

#include "mmu/atomic.h"

namespace hv {

class SipiLatch {
 public:
  static constexpr uint32_t kVectorMask = 0xFF;
  static constexpr uint32_t kSipi = 1u << 8;
  static constexpr uint32_t kInit = 1u << 9;
  static constexpr uint32_t kWaiting = 1u << 10;

  // Before the vCPU starts (no concurrent access yet): running, or (an AP that starts in
  // wait-for-SIPI, as after the firmware's INIT) with an INIT pending, so that its first safe
  // point puts it into the INIT state and it waits; a SIPI is accepted from the start.
  void reset(bool wait_for_sipi) { word_.store(wait_for_sipi ? kInit : 0, mmu::Order::relaxed); }

  // --- senders (any CPU) ---
  // An INIT arrives. Always taken.
  void deliver_init() {
    uint32_t old = word_.load(mmu::Order::relaxed);
    while (!word_.compare_exchange(old, (old | kInit) & ~(kSipi | kVectorMask), mmu::Order::release)) {
    }
  }
  // A SIPI with `vector` arrives. True when latched; false when ignored (the vCPU runs and has
  // no INIT pending, or a SIPI is already latched).
  bool deliver_sipi(uint8_t vector) {
    uint32_t old = word_.load(mmu::Order::relaxed);
    for (;;) {
      if (!(old & (kWaiting | kInit)) || (old & kSipi)) return false;
      if (word_.compare_exchange(old, old | kSipi | vector, mmu::Order::release)) return true;
    }
  }

  // --- the owner (the vCPU's CPU) ---
  // Cheap test for the run loop and HLT: is there anything for the vCPU to act on?
  bool init_pending() const { return (word_.load(mmu::Order::relaxed) & kInit) != 0; }
  bool waiting() const { return (word_.load(mmu::Order::relaxed) & kWaiting) != 0; }
  // A pending INIT becomes the wait-for-SIPI state. True when there was one (the caller then
  // puts the vCPU into the INIT state). A SIPI latched after the INIT stays.
  bool take_init() {
    uint32_t old = word_.load(mmu::Order::acquire);
    for (;;) {
      if (!(old & kInit)) return false;
      if (word_.compare_exchange(old, (old & ~kInit) | kWaiting, mmu::Order::acquire)) return true;
    }
  }
  // Ends the wait: the latched SIPI's vector, or -1 (still waiting, or not waiting at all, or
  // an INIT came meanwhile: take_init() first).
  int take_sipi() {
    uint32_t old = word_.load(mmu::Order::acquire);
    for (;;) {
      if ((old & (kWaiting | kSipi | kInit)) != (kWaiting | kSipi)) return -1;
      if (word_.compare_exchange(old, 0, mmu::Order::acquire)) return static_cast<int>(old & kVectorMask);
    }
  }
  // The vCPU was started another way (a physical SIPI exit while waiting; hv's own AP start):
  // it runs now.
  void set_running() {
    uint32_t old = word_.load(mmu::Order::relaxed);
    while (!word_.compare_exchange(old, old & kInit, mmu::Order::acquire)) {
    }
  }
  uint32_t raw() const { return word_.load(mmu::Order::relaxed); }
  // Migration (hv/vm_state.h): the target VM's latch takes the source's word, before any vCPU
  // of the target runs.
  void restore_raw(uint32_t w) { word_.store(w, mmu::Order::relaxed); }

 private:
  mmu::Atomic<uint32_t> word_{0};
};

}  // namespace hv
