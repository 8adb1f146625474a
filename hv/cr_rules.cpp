// MOV CR0/CR4 and XSETBV checks (see cr_rules.h).
#include "hv/cr_rules.h"

namespace hv::cr {

bool cr0_write_faults(const GuestCrState& s, uint64_t value) {
  const bool lma = (s.efer & kEferLma) != 0;
  // Bits 63:32 are reserved (#GP); reserved bits in 31:0 are ignored, not checked.
  if (value >> 32) return true;
  if ((value & kCr0Pg) && !(value & kCr0Pe)) return true;  // paging without protection
  if ((value & kCr0Nw) && !(value & kCr0Cd)) return true;  // not-write-through needs cache disable
  const bool pg_on = (s.cr0 & kCr0Pg) != 0, pg_new = (value & kCr0Pg) != 0;
  if (pg_on && !pg_new) {
    if (lma && s.cs_l) return true;          // IA-32e mode is left only from compatibility mode
    if (s.cr4 & kCr4Pcide) return true;      // PCIDs only with paging (SDM 4.10.1)
  }
  // Activating IA-32e mode needs PAE paging (SDM 9.8.5).
  if (!pg_on && pg_new && (s.efer & kEferLme) && !(s.cr4 & kCr4Pae)) return true;
  if (!(value & kCr0Wp) && (s.cr4 & kCr4Cet)) return true;  // CET requires write protection
  return false;
}

bool cr4_write_faults(const GuestCrState& s, uint64_t value, uint64_t allowed) {
  const bool lma = (s.efer & kEferLma) != 0;
  if (value & ~allowed) return true;  // reserved, or a feature this vCPU does not have
  if (lma && !(value & kCr4Pae)) return true;                       // PAE can't be left in IA-32e mode
  if (lma && ((value ^ s.cr4) & kCr4La57)) return true;             // nor the paging depth changed
  if ((value & kCr4Pcide) && !lma) return true;                     // PCIDs only in IA-32e mode
  if ((value & kCr4Pcide) && !(s.cr4 & kCr4Pcide) && (s.cr3 & 0xFFF)) return true;  // with PCID 0
  if ((value & kCr4Cet) && !(s.cr0 & kCr0Wp)) return true;
  return false;
}

bool xcr0_write_faults(uint64_t value, uint64_t supported) {
  if (value & ~supported) return true;                 // a component this vCPU does not have
  if (!(value & kXcr0X87)) return true;                // x87 state is always enabled
  if ((value & kXcr0Avx) && !(value & kXcr0Sse)) return true;
  if (((value & kXcr0BndRegs) != 0) != ((value & kXcr0BndCsr) != 0)) return true;
  // AVX-512: the three components together, and only with AVX.
  if ((value & kXcr0Avx512) && (value & kXcr0Avx512) != kXcr0Avx512) return true;
  if ((value & kXcr0Avx512) && !(value & kXcr0Avx)) return true;
  if (((value & kXcr0TileCfg) != 0) != ((value & kXcr0TileData) != 0)) return true;
  return false;
}

uint64_t efer_after_cr0_write(uint64_t efer, uint64_t old_cr0, uint64_t new_cr0) {
  const bool pg_on = (old_cr0 & kCr0Pg) != 0, pg_new = (new_cr0 & kCr0Pg) != 0;
  if (!pg_on && pg_new && (efer & kEferLme)) return efer | kEferLma;
  if (pg_on && !pg_new) return efer & ~kEferLma;
  return efer;
}

bool pae_pdptes_reload(uint64_t old_cr0, uint64_t new_cr0, uint64_t cr4, uint64_t efer) {
  if (!(new_cr0 & kCr0Pg) || !(cr4 & kCr4Pae) || (efer & kEferLme)) return false;
  const uint64_t changed = old_cr0 ^ new_cr0;
  return (changed & (kCr0Pg | kCr0Cd | kCr0Nw)) != 0;
}

bool pdpte_reserved(uint64_t pdpte, unsigned maxphyaddr) {
  if (!(pdpte & 1)) return false;
  // PAE PDPTE (SDM Vol. 3A, table "Format of a PAE Page-Directory-Pointer-Table Entry"): bits
  // 2:1 and 8:5 reserved, 63:MAXPHYADDR reserved.
  const uint64_t high = maxphyaddr >= 64 ? 0 : ~((uint64_t{1} << maxphyaddr) - 1);
  return (pdpte & (0x6ull | 0x1E0ull | high)) != 0;
}

}  // namespace hv::cr
