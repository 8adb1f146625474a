// The registry of live VMs and the idle pass (see live_vms.h).
#include "hv/live_vms.h"

#include "arch/x86/percpu.h"
#include "arch/x86/spinlock.h"
#include "hv/mmu_platform.h"
#include "hv/vm.h"
#include "hv/vm_limits.h"
#include "mmu/epoch.h"

namespace hv {
namespace {

constexpr unsigned kIdleBudget = 64;

struct LiveSlot {
  x86::SpinLock lock;
  Vm* vm GUARDED_BY(lock) = nullptr;
};
LiveSlot g_live[kMaxVms];

}  // namespace

bool live_vms_add(Vm& vm) {
  for (LiveSlot& s : g_live) {
    x86::SpinLockGuard g(s.lock);
    if (s.vm) continue;
    s.vm = &vm;
    return true;
  }
  return false;
}

void live_vms_remove(Vm& vm) {
  for (LiveSlot& s : g_live) {
    // Waits for an idle pass that holds the slot: after this, none can reach the VM.
    x86::SpinLockGuard g(s.lock);
    if (s.vm == &vm) s.vm = nullptr;
  }
}

// Idle is a safe point too: no read-side section is open, so report a quiescent state, run
// this CPU's share of every live VM's deferred MMU work (root teardown, bounded) and the ready
// epoch callbacks (bounded). The epoch exists before the hook is installed.
void idle_work() {
  epoch().quiescent();
  const unsigned cpu = x86::cpu_index();
  for (LiveSlot& s : g_live) {
    if (!s.lock.try_lock_for(cpu, 1)) continue;  // being (un)registered, or another CPU's idle pass: skip
    if (s.vm) s.vm->mmu().run_deferred_work(kIdleBudget);
    s.lock.unlock();
  }
  epoch().poll(kIdleBudget);
}

}  // namespace hv
