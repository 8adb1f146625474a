// The VMs that idle CPUs help: every VM that the runner (hv/vm_runner.h) has running is
// registered here from before its first vCPU starts until before it is destroyed, and every
// idle pass of a CPU (the APs' idle loop, the runner's wait loop, a parked vCPU) runs a bounded
// share of each registered VM's deferred MMU work.
//
// The guarantee: a VM is never destroyed under an idle CPU. Each registry slot has a lock; an
// idle pass only try-locks a slot (it never waits: idle must stay short, and a busy slot is
// simply skipped this time) and works on the VM inside it; unregister takes the lock for real
// and clears the slot, so once it returns no idle pass is inside that VM or can enter it.
#pragma once

namespace hv {

class Vm;

// Publish `vm` to idle CPUs. False when every slot is taken (kMaxVms).
bool live_vms_add(Vm& vm);
// Unpublish `vm`; returns when no idle pass is working on it any more.
void live_vms_remove(Vm& vm);

// One idle pass on this CPU (installed as the APs' idle hook, hv/cpu_work.h; also called by
// the runner's wait loop and by parked vCPUs): a quiescent state of the epoch, at most
// kIdleBudget units of every live VM's deferred work, bounded epoch callbacks.
void idle_work();

}  // namespace hv
