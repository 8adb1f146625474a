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
//
// Transition: mmu/thread_safety.h still holds its own copy of these definitions (it predates
// this header, and mmu/ is being changed on other branches). Until it becomes a one-line include
// of this file, both spell every macro they share token for token the same - the helper is still
// called MMU_TSA for that reason - because C++ allows a macro to be defined again only with an
// identical replacement list ([cpp.replace]/2). That also makes the compiler the guard: a file
// that includes both headers (every hv/ file that sees vm.h and guest_mmu.h) fails to build with
// -Wmacro-redefined the moment the two copies differ. TRY_ACQUIRE_SHARED and RETURN_CAPABILITY
// are spelled exactly as mmu/lock.h spells them (it defines them only where still undefined).
#pragma once

#if defined(__clang__)
#define MMU_TSA(x) __attribute__((x))
#else
#define MMU_TSA(x)
#endif

#define CAPABILITY(name) MMU_TSA(capability(name))
#define SCOPED_CAPABILITY MMU_TSA(scoped_lockable)
#define GUARDED_BY(x) MMU_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) MMU_TSA(pt_guarded_by(x))
#define REQUIRES(...) MMU_TSA(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) MMU_TSA(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) MMU_TSA(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) MMU_TSA(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) MMU_TSA(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) MMU_TSA(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) MMU_TSA(release_generic_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) MMU_TSA(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) MMU_TSA(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) MMU_TSA(assert_capability(x))
#define ASSERT_SHARED_CAPABILITY(x) MMU_TSA(assert_shared_capability(x))
#define NO_THREAD_SAFETY_ANALYSIS MMU_TSA(no_thread_safety_analysis)
#define TRY_ACQUIRE_SHARED(...) MMU_TSA(try_acquire_shared_capability(__VA_ARGS__))
#define RETURN_CAPABILITY(x) MMU_TSA(lock_returned(x))
