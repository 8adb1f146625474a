// Clang thread-safety annotations (-Wthread-safety), so that the compiler checks the locking
// contract of the MMU: which data a lock guards, which functions need it held, and how.
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
