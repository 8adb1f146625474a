// The MOV decoder (see insn_decode.h). Encodings from the SDM, volume 2, chapter 2
// (ModR/M and SIB, 32-bit addressing) and the MOV/MOVZX opcode pages.
#include "hv/insn_decode.h"

namespace hv {

namespace {

// Length of ModR/M + SIB + displacement for 32-bit addressing, starting at the ModR/M byte.
// 0 when the operand is a register (mod = 3: not a memory access) or the bytes run out.
unsigned modrm_length(const uint8_t* p, unsigned avail) {
  if (avail < 1) return 0;
  const unsigned mod = p[0] >> 6, rm = p[0] & 7;
  if (mod == 3) return 0;
  unsigned len = 1;
  unsigned base = rm;
  if (rm == 4) {  // SIB follows
    if (avail < 2) return 0;
    base = p[1] & 7;
    len++;
  }
  if (mod == 1) len += 1;
  else if (mod == 2) len += 4;
  else if (base == 5) len += 4;  // mod 0: disp32 instead of EBP (or instead of the SIB base)
  return len <= avail ? len : 0;
}

}  // namespace

bool decode_mov32(const uint8_t* b, unsigned avail, MemInsn* out) {
  MemInsn m;
  unsigned i = 0;
  bool opsize16 = false;
  for (; i < avail && i < 4; i++) {
    const uint8_t p = b[i];
    if (p == 0x66) opsize16 = true;
    else if (p == 0x26 || p == 0x2E || p == 0x36 || p == 0x3E || p == 0x64 || p == 0x65) continue;
    else break;
  }
  if (i >= avail) return false;
  const uint8_t op = b[i++];
  const unsigned wide = opsize16 ? 2 : 4;
  unsigned ml = 0;
  switch (op) {
    case 0x88: case 0x89: case 0x8A: case 0x8B: {
      ml = modrm_length(b + i, avail - i);
      if (!ml) return false;
      m.reg = (b[i] >> 3) & 7;
      m.size = (op & 1) ? wide : 1;
      m.store = op <= 0x89;
      if (m.size == 1 && m.reg >= 4) {
        m.high8 = true;
        m.reg -= 4;
      }
      m.dest_size = m.size;
      i += ml;
      break;
    }
    case 0xC6: case 0xC7: {
      ml = modrm_length(b + i, avail - i);
      if (!ml || ((b[i] >> 3) & 7) != 0) return false;
      i += ml;
      m.size = op == 0xC6 ? 1 : wide;
      if (i + m.size > avail) return false;
      m.imm = 0;
      for (unsigned k = 0; k < m.size; k++) m.imm |= static_cast<uint32_t>(b[i + k]) << (8 * k);
      i += m.size;
      m.store = true;
      m.has_imm = true;
      break;
    }
    case 0xA0: case 0xA1: case 0xA2: case 0xA3:
      if (i + 4 > avail) return false;
      i += 4;  // moffs32
      m.reg = 0;
      m.size = (op & 1) ? wide : 1;
      m.dest_size = m.size;
      m.store = op >= 0xA2;
      break;
    case 0x0F: {
      if (i >= avail || (b[i] != 0xB6 && b[i] != 0xB7)) return false;
      const uint8_t op2 = b[i++];
      ml = modrm_length(b + i, avail - i);
      if (!ml) return false;
      m.reg = (b[i] >> 3) & 7;
      m.size = op2 == 0xB6 ? 1 : 2;
      m.dest_size = static_cast<uint8_t>(wide);
      i += ml;
      break;
    }
    default: return false;
  }
  if (i > 15) return false;
  m.length = static_cast<uint8_t>(i);
  *out = m;
  return true;
}

uint64_t all_ones_load(const MemInsn& m, uint64_t old) {
  const uint64_t ones = m.size == 4 ? 0xFFFFFFFFull : m.size == 2 ? 0xFFFFull : 0xFFull;
  const unsigned shift = m.high8 ? 8 : 0;
  const uint64_t mask = m.dest_size == 4 ? ~uint64_t{0} : m.dest_size == 2 ? 0xFFFFull : 0xFFull << shift;
  return (old & ~mask) | (ones << shift);
}

}  // namespace hv
