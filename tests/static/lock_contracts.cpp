// Compile-time tests of the locking contracts outside mmu/ (registered in tests/static/CMakeLists.txt).
//
// The file is compiled once as it is, which must succeed warning-free (the correct uses below),
// and once per MISUSE=n, which -Wthread-safety must reject with the diagnostic the CMake file
// names. They show that the annotations on x86::SpinLock, its guard and Vm::guest_slots are
// live: were any of them missing or wrong, a misuse would compile and its test would fail.
#include "arch/x86/spinlock.h"
#include "hv/vm.h"

x86::SpinLock g_lock;
int g_counter GUARDED_BY(g_lock) = 0;
int* g_table PT_GUARDED_BY(g_lock) = nullptr;

void bump() REQUIRES(g_lock) { g_counter++; }
void no_wait() {}

// Every way the kernel takes these locks, each correct.
int correct_uses(hv::Vm& vm) {
  int r = 0;
  {
    x86::SpinLockGuard g(g_lock);
    bump();
    r += g_counter + g_table[0];
  }
  g_lock.lock();
  g_counter = 0;
  g_lock.unlock();
  g_lock.lock(0u);
  g_counter = 1;
  g_lock.unlock();
  if (g_lock.try_lock_for(0, 1)) {
    g_counter++;
    g_lock.unlock();
  }
  g_lock.lock_or_break(1);
  g_counter++;
  g_lock.unlock();
  {
    x86::SpinLockGuard g(vm.slot_lock, no_wait);
    r += static_cast<int>(vm.guest_slots);
  }
  return r;
}

// Held by the caller, which the analysis cannot see: assert_held() says so (and checks it).
int caller_holds() {
  g_lock.assert_held();
  return g_counter;
}

#if MISUSE == 1  // guarded data read without its lock
int misuse() { return g_counter; }
#elif MISUSE == 2  // data behind a guarded pointer written without the lock
void misuse() { g_table[0] = 1; }
#elif MISUSE == 3  // a function that REQUIRES the lock called without it
void misuse() { bump(); }
#elif MISUSE == 4  // a lock taken and left held at the end of the function
void misuse() { g_lock.lock(); }
#elif MISUSE == 5  // a lock released that was not held
void misuse() { g_lock.unlock(); }
#elif MISUSE == 6  // the VM's guest slots changed without its slot lock
void misuse(hv::Vm& vm) { vm.guest_slots = 0; }
#elif MISUSE == 7  // another VM's slot lock held instead
void misuse(hv::Vm& a, hv::Vm& b) {
  x86::SpinLockGuard g(a.slot_lock);
  b.guest_slots = 0;
}
#elif MISUSE == 8  // guarded data touched after the guard's scope ended
int misuse() {
  { x86::SpinLockGuard g(g_lock); }
  return g_counter;
}
#endif
