// Inline wrappers for the x86 instructions the kernel uses: port I/O, CPUID, MSRs, control
// registers, TSC, interrupts on/off, HLT and PAUSE. No state, no dependencies.
#pragma once

#include <stdint.h>

namespace x86 {

// ---- port I/O -------------------------------------------------------------------------
inline void outb(uint16_t port, uint8_t v) { asm volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
inline void outw(uint16_t port, uint16_t v) { asm volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
inline void outl(uint16_t port, uint32_t v) { asm volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
inline uint8_t inb(uint16_t port) {
  uint8_t v;
  asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
inline uint16_t inw(uint16_t port) {
  uint16_t v;
  asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
inline uint32_t inl(uint16_t port) {
  uint32_t v;
  asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

// ---- CPUID ------------------------------------------------------------------------------
struct CpuidResult {
  uint32_t eax, ebx, ecx, edx;
};
inline CpuidResult cpuid(uint32_t leaf, uint32_t subleaf = 0) {
  CpuidResult r;
  asm volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(subleaf));
  return r;
}

// ---- MSRs -------------------------------------------------------------------------------
// Architectural MSRs used outside VMX; the VMX capability MSRs are in arch/x86/vmx/capabilities.h.
namespace msr {
inline constexpr uint32_t kApicBase = 0x1B;
inline constexpr uint32_t kEfer = 0xC0000080;
inline constexpr uint32_t kFsBase = 0xC0000100;
inline constexpr uint32_t kGsBase = 0xC0000101;
}  // namespace msr

inline uint64_t rdmsr(uint32_t index) {
  uint32_t lo, hi;
  asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(index));
  return (uint64_t{hi} << 32) | lo;
}
inline void wrmsr(uint32_t index, uint64_t v) {
  asm volatile("wrmsr" ::"c"(index), "a"(static_cast<uint32_t>(v)), "d"(static_cast<uint32_t>(v >> 32))
               : "memory");
}

// ---- control registers ----------------------------------------------------------------
#define HV_X86_CR_ACCESSORS(n)                                      \
  inline uint64_t read_cr##n() {                                    \
    uint64_t v;                                                     \
    asm volatile("mov %%cr" #n ", %0" : "=r"(v));                   \
    return v;                                                       \
  }                                                                 \
  inline void write_cr##n(uint64_t v) { asm volatile("mov %0, %%cr" #n ::"r"(v) : "memory"); }
HV_X86_CR_ACCESSORS(0)
HV_X86_CR_ACCESSORS(2)
HV_X86_CR_ACCESSORS(3)
HV_X86_CR_ACCESSORS(4)
#undef HV_X86_CR_ACCESSORS

inline uint64_t read_rflags() {
  uint64_t v;
  asm volatile("pushfq; popq %0" : "=r"(v));
  return v;
}

// ---- misc -------------------------------------------------------------------------------
inline uint64_t rdtsc() {
  uint32_t lo, hi;
  asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return (uint64_t{hi} << 32) | lo;
}
inline void cpu_relax() { asm volatile("pause" ::: "memory"); }
inline void cli() { asm volatile("cli" ::: "memory"); }
inline void sti() { asm volatile("sti" ::: "memory"); }
inline void hlt() { asm volatile("hlt" ::: "memory"); }
inline bool interrupts_enabled() { return (read_rflags() & (1u << 9)) != 0; }
inline void invlpg(uint64_t va) { asm volatile("invlpg (%0)" ::"r"(va) : "memory"); }
[[noreturn]] inline void halt_forever() {
  for (;;) asm volatile("cli; hlt" ::: "memory");
}

}  // namespace x86
