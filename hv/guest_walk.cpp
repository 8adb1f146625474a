// The guest page-table walker (see guest_walk.h). Entry formats and reserved bits follow the
// SDM's paging chapter (vol. 3A, ch. 4): 32-bit paging, PAE paging, 4- and 5-level paging.
#include "hv/guest_walk.h"

namespace hv {

namespace {

constexpr uint64_t kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pse = 1ull << 4;
constexpr uint64_t kCr4Pae = 1ull << 5;
constexpr uint64_t kCr4La57 = 1ull << 12;
constexpr uint64_t kEferLma = 1ull << 10;
constexpr uint64_t kEferNxe = 1ull << 11;
constexpr uint64_t kP = 1ull << 0;
constexpr uint64_t kPs = 1ull << 7;
constexpr uint64_t kXd = 1ull << 63;

WalkResult fail(WalkStatus s, int level) {
  WalkResult r;
  r.status = s;
  r.level = level;
  return r;
}

WalkResult done(uint64_t gpa, uint64_t page_size, int level) {
  WalkResult r;
  r.status = WalkStatus::ok;
  r.gpa = gpa;
  r.page_size = page_size;
  r.level = level;
  return r;
}

unsigned clamp_maxphyaddr(unsigned bits) { return bits < 32 ? 32 : bits > 52 ? 52 : bits; }

// Bits [maxphyaddr, 52): physical-address bits an entry may not use.
uint64_t high_reserved(unsigned maxphyaddr) {
  return ((uint64_t{1} << 52) - 1) & ~((uint64_t{1} << maxphyaddr) - 1);
}

// 32-bit paging: 4-byte entries, a 1024-entry directory, 4 MiB pages when CR4.PSE allows.
WalkResult walk32(const GuestPaging& p, uint32_t lin, GuestRead read, void* ctx) {
  uint64_t pde = 0;
  if (!read(ctx, (p.cr3 & 0xFFFFF000u) | ((lin >> 20) & 0xFFCu), 4, &pde)) return fail(WalkStatus::table_unbacked, 2);
  if (!(pde & kP)) return fail(WalkStatus::not_present, 2);
  if ((pde & kPs) && (p.cr4 & kCr4Pse)) {
    // PSE-36: bits 20:13 hold physical-address bits 39:32 (as many as MAXPHYADDR allows);
    // bit 21 is reserved.
    const unsigned maxphy = clamp_maxphyaddr(p.maxphyaddr);
    const unsigned high_bits = maxphy >= 40 ? 8 : maxphy - 32;
    const uint64_t high = (pde >> 13) & 0xFF;
    if ((high >> high_bits) != 0 || (pde & (1u << 21))) return fail(WalkStatus::reserved_bit, 2);
    return done((high << 32) | (pde & 0xFFC00000u) | (lin & 0x3FFFFFu), 4u << 20, 2);
  }
  uint64_t pte = 0;
  if (!read(ctx, (pde & 0xFFFFF000u) | ((lin >> 10) & 0xFFCu), 4, &pte)) return fail(WalkStatus::table_unbacked, 1);
  if (!(pte & kP)) return fail(WalkStatus::not_present, 1);
  return done((pte & 0xFFFFF000u) | (lin & 0xFFFu), 4096, 1);
}

// The 8-byte-entry levels shared by PAE and IA-32e paging, from `level` (the level of the
// table at `table`) down to the page.
WalkResult walk64(const GuestPaging& p, uint64_t table, int level, uint64_t lin, GuestRead read, void* ctx) {
  const unsigned maxphy = clamp_maxphyaddr(p.maxphyaddr);
  const uint64_t addr_mask = ((uint64_t{1} << maxphy) - 1) & ~uint64_t{0xFFF};
  uint64_t reserved = high_reserved(maxphy);
  if (!(p.efer & kEferNxe)) reserved |= kXd;
  const bool ia32e = (p.efer & kEferLma) != 0;
  for (; level >= 1; level--) {
    const unsigned shift = 12 + 9 * static_cast<unsigned>(level - 1);
    uint64_t e = 0;
    if (!read(ctx, (table & addr_mask) + ((lin >> shift) & 0x1FF) * 8, 8, &e)) return fail(WalkStatus::table_unbacked, level);
    if (!(e & kP)) return fail(WalkStatus::not_present, level);
    if (e & reserved) return fail(WalkStatus::reserved_bit, level);
    // PS means a page at levels 2 (2 MiB) and, in IA-32e paging, 3 (1 GiB); it is reserved in
    // a PML4E/PML5E; at level 1 bit 7 is PAT, not PS.
    if (level >= 2 && (e & kPs)) {
      if (level > 3 || (level == 3 && !ia32e)) return fail(WalkStatus::reserved_bit, level);
      const uint64_t size = uint64_t{1} << shift;
      // Bits 12 (PAT) .. shift-1 other than PAT must be zero: the page is size-aligned.
      if (e & (size - 1) & ~uint64_t{0x1FFF} & addr_mask) return fail(WalkStatus::reserved_bit, level);
      return done((e & addr_mask & ~(size - 1)) | (lin & (size - 1)), size, level);
    }
    table = e & addr_mask;
  }
  return done(table | (lin & 0xFFF), 4096, 1);
}

}  // namespace

const char* to_string(WalkStatus s) {
  switch (s) {
    case WalkStatus::ok: return "ok";
    case WalkStatus::not_present: return "not present";
    case WalkStatus::reserved_bit: return "reserved bit set";
    case WalkStatus::table_unbacked: return "page table outside guest RAM";
    case WalkStatus::non_canonical: return "non-canonical address";
  }
  return "?";
}

WalkResult guest_walk(const GuestPaging& p, uint64_t linear, GuestRead read, void* ctx) {
  if (!(p.cr0 & kCr0Pg)) return done(linear & 0xFFFFFFFFull, uint64_t{1} << 32, 0);
  if (!(p.cr4 & kCr4Pae)) return walk32(p, static_cast<uint32_t>(linear), read, ctx);
  const unsigned maxphy = clamp_maxphyaddr(p.maxphyaddr);
  if (!(p.efer & kEferLma)) {
    // PAE: linear addresses are 32 bits; the PDPTE comes from the CPU's cached copy when the
    // caller has it (guest_walk.h). PDPTEs have reserved bits 2:1 and 8:5, and no XD bit.
    const uint32_t lin = static_cast<uint32_t>(linear);
    const unsigned idx = lin >> 30;
    uint64_t pdpte = 0;
    if (p.pdptes_valid) {
      pdpte = p.pdpte[idx];
    } else if (!read(ctx, (p.cr3 & 0xFFFFFFE0u) + idx * 8, 8, &pdpte)) {
      return fail(WalkStatus::table_unbacked, 3);
    }
    if (!(pdpte & kP)) return fail(WalkStatus::not_present, 3);
    if (pdpte & (0x1E6u | high_reserved(maxphy) | kXd)) return fail(WalkStatus::reserved_bit, 3);
    return walk64(p, pdpte, 2, lin, read, ctx);
  }
  // IA-32e: 4 or 5 levels; the address must be canonical (bits 63:47, or 63:56, all equal).
  const int top = (p.cr4 & kCr4La57) ? 5 : 4;
  const unsigned va_bits = top == 5 ? 57 : 48;
  const uint64_t upper = linear >> (va_bits - 1);
  if (upper != 0 && upper != (~uint64_t{0} >> (va_bits - 1))) return fail(WalkStatus::non_canonical, top);
  return walk64(p, p.cr3, top, linear, read, ctx);
}

}  // namespace hv
