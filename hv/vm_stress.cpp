// hv's own MMU activity while a guest runs (see vm_stress.h).
#include "hv/vm_stress.h"

#include "arch/x86/log.h"
#include "arch/x86/spinlock.h"
#include "hv/cmdline.h"
#include "hv/mmu_platform.h"
#include "hv/vcpu.h"
#include "hv/vm.h"

namespace hv {

namespace {

void relax_serving_requests() { platform().cpu_relax(); }

// Create the slot and map its first pages through the MMU, as the guest's faults would.
bool slot_create(Vcpu& vcpu) {
  Vm& vm = vcpu.vm();
  if (vm.pool_bytes() < vm.ram_bytes() + kStressSlotBytes) return false;
  mmu::Memslot s;
  s.id = kStressSlotId;
  s.as_id = 0;
  s.base_gfn = kStressSlotGpa >> 12;
  s.npages = kStressSlotBytes >> 12;
  // The pool's part beyond the guest's RAM: the guest may map it too (memslot hypercalls), so
  // this is an alias, which hv allows; hv never writes through it.
  s.backing_hpa = vm.pool_hpa() + vm.ram_bytes();
  s.max_level = 1;                                 // 4 KiB leaves: a delete has several to zap
  s.flags = 0;
  if (vm.mmu().update_memslot(mmu::MemslotOp::create(s)) != mmu::MemslotError::ok) return false;
  for (unsigned i = 0; i < kStressSlotPages; i++)
    vm.mmu().map(vcpu.index(), s.base_gfn + i, mmu::spte::kAccRead | mmu::spte::kAccWrite);
  return true;
}

}  // namespace

void vm_stress_start(Vm& vm, uint64_t now, uint64_t khz) {
  VmStress& st = vm.stress;
  st.zap.start(now, cmdline::get_number("hv.stress-zap-ms", 0) * khz);
  st.slot.start(now, cmdline::get_number("hv.stress-slot-ms", 0) * khz);
  st.slot_live = false;
  st.zaps.reset();
  st.slot_cycles.reset();
  st.slot_failures.reset();
}

void vm_stress_poll(Vcpu& vcpu, uint64_t now) {
  Vm& vm = vcpu.vm();
  VmStress& st = vm.stress;
  uint64_t elapsed = 0;
  if (st.zap.claim(now, &elapsed)) {
    vm.mmu().invalidate_all_roots(false);
    st.zaps++;
  }
  if (st.slot.claim(now, &elapsed)) {
    x86::SpinLockGuard g(vm.slot_lock, relax_serving_requests);
    if (st.slot_live) {
      st.slot_live = vm.mmu().update_memslot(mmu::MemslotOp::remove(0, kStressSlotId)) != mmu::MemslotError::ok;
      if (st.slot_live) st.slot_failures++;
    }
    if (!st.slot_live) {
      st.slot_live = slot_create(vcpu);
      if (st.slot_live) st.slot_cycles++;
      else st.slot_failures++;
    }
  }
}

void vm_stress_finish(Vm& vm) {
  VmStress& st = vm.stress;
  if (!st.zap.enabled() && !st.slot.enabled()) return;
  x86::log::info("vm%u: stress: %lu fast zaps (hv.stress-zap-ms), %lu memslot delete/re-create cycles at 0x%lx with %u pages "
                 "mapped (hv.stress-slot-ms), %lu failed",
                 vm.id(), st.zaps.get(), st.slot_cycles.get(), kStressSlotGpa, kStressSlotPages, st.slot_failures.get());
}

}  // namespace hv
