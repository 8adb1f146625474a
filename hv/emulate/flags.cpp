// Flag computation (see flags.h). The carry and overflow formulas work on the operands' top
// bit: for a sum r = a + b (+ carry in), the carry out of bit n-1 is the majority of a, b and
// the inverted result; overflow is set when a and b agree in sign and r does not. The
// subtraction forms are the same with b inverted (a borrow is an inverted carry).
#include "hv/emulate/flags.h"

namespace hv::emu {

namespace {

uint64_t parity_flag(uint64_t r) {
  uint8_t v = static_cast<uint8_t>(r);
  v ^= v >> 4;
  v ^= v >> 2;
  v ^= v >> 1;
  return (v & 1) ? 0 : rflags::kPf;  // PF: even number of set bits in the low byte
}

// ZF SF PF of a masked result.
uint64_t result_flags(uint64_t r, unsigned bytes) {
  const unsigned top = 8 * bytes - 1;
  uint64_t f = parity_flag(r);
  if (r == 0) f |= rflags::kZf;
  if ((r >> top) & 1) f |= rflags::kSf;
  return f;
}

uint64_t add_flags(uint64_t a, uint64_t b, uint64_t r, unsigned bytes) {
  const unsigned top = 8 * bytes - 1;
  uint64_t f = result_flags(r, bytes);
  if ((((a & b) | ((a | b) & ~r)) >> top) & 1) f |= rflags::kCf;
  if ((((a ^ r) & (b ^ r)) >> top) & 1) f |= rflags::kOf;
  if ((a ^ b ^ r) & 0x10) f |= rflags::kAf;
  return f;
}

uint64_t sub_flags(uint64_t a, uint64_t b, uint64_t r, unsigned bytes) {
  const unsigned top = 8 * bytes - 1;
  uint64_t f = result_flags(r, bytes);
  if ((((~a & b) | ((~a | b) & r)) >> top) & 1) f |= rflags::kCf;
  if ((((a ^ b) & (a ^ r)) >> top) & 1) f |= rflags::kOf;
  if ((a ^ b ^ r) & 0x10) f |= rflags::kAf;
  return f;
}

void set_flags(uint64_t* rflags_io, uint64_t which, uint64_t value) { *rflags_io = (*rflags_io & ~which) | (value & which); }

}  // namespace

uint64_t alu(Alu op, unsigned bytes, uint64_t a, uint64_t b, uint64_t* rf) {
  const uint64_t m = size_mask(bytes);
  a &= m;
  b &= m;
  const uint64_t carry_in = (*rf & rflags::kCf) ? 1 : 0;
  uint64_t r = 0, f = 0;
  switch (op) {
    case Alu::kAdd: r = (a + b) & m; f = add_flags(a, b, r, bytes); break;
    case Alu::kAdc: r = (a + b + carry_in) & m; f = add_flags(a, b, r, bytes); break;
    case Alu::kSub: case Alu::kCmp: r = (a - b) & m; f = sub_flags(a, b, r, bytes); break;
    case Alu::kSbb: r = (a - b - carry_in) & m; f = sub_flags(a, b, r, bytes); break;
    case Alu::kOr: r = a | b; f = result_flags(r, bytes); break;
    case Alu::kAnd: r = a & b; f = result_flags(r, bytes); break;
    case Alu::kXor: r = a ^ b; f = result_flags(r, bytes); break;
  }
  set_flags(rf, rflags::kArith, f);
  return r;
}

uint64_t inc_dec(bool dec, unsigned bytes, uint64_t a, uint64_t* rf) {
  const uint64_t m = size_mask(bytes);
  a &= m;
  const uint64_t r = (dec ? a - 1 : a + 1) & m;
  const uint64_t f = dec ? sub_flags(a, 1, r, bytes) : add_flags(a, 1, r, bytes);
  set_flags(rf, rflags::kArith & ~rflags::kCf, f);
  return r;
}

uint64_t neg(unsigned bytes, uint64_t a, uint64_t* rf) {
  const uint64_t m = size_mask(bytes);
  a &= m;
  const uint64_t r = (0 - a) & m;
  uint64_t f = sub_flags(0, a, r, bytes) & ~rflags::kCf;
  if (a) f |= rflags::kCf;
  set_flags(rf, rflags::kArith, f);
  return r;
}

}  // namespace hv::emu
