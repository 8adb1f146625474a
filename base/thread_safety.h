// Clang thread-safety annotations (-Wthread-safety) for every layer: which data a lock guards
// (GUARDED_BY), which functions need it held and how (REQUIRES, REQUIRES_SHARED), which take or
// drop it (ACQUIRE, RELEASE), and scoped holders (SCOPED_CAPABILITY). The compiler then checks
// the locking contract of each file that includes this one.
//
// Why a header in base/. The macros are used by mmu/ (the MMU lock, the roots lock), by arch/
// (x86::SpinLock: the PMM and logger locks) and by hv/ (a VM's slot lock). The layering forbids
// arch/ to include mmu/ and mmu/ to include arch/, so neither can host them for the other; base/
// sits below all three layers and holds only what needs nothing but the compiler, so any layer
// may include it without depending on another. (A private copy in arch/ would not do: hv/ files
// include both arch/ and mmu/ headers, and two different definitions of GUARDED_BY in one
// translation unit are a macro-redefinition error under -Werror.)
#pragma once

#if defined(__clang__)
#define HV_TSA(x) __attribute__((x))
#else
#define HV_TSA(x)
#endif

#define CAPABILITY(name) HV_TSA(capability(name))
#define SCOPED_CAPABILITY HV_TSA(scoped_lockable)
#define GUARDED_BY(x) HV_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) HV_TSA(pt_guarded_by(x))
#define REQUIRES(...) HV_TSA(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) HV_TSA(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) HV_TSA(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) HV_TSA(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) HV_TSA(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) HV_TSA(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) HV_TSA(release_generic_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) HV_TSA(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) HV_TSA(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) HV_TSA(assert_capability(x))
#define ASSERT_SHARED_CAPABILITY(x) HV_TSA(assert_shared_capability(x))
#define NO_THREAD_SAFETY_ANALYSIS HV_TSA(no_thread_safety_analysis)
#define TRY_ACQUIRE_SHARED(...) HV_TSA(try_acquire_shared_capability(__VA_ARGS__))
#define RETURN_CAPABILITY(x) HV_TSA(lock_returned(x))
