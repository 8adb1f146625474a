// Per-CPU GDT and TSS.
//
// Every CPU gets its own GDT (null, 64-bit code 0x08, data 0x10, TSS 0x18) and its own TSS.
// VMX needs a non-null host TR, and the TSS's interrupt stack table gives the double fault,
// NMI and machine check handlers known-good stacks even when the current one is broken.
#pragma once

#include <stdint.h>

namespace x86::gdt {

inline constexpr uint16_t kCodeSelector = 0x08;
inline constexpr uint16_t kDataSelector = 0x10;
inline constexpr uint16_t kTssSelector = 0x18;

// IST slots (1-based, as the IDT gate encodes them).
inline constexpr unsigned kIstDoubleFault = 1;
inline constexpr unsigned kIstNmi = 2;
inline constexpr unsigned kIstMachineCheck = 3;
inline constexpr unsigned kIstCount = 3;
inline constexpr uint64_t kIstStackSize = 8192;

// Builds the GDT and TSS of CPU `cpu` and loads them (LGDT, CS/DS/ES/SS reload, LTR).
// ist_area: kIstCount * kIstStackSize bytes for the IST stacks. FS and GS are not touched
// (GS holds the per-CPU base).
void init_this_cpu(unsigned cpu, uint64_t ist_area);

// The BSP's IST stacks (static: the BSP sets up its GDT before the memory manager exists).
uint64_t bsp_ist_area();

}  // namespace x86::gdt
