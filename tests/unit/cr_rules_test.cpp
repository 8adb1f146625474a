// The architectural checks hv applies when it completes a guest's MOV to CR0/CR4 or XSETBV
// (hv/cr_rules.h): each #GP(0) condition of the SDM, and the writes that must succeed.
#include <catch2/catch.hpp>

#include "hv/cr_rules.h"

using namespace hv::cr;

namespace {
GuestCrState protected_mode() {
  GuestCrState s;
  s.cr0 = kCr0Pe | kCr0Et | kCr0Ne;
  return s;
}
GuestCrState long_mode(bool cs_l) {
  GuestCrState s;
  s.cr0 = kCr0Pe | kCr0Et | kCr0Ne | kCr0Pg | kCr0Wp;
  s.cr4 = kCr4Pae;
  s.efer = kEferLme | kEferLma;
  s.cs_l = cs_l;
  return s;
}
}  // namespace

TEST_CASE("cr_rules: MOV to CR0", "[cr_rules]") {
  const GuestCrState pm = protected_mode();
  CHECK(!cr0_write_faults(pm, 0x80010001));  // paging on with NE clear: the guests
  CHECK(!cr0_write_faults(pm, 0x11));        // NE cleared
  CHECK(!cr0_write_faults(pm, 0x0));         // back to real mode (unrestricted guest)
  CHECK(cr0_write_faults(pm, kCr0Pg));       // PG without PE
  CHECK(cr0_write_faults(pm, kCr0Pe | kCr0Nw));          // NW without CD
  CHECK(!cr0_write_faults(pm, kCr0Pe | kCr0Nw | kCr0Cd));
  CHECK(cr0_write_faults(pm, kCr0Pe | (1ull << 32)));    // reserved high bits
  CHECK(cr0_written(kCr0Pe) == (kCr0Pe | kCr0Et));       // ET is hardwired
  // Entering IA-32e mode needs PAE.
  GuestCrState lme = pm;
  lme.efer = kEferLme;
  CHECK(cr0_write_faults(lme, kCr0Pe | kCr0Pg));
  lme.cr4 = kCr4Pae;
  CHECK(!cr0_write_faults(lme, kCr0Pe | kCr0Pg));
  CHECK(efer_after_cr0_write(lme.efer, lme.cr0, kCr0Pe | kCr0Pg) == (kEferLme | kEferLma));
  // Leaving it: not from 64-bit mode, fine from compatibility mode (LMA cleared).
  CHECK(cr0_write_faults(long_mode(true), kCr0Pe));
  CHECK(!cr0_write_faults(long_mode(false), kCr0Pe));
  CHECK(efer_after_cr0_write(kEferLme | kEferLma, long_mode(false).cr0, kCr0Pe) == kEferLme);
  // PCIDE set: PG can't be cleared; CET set: WP can't be cleared.
  GuestCrState pcid = long_mode(false);
  pcid.cr4 |= kCr4Pcide;
  CHECK(cr0_write_faults(pcid, kCr0Pe));
  GuestCrState cet = long_mode(true);
  cet.cr4 |= kCr4Cet;
  CHECK(cr0_write_faults(cet, cet.cr0 & ~kCr0Wp));
  CHECK(!cr0_write_faults(cet, cet.cr0 & ~kCr0Ne));
}

TEST_CASE("cr_rules: MOV to CR4", "[cr_rules]") {
  const uint64_t allowed = 0x3727FF & ~kCr4Vmxe & ~kCr4Smxe;  // a CPU's FIXED1 minus hv's bits
  const GuestCrState pm = protected_mode();
  CHECK(!cr4_write_faults(pm, kCr4Pae | kCr4Pge, allowed));
  CHECK(cr4_write_faults(pm, kCr4Vmxe, allowed));     // hidden VMX
  CHECK(cr4_write_faults(pm, kCr4Smxe, allowed));
  CHECK(cr4_write_faults(pm, 1ull << 31, allowed));   // a bit the CPU lacks
  CHECK(cr4_write_faults(pm, kCr4Pcide, allowed));    // PCIDs outside IA-32e mode
  const GuestCrState lm = long_mode(true);
  CHECK(cr4_write_faults(lm, 0, allowed));                      // PAE cleared in IA-32e mode
  CHECK(cr4_write_faults(lm, kCr4Pae | kCr4La57, allowed));     // paging depth changed
  CHECK(!cr4_write_faults(lm, kCr4Pae | kCr4Pcide, allowed));   // CR3[11:0] = 0
  GuestCrState lm3 = lm;
  lm3.cr3 = 0x1005;
  CHECK(cr4_write_faults(lm3, kCr4Pae | kCr4Pcide, allowed));
  GuestCrState nowp = lm;
  nowp.cr0 &= ~kCr0Wp;
  CHECK(cr4_write_faults(nowp, kCr4Pae | kCr4Cet, allowed | kCr4Cet));
  CHECK(!cr4_write_faults(lm, kCr4Pae | kCr4Cet, allowed | kCr4Cet));
}

TEST_CASE("cr_rules: XSETBV values", "[cr_rules]") {
  const uint64_t avx512_host = 0xE7;  // x87 SSE AVX opmask ZMM_Hi256 Hi16_ZMM
  CHECK(!xcr0_write_faults(1, avx512_host));
  CHECK(!xcr0_write_faults(3, avx512_host));
  CHECK(!xcr0_write_faults(7, avx512_host));
  CHECK(!xcr0_write_faults(0xE7, avx512_host));
  CHECK(xcr0_write_faults(0, avx512_host));      // x87 clear
  CHECK(xcr0_write_faults(2, avx512_host));      // x87 clear
  CHECK(xcr0_write_faults(5, avx512_host));      // AVX without SSE
  CHECK(xcr0_write_faults(0x27, avx512_host));   // AVX-512 components not all together
  CHECK(xcr0_write_faults(0x67, avx512_host));
  CHECK(xcr0_write_faults(0xE3, avx512_host));   // AVX-512 without AVX
  CHECK(xcr0_write_faults(7, 3));                // AVX not supported
  CHECK(!xcr0_write_faults(0x201, avx512_host | 0x200));  // PKRU needs no other component
  CHECK(!xcr0_write_faults(0x203, avx512_host | 0x200));
  CHECK(xcr0_write_faults(0x9, 0xFF));           // BNDREGS without BNDCSR
  CHECK(xcr0_write_faults(1ull << 63, avx512_host));
}

TEST_CASE("cr_rules: PAE PDPTEs", "[cr_rules]") {
  const uint64_t pg = kCr0Pe | kCr0Pg;
  CHECK(pae_pdptes_reload(kCr0Pe, pg, kCr4Pae, 0));
  CHECK(!pae_pdptes_reload(kCr0Pe, pg, 0, 0));           // 32-bit paging
  CHECK(!pae_pdptes_reload(kCr0Pe, pg, kCr4Pae, kEferLme));  // IA-32e: no PDPTE registers
  CHECK(!pae_pdptes_reload(pg, pg, kCr4Pae, 0));         // nothing changed
  CHECK(pae_pdptes_reload(pg, pg | kCr0Cd, kCr4Pae, 0));
  CHECK(!pdpte_reserved(0x1000 | 1, 36));
  CHECK(!pdpte_reserved(~0ull & ~1ull, 36));  // not present: not checked
  CHECK(pdpte_reserved(0x1000 | 1 | 2, 36));  // bit 1 reserved
  CHECK(pdpte_reserved((1ull << 36) | 1, 36));
  CHECK(pdpte_reserved(~0ull, 40));           // all ones: what unbacked memory reads
}
