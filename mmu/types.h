// Basic types and freestanding helpers shared by every file of the MMU core.
//
// The MMU core compiles both into the freestanding kernel (no libc, no libstdc++) and into a
// host library, so it uses only the compiler's freestanding headers.
#pragma once

#include <stddef.h>
#include <stdint.h>

#if __has_include(<new>)
#include <new>
#else
// Placement new, which the freestanding kernel has no <new> for.
inline void* operator new(size_t, void* where) noexcept { return where; }
#endif

namespace mmu {

using gfn_t = uint64_t;        // guest frame number (guest-physical address >> 12)
using gpa_t = uint64_t;        // guest-physical address
using hpa_t = uint64_t;        // host-physical address
using hpfn_t = uint64_t;       // host frame number

inline constexpr unsigned kPageShift = 12;
inline constexpr uint64_t kPageSize = uint64_t{1} << kPageShift;

#define MMU_LIKELY(x) __builtin_expect(!!(x), 1)
#define MMU_UNLIKELY(x) __builtin_expect(!!(x), 0)

// Fatal internal inconsistency (never a guest's doing): the platform prints and stops.
[[noreturn]] void panic(const char* file, int line, const char* what);
#define MMU_ASSERT(cond)                                   \
  do {                                                     \
    if (MMU_UNLIKELY(!(cond))) ::mmu::panic(__FILE__, __LINE__, #cond); \
  } while (0)

}  // namespace mmu
