// The architectural checks of MOV to CR0/CR4 and XSETBV, as pure code (no VMCS access; the host
// unit tests compile it: tests/unit/cr_rules_test.cpp). hv/exit_cr.cpp and hv/exit_xsetbv.cpp
// apply them when a guest write exits; the answer is what the guest gets from the CPU the SDM
// describes: the write happens, or #GP(0).
//
// Sources: SDM Vol. 2B "MOV—Move to/from Control Registers" (protected-mode and 64-bit-mode
// exceptions), Vol. 3A 2.5 (control registers), 9.8.5 (entering and leaving IA-32e mode),
// Vol. 2C "XSETBV" and Vol. 1 13.3 (valid XCR0 values).
#pragma once

#include <stdint.h>

namespace hv::cr {

inline constexpr uint64_t kCr0Pe = 1u << 0, kCr0Mp = 1u << 1, kCr0Em = 1u << 2, kCr0Ts = 1u << 3;
inline constexpr uint64_t kCr0Et = 1u << 4, kCr0Ne = 1u << 5, kCr0Wp = 1u << 16, kCr0Am = 1u << 18;
inline constexpr uint64_t kCr0Nw = 1u << 29, kCr0Cd = 1u << 30, kCr0Pg = 1ull << 31;
// Every CR0 bit that exists; the others (bits 63:32 and the gaps) are reserved.
inline constexpr uint64_t kCr0Defined =
    kCr0Pe | kCr0Mp | kCr0Em | kCr0Ts | kCr0Et | kCr0Ne | kCr0Wp | kCr0Am | kCr0Nw | kCr0Cd | kCr0Pg;

inline constexpr uint64_t kCr4Pae = 1u << 5, kCr4Pge = 1u << 7, kCr4La57 = 1u << 12, kCr4Vmxe = 1u << 13;
inline constexpr uint64_t kCr4Smxe = 1u << 14, kCr4Pcide = 1u << 17, kCr4Osxsave = 1u << 18, kCr4Cet = 1u << 23;

inline constexpr uint64_t kEferLme = 1u << 8, kEferLma = 1u << 10;

// XCR0 state components (SDM Vol. 1, 13.1).
inline constexpr uint64_t kXcr0X87 = 1u << 0, kXcr0Sse = 1u << 1, kXcr0Avx = 1u << 2;
inline constexpr uint64_t kXcr0BndRegs = 1u << 3, kXcr0BndCsr = 1u << 4;
inline constexpr uint64_t kXcr0Opmask = 1u << 5, kXcr0ZmmHi256 = 1u << 6, kXcr0Hi16Zmm = 1u << 7;
inline constexpr uint64_t kXcr0Avx512 = kXcr0Opmask | kXcr0ZmmHi256 | kXcr0Hi16Zmm;
inline constexpr uint64_t kXcr0TileCfg = 1u << 17, kXcr0TileData = 1u << 18;

// The guest's state a MOV to CR0/CR4 is checked against: CR0 and CR4 as the guest sees them
// (read shadows applied), EFER, and whether it runs in 64-bit mode (EFER.LMA and CS.L).
struct GuestCrState {
  uint64_t cr0 = 0;
  uint64_t cr3 = 0;
  uint64_t cr4 = 0;
  uint64_t efer = 0;
  bool cs_l = false;
};

// The value the CPU really writes for MOV to CR0 (ET is hardwired to 1 on every processor since
// the Pentium 4 / P6 family: writes cannot clear it).
inline uint64_t cr0_written(uint64_t value) { return value | kCr0Et; }

// Whether MOV to CR0 with `value` raises #GP(0) (true) or completes (false).
bool cr0_write_faults(const GuestCrState& s, uint64_t value);

// Whether MOV to CR4 with `value` raises #GP(0). `allowed` is every CR4 bit the guest may set:
// the bits the CPU has (IA32_VMX_CR4_FIXED1) minus what hv hides (VMXE, SMXE, OSXSAVE without
// XSAVE support...).
bool cr4_write_faults(const GuestCrState& s, uint64_t value, uint64_t allowed);

// Whether XSETBV of XCR0 with `value` raises #GP(0); `supported` is every XCR0 bit hv lets the
// guest enable (VcpuFeatures::xcr0_mask). (ECX, CPL and CR4.OSXSAVE are checked by the caller.)
bool xcr0_write_faults(uint64_t value, uint64_t supported);

// Mode changes a completed MOV to CR0 implies for EFER.LMA: PG 0 -> 1 with EFER.LME = 1 enters
// IA-32e mode (LMA = 1), PG 1 -> 0 leaves it (LMA = 0). Returns the new EFER.
uint64_t efer_after_cr0_write(uint64_t efer, uint64_t old_cr0, uint64_t new_cr0);

// Whether the guest is in PAE paging outside IA-32e mode after the write, i.e. the CPU would
// (re)load the four PDPTEs from CR3 (SDM Vol. 3A, 4.4.1): MOV to CR0 that sets PG or changes
// CD/NW, with CR4.PAE = 1 and EFER.LME = 0.
bool pae_pdptes_reload(uint64_t old_cr0, uint64_t new_cr0, uint64_t cr4, uint64_t efer);
// A PDPTE with P = 1 and a reserved bit set makes the loading instruction raise #GP(0).
// `maxphyaddr`: the guest's physical-address width.
bool pdpte_reserved(uint64_t pdpte, unsigned maxphyaddr);

}  // namespace hv::cr
