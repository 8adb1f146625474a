// Extended state (XSAVE feature set) in root mode: hv turns CR4.OSXSAVE on so that it can
// execute XSETBV, which it needs to give every guest its own XCR0 (hv/exit_xsetbv.cpp).
//
// hv itself never touches x87/SSE/AVX registers: the kernel is compiled with
// -mgeneral-regs-only (cmake/toolchain-kernel.cmake), so no compiler-generated code uses them,
// and no assembly of hv does. A guest's FPU/SSE/AVX registers therefore stay in the CPU across
// its VM exits untouched (hv neither saves nor restores them). hv's own XCR0 is every
// component that guests may enable (host_xcr0()), so that going back from a guest's XCR0 to
// hv's only ever enables components and never disables one that holds guest state (the SDM
// does not promise that a component disabled by XSETBV keeps its contents).
#pragma once

#include <stdint.h>

namespace x86::xsave {

inline uint64_t xgetbv(uint32_t index) {
  uint32_t lo, hi;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(index));
  return (uint64_t{hi} << 32) | lo;
}
inline void xsetbv(uint32_t index, uint64_t v) {
  asm volatile("xsetbv" ::"c"(index), "a"(static_cast<uint32_t>(v)), "d"(static_cast<uint32_t>(v >> 32)) : "memory");
}

inline constexpr uint64_t kCr4Osxsave = 1u << 18;

// The state components guests may enable: x87, SSE, AVX and the three AVX-512 components. Not
// MPX (deprecated), PKRU (the PKRU register itself would have to be switched too), AMX or the
// supervisor components (XSAVES is not enabled for guests).
inline constexpr uint64_t kGuestComponents = 0x1 | 0x2 | 0x4 | 0x20 | 0x40 | 0x80;

// On the calling CPU: when CPUID.1:ECX.XSAVE is set, sets CR4.OSXSAVE and XCR0 to every
// component in `wanted` that CPUID.(EAX=0DH,ECX=0) reports (x87 always). Returns that XCR0, or
// 0 without XSAVE. Every CPU computes the same value (same CPUID everywhere).
uint64_t enable_on_this_cpu(uint64_t wanted);

// The XCR0 hv runs with (0: XSAVE not enabled). Set by enable_on_this_cpu().
uint64_t host_xcr0();

}  // namespace x86::xsave
