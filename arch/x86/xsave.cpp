// Extended state in root mode (see xsave.h).
#include "arch/x86/xsave.h"

#include "arch/x86/cpu.h"

namespace x86::xsave {
namespace {
uint64_t g_host_xcr0 = 0;  // written by every CPU with the same value, before any guest runs
}  // namespace

uint64_t enable_on_this_cpu(uint64_t wanted) {
  if (!(x86::cpuid(1).ecx & (1u << 26))) return 0;  // CPUID.1:ECX.XSAVE
  const CpuidResult d = x86::cpuid(0xD, 0);
  const uint64_t supported = (uint64_t{d.edx} << 32) | d.eax;
  const uint64_t xcr0 = (supported & wanted) | 1;
  x86::write_cr4(x86::read_cr4() | kCr4Osxsave);
  xsetbv(0, xcr0);
  __atomic_store_n(&g_host_xcr0, xcr0, __ATOMIC_RELAXED);
  return xcr0;
}

uint64_t host_xcr0() { return __atomic_load_n(&g_host_xcr0, __ATOMIC_RELAXED); }

}  // namespace x86::xsave
