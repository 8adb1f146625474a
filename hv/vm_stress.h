// hv's own MMU activity while a guest runs, for the tests that show a guest cannot notice it
// (issue 12: Linux keeps working while hv zaps and changes memslots under it):
//   hv.stress-zap-ms=N   every N ms of the run, invalidate every EPT root of the VM (a fast zap:
//                        each vCPU loads a fresh root and faults its working set back in)
//   hv.stress-slot-ms=N  every N ms, delete memslot kStressSlotId at kStressSlotGpa (4 GiB: above
//                        the guest's RAM and outside the memory map it is given) and create it
//                        again, after hv has mapped its first kStressSlotPages pages, so that each
//                        delete zaps leaves and flushes the TLBs of every vCPU of the VM
// Whichever vCPU of the VM first reaches a safe point once a period is due does the work
// (VmStatClock), under the VM's slot lock like a memslot hypercall. 0 (the default): off. The
// run's summary says what was done ("vmN: stress: ...").
#pragma once

#include <stdint.h>

#include "hv/counter.h"
#include "hv/vm_stat_clock.h"

namespace hv {

class Vcpu;
class Vm;

inline constexpr uint32_t kStressSlotId = 62;  // a guest id (1-63) the test guests never use
inline constexpr uint64_t kStressSlotGpa = 1ull << 32;
inline constexpr uint64_t kStressSlotBytes = 2ull << 20;
inline constexpr unsigned kStressSlotPages = 16;

struct VmStress {
  VmStatClock zap, slot;
  bool slot_live = false;  // the stress slot exists; touched under the VM's slot lock only
  Counter zaps, slot_cycles, slot_failures;  // any vCPU that claimed a period bumps them
  bool armed() const { return zap.enabled() || slot.enabled(); }  // hv.stress-* asked for
};

// By the runner, before the vCPUs start: reads hv.stress-zap-ms / hv.stress-slot-ms.
void vm_stress_start(Vm& vm, uint64_t now_tsc, uint64_t tsc_khz);
// At a vCPU's safe point (Vcpu::vm_requests_stop).
void vm_stress_poll(Vcpu& vcpu, uint64_t now_tsc);
// After the run: one line when anything was asked for (the slot goes with the VM's memslots).
void vm_stress_finish(Vm& vm);

}  // namespace hv
