// Linear-address translation for the emulator (see translate.h).
#include "hv/emulate/translate.h"

namespace hv::emu {

namespace {
constexpr uint64_t kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pae = 1ull << 5;
constexpr uint64_t kCr4Smep = 1ull << 20;
constexpr uint64_t kEferNxe = 1ull << 11;
}  // namespace

uint32_t page_fault_error(const GuestPaging& p, WalkStatus s, AccessKind kind, unsigned cpl) {
  uint32_t e = 0;
  if (s == WalkStatus::reserved_bit) e |= pferr::kPresent | pferr::kReserved;
  if (kind == AccessKind::write) e |= pferr::kWrite;
  if (cpl == 3) e |= pferr::kUser;
  const bool paging = (p.cr0 & kCr0Pg) != 0;
  const bool nx = paging && (p.cr4 & kCr4Pae) && (p.efer & kEferNxe);
  if (kind == AccessKind::fetch && (nx || (paging && (p.cr4 & kCr4Smep)))) e |= pferr::kFetch;
  return e;
}

GuestAccess::Translation translate_linear(const GuestPaging& p, GuestRead read, void* ctx, const TranslateHint& hint,
                                          uint64_t linear, AccessKind kind, unsigned cpl) {
  GuestAccess::Translation t;
  if (hint.valid && (hint.linear >> 12) == (linear >> 12)) {
    t.gpa = (hint.gpa & ~uint64_t{0xFFF}) | (linear & 0xFFF);
    return t;
  }
  const WalkResult w = guest_walk(p, linear, read, ctx);
  switch (w.status) {
    case WalkStatus::ok:
      t.gpa = w.gpa;
      return t;
    case WalkStatus::not_present:
    case WalkStatus::reserved_bit:
      t.fault.kind = Fault::Kind::page_fault;
      t.fault.vector = 14;
      t.fault.has_error = true;
      t.fault.error_code = page_fault_error(p, w.status, kind, cpl);
      t.fault.linear = linear;
      return t;
    case WalkStatus::non_canonical:
      t.fault.kind = Fault::Kind::exception;
      t.fault.vector = 13;
      t.fault.has_error = true;
      t.fault.error_code = 0;
      t.fault.linear = linear;
      return t;
    case WalkStatus::table_unbacked:
      break;
  }
  t.fault.kind = Fault::Kind::stop;
  t.fault.linear = linear;
  t.fault.why = "a guest page table lies outside guest RAM";
  return t;
}

}  // namespace hv::emu
