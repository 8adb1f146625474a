// The guest page-table walker (hv/guest_walk.h) that hv uses to find the instruction at RIP
// when the guest runs with paging on. Pure code, compiled into the host tests directly.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "hv/guest_walk.h"

using hv::guest_walk;
using hv::GuestPaging;
using hv::WalkResult;
using hv::WalkStatus;

namespace {

// Guest RAM [0, 1 MiB): the paging structures live here; pages may map anywhere.
struct GuestRam {
  std::vector<uint8_t> bytes = std::vector<uint8_t>(1u << 20);
  unsigned reads = 0;
  void put64(uint64_t gpa, uint64_t v) { std::memcpy(&bytes.at(gpa), &v, 8); }
  void put32(uint64_t gpa, uint32_t v) { std::memcpy(&bytes.at(gpa), &v, 4); }
  static bool read(void* ctx, uint64_t gpa, unsigned size, uint64_t* value) {
    auto* self = static_cast<GuestRam*>(ctx);
    self->reads++;
    REQUIRE(gpa % size == 0);
    if (gpa + size > self->bytes.size() || gpa + size < gpa) return false;
    uint64_t v = 0;
    std::memcpy(&v, &self->bytes[gpa], size);
    *value = v;
    return true;
  }
  WalkResult walk(const GuestPaging& p, uint64_t lin) { return guest_walk(p, lin, &GuestRam::read, this); }
};

constexpr uint64_t kPg = 1ull << 31, kPae = 1ull << 5, kPse = 1ull << 4, kLa57 = 1ull << 12;
constexpr uint64_t kLma = 1ull << 10, kLme = 1ull << 8, kNxe = 1ull << 11;
constexpr uint64_t kP = 1, kRw = 2, kPs = 0x80;

}  // namespace

TEST_CASE("guest_walk: paging off is the identity on 32 bits", "[guest_walk]") {
  GuestRam ram;
  GuestPaging p;
  const WalkResult r = ram.walk(p, 0x1'0010'2030ull);
  REQUIRE(r.status == WalkStatus::ok);
  REQUIRE(r.gpa == 0x0010'2030u);
  REQUIRE(r.level == 0);
  REQUIRE(ram.reads == 0);
}

TEST_CASE("guest_walk: 32-bit paging, 4 KiB and 4 MiB (PSE-36) pages", "[guest_walk]") {
  GuestRam ram;
  GuestPaging p;
  p.cr0 = kPg;
  p.cr3 = 0x1000;
  p.maxphyaddr = 40;
  ram.put32(0x1000 + 4 * 1, 0x2000 | kP | kRw);         // 4-8 MiB: a page table
  ram.put32(0x2000 + 4 * 3, 0xABCDE000u | kP);          // 0x403000 -> 0xABCDE000
  WalkResult r = ram.walk(p, 0x403123);
  REQUIRE(r.status == WalkStatus::ok);
  REQUIRE(r.gpa == 0xABCDE123u);
  REQUIRE(r.level == 1);
  // A 4 MiB page with physical bits 39:32 = 0x12: only with CR4.PSE.
  ram.put32(0x1000 + 4 * 2, 0x7FC00000u | (0x12u << 13) | kPs | kP);
  r = ram.walk(p, 0x00812345);
  // Without CR4.PSE, PS is ignored: the entry names a page table at 0x7FC24000, outside RAM.
  REQUIRE(r.status == WalkStatus::table_unbacked);
  p.cr4 = kPse;
  r = ram.walk(p, 0x00812345);
  REQUIRE(r.status == WalkStatus::ok);
  REQUIRE(r.gpa == 0x12'7FC1'2345ull);
  REQUIRE(r.page_size == 4u << 20);
  // With a 36-bit MAXPHYADDR, bit 0x10 of the high part is reserved.
  p.maxphyaddr = 36;
  REQUIRE(ram.walk(p, 0x00812345).status == WalkStatus::reserved_bit);
  REQUIRE(ram.walk(p, 0x00C00000).status == WalkStatus::not_present);
}

TEST_CASE("guest_walk: PAE with 2 MiB pages above 4 GiB, cached and in-memory PDPTEs", "[guest_walk]") {
  GuestRam ram;
  GuestPaging p;
  p.cr0 = kPg;
  p.cr4 = kPae;
  p.cr3 = 0x3000;
  p.maxphyaddr = 40;
  ram.put64(0x3000 + 8 * 3, 0x4000 | kP);                          // 3-4 GiB
  ram.put64(0x4000 + 8 * 5, (0x80'0000'0000ull - 0x200000) | kPs | kRw | kP);  // top 2 MiB below 2^39
  ram.put64(0x4000 + 8 * 6, 0x5000 | kP);
  ram.put64(0x5000 + 8 * 7, 0x1'2345'6000ull | kP);
  WalkResult r = ram.walk(p, 0xC0A0'0000u + 0x1234);
  REQUIRE(r.status == WalkStatus::ok);
  REQUIRE(r.gpa == 0x7F'FFE0'1234ull);
  REQUIRE(r.page_size == 2u << 20);
  r = ram.walk(p, 0xC0C0'7FFFu);
  REQUIRE(r.status == WalkStatus::ok);
  REQUIRE(r.gpa == 0x1'2345'6FFFull);
  // The CPU's cached PDPTEs win over memory.
  p.pdptes_valid = true;
  REQUIRE(ram.walk(p, 0xC0A0'0000u).status == WalkStatus::not_present);
  p.pdpte[3] = 0x4000 | kP;
  REQUIRE(ram.walk(p, 0xC0A0'0000u).status == WalkStatus::ok);
  // Reserved: PDPTE bits 2:1, address bits at or above MAXPHYADDR, XD without EFER.NXE.
  p.pdpte[3] = 0x4000 | kP | kRw;
  REQUIRE(ram.walk(p, 0xC0A0'0000u).status == WalkStatus::reserved_bit);
  p.pdpte[3] = 0x4000 | kP;
  ram.put64(0x4000 + 8 * 5, 0x100'0000'0000ull | kPs | kP);  // 2^40 with MAXPHYADDR 40
  REQUIRE(ram.walk(p, 0xC0A0'0000u).status == WalkStatus::reserved_bit);
  ram.put64(0x4000 + 8 * 5, 0x20'0000ull | kPs | kP | (1ull << 63));
  REQUIRE(ram.walk(p, 0xC0A0'0000u).status == WalkStatus::reserved_bit);
  p.efer = kNxe;
  REQUIRE(ram.walk(p, 0xC0A0'0000u).status == WalkStatus::ok);
  // A 2 MiB page must be 2 MiB aligned (bits 20:13 reserved).
  ram.put64(0x4000 + 8 * 5, 0x20'2000ull | kPs | kP);
  REQUIRE(ram.walk(p, 0xC0A0'0000u).status == WalkStatus::reserved_bit);
  // A page table outside guest RAM.
  ram.put64(0x4000 + 8 * 6, 0x4000'0000ull | kP);
  REQUIRE(ram.walk(p, 0xC0C0'0000u).status == WalkStatus::table_unbacked);
}

TEST_CASE("guest_walk: 4-level and 5-level long mode, 1 GiB pages, canonical addresses", "[guest_walk]") {
  GuestRam ram;
  GuestPaging p;
  p.cr0 = kPg;
  p.cr4 = kPae;
  p.efer = kLme | kLma | kNxe;
  p.cr3 = 0x6000 | 0x18;  // PWT/PCD bits in CR3 are not address bits
  p.maxphyaddr = 46;
  const uint64_t lin = 0xFFFF'8000'4020'1ABCull;  // PML4 256, PDPT 1, PD 1, PT 1
  ram.put64(0x6000 + 8 * 256, 0x7000 | kP);
  ram.put64(0x7000 + 8 * 1, 0x8000 | kP);
  ram.put64(0x8000 + 8 * 1, 0x9000 | kP);
  ram.put64(0x9000 + 8 * 1, 0x3F'0000'1000ull | kP | (1ull << 63));
  WalkResult r = ram.walk(p, lin);
  REQUIRE(r.status == WalkStatus::ok);
  REQUIRE(r.gpa == 0x3F'0000'1ABCull);
  REQUIRE(r.level == 1);
  // A 1 GiB page at PDPT entry 1.
  ram.put64(0x7000 + 8 * 1, 0x2'4000'0000ull | kPs | kP);
  r = ram.walk(p, lin);
  REQUIRE(r.status == WalkStatus::ok);
  REQUIRE(r.gpa == 0x2'4020'1ABCull);
  REQUIRE(r.page_size == 1ull << 30);
  // PS in a PML4E is reserved.
  ram.put64(0x6000 + 8 * 256, 0x7000 | kP | kPs);
  REQUIRE(ram.walk(p, lin).status == WalkStatus::reserved_bit);
  REQUIRE(ram.walk(p, 0x0000'8000'0000'0000ull).status == WalkStatus::non_canonical);
  REQUIRE(ram.walk(p, 0x0000'7FFF'FFFF'F000ull).status == WalkStatus::not_present);
  // 5-level: one more table on top; 0x0000'8000'0000'0000 is canonical there.
  p.cr4 |= kLa57;
  p.cr3 = 0xA000;
  ram.put64(0xA000 + 8 * 0, 0xB000 | kP);
  ram.put64(0xB000 + 8 * 256, 0x7000 | kP);
  ram.put64(0x7000 + 8 * 0, 0x8000 | kP);
  ram.put64(0x8000 + 8 * 0, 0x20'0000ull | kPs | kP);
  r = ram.walk(p, 0x0000'8000'0012'3456ull);
  REQUIRE(r.status == WalkStatus::ok);
  REQUIRE(r.gpa == 0x32'3456ull);
  REQUIRE(r.level == 2);
  REQUIRE(ram.walk(p, 0x0100'0000'0000'0000ull).status == WalkStatus::non_canonical);
}

TEST_CASE("guest_walk: a table beyond guest RAM or a cut-off walk is reported, not read", "[guest_walk]") {
  GuestRam ram;
  GuestPaging p;
  p.cr0 = kPg;
  p.cr3 = 0xFFFF'F000u;  // 32-bit paging, directory outside RAM
  REQUIRE(ram.walk(p, 0x1000).status == WalkStatus::table_unbacked);
  p.cr4 = kPae;
  p.cr3 = 0xFFFF'FFE0u;
  REQUIRE(ram.walk(p, 0x1000).status == WalkStatus::table_unbacked);
  p.efer = kLma;
  p.cr3 = 0x000F'F000u;
  REQUIRE(ram.walk(p, 0x1000).status == WalkStatus::not_present);  // zeroed RAM
}
