// The emulator's decoder (see decode.h). Encodings: SDM volume 2, chapter 2 (prefixes, REX,
// ModR/M and SIB in 16/32/64-bit addressing, RIP-relative addressing) and the pages of each
// instruction; the opcode map is appendix A.
#include "hv/emulate/decode.h"

namespace hv::emu {

namespace {

constexpr unsigned kMaxLength = 15;

// Reads the instruction byte by byte with the 15-byte limit and the end of what was fetched.
struct Cursor {
  const uint8_t* b;
  unsigned avail;
  unsigned i = 0;
  // Status when `n` more bytes are wanted: ok, or why they are not there.
  DecodeStatus need(unsigned n) const {
    if (i + n > kMaxLength) return DecodeStatus::too_long;
    if (i + n > avail) return DecodeStatus::truncated;
    return DecodeStatus::ok;
  }
  uint64_t take(unsigned n) {  // little-endian, n <= 8, need(n) checked
    uint64_t v = 0;
    for (unsigned k = 0; k < n; k++) v |= static_cast<uint64_t>(b[i + k]) << (8 * k);
    i += n;
    return v;
  }
};

int64_t sign_extend(uint64_t v, unsigned bytes) {
  const unsigned shift = 64 - 8 * bytes;
  return static_cast<int64_t>(v << shift) >> shift;
}

uint64_t mask_of(unsigned bytes) { return bytes >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * bytes)) - 1; }

// ModR/M, SIB and displacement. Sets the memory operand and Insn::reg.
DecodeStatus parse_modrm(Cursor& c, Mode mode, Insn& d) {
  if (DecodeStatus s = c.need(1); s != DecodeStatus::ok) return s;
  const uint8_t m = static_cast<uint8_t>(c.take(1));
  const unsigned mod = m >> 6, rm = m & 7;
  const bool rex_r = d.rex & 4, rex_x = d.rex & 2, rex_b = d.rex & 1;
  d.reg = static_cast<uint8_t>(((m >> 3) & 7) | (rex_r ? 8 : 0));
  if (mod == 3) return DecodeStatus::no_memory;
  unsigned disp_bytes = 0;
  if (d.addrsize == 2) {
    // 16-bit addressing (SDM table 2-1): BX+SI, BX+DI, BP+SI, BP+DI, SI, DI, BP (disp16 with
    // mod 0), BX. BP-based forms default to SS.
    static constexpr int8_t kBase[8] = {3, 3, 5, 5, 6, 7, 5, 3};
    static constexpr int8_t kIndex[8] = {6, 7, 6, 7, -1, -1, -1, -1};
    if (mod == 0 && rm == 6) {
      disp_bytes = 2;
    } else {
      d.base = kBase[rm];
      d.index = kIndex[rm];
      if (d.base == 5) d.default_seg = kSs;
      disp_bytes = mod == 1 ? 1 : mod == 2 ? 2 : 0;
    }
  } else {
    unsigned base_low = rm;
    if (rm == 4) {  // SIB
      if (DecodeStatus s = c.need(1); s != DecodeStatus::ok) return s;
      const uint8_t sib = static_cast<uint8_t>(c.take(1));
      d.scale = static_cast<uint8_t>(1u << (sib >> 6));
      const unsigned idx = ((sib >> 3) & 7) | (rex_x ? 8 : 0);
      if (idx != 4) d.index = static_cast<int8_t>(idx);  // 4 without REX.X: no index (R12 is one)
      base_low = sib & 7;
      if (base_low == 5 && mod == 0) {
        disp_bytes = 4;  // disp32, no base
      } else {
        d.base = static_cast<int8_t>(base_low | (rex_b ? 8 : 0));
      }
    } else if (rm == 5 && mod == 0) {
      disp_bytes = 4;
      d.rip_relative = mode == Mode::k64;  // 32-bit code: an absolute disp32
    } else {
      d.base = static_cast<int8_t>(rm | (rex_b ? 8 : 0));
    }
    if (d.base >= 0 && (base_low == 4 || base_low == 5)) d.default_seg = kSs;  // rSP/rBP based
    if (mod == 1) disp_bytes = 1;
    else if (mod == 2) disp_bytes = 4;
  }
  if (disp_bytes) {
    if (DecodeStatus s = c.need(disp_bytes); s != DecodeStatus::ok) return s;
    d.disp = sign_extend(c.take(disp_bytes), disp_bytes);
  }
  return DecodeStatus::ok;
}

// An immediate of `bytes` bytes, sign-extended to the operation size (imm8 of 83, imm32 of
// 64-bit operations) and masked to it.
DecodeStatus parse_imm(Cursor& c, unsigned bytes, Insn& d) {
  if (DecodeStatus s = c.need(bytes); s != DecodeStatus::ok) return s;
  d.imm = static_cast<uint64_t>(sign_extend(c.take(bytes), bytes)) & mask_of(d.opsize);
  d.has_imm = true;
  return DecodeStatus::ok;
}

bool lockable(const Insn& d) {
  switch (d.op) {
    case Op::kAdd: case Op::kOr: case Op::kAdc: case Op::kSbb: case Op::kAnd: case Op::kSub: case Op::kXor:
      return d.form == Form::kMemReg || d.form == Form::kMemImm;  // memory destination only
    case Op::kNot: case Op::kNeg: case Op::kInc: case Op::kDec: case Op::kXchg:
    case Op::kBts: case Op::kBtr: case Op::kBtc: case Op::kCmpxchg: case Op::kXadd:
      return true;
    default:
      return false;
  }
}

}  // namespace

const char* to_string(DecodeStatus s) {
  switch (s) {
    case DecodeStatus::ok: return "ok";
    case DecodeStatus::truncated: return "instruction cut short";
    case DecodeStatus::too_long: return "longer than 15 bytes";
    case DecodeStatus::unknown: return "unknown opcode";
    case DecodeStatus::no_memory: return "no memory operand";
    case DecodeStatus::invalid_lock: return "LOCK not allowed";
    case DecodeStatus::invalid: return "invalid in this mode";
  }
  return "?";
}

void format_bytes(const uint8_t* bytes, unsigned avail, char* out, unsigned out_size) {
  static constexpr char kHex[] = "0123456789abcdef";
  unsigned o = 0;
  if (out_size == 0) return;
  for (unsigned k = 0; k < avail && k < kMaxLength && o + 4 <= out_size; k++) {
    if (k) out[o++] = ' ';
    out[o++] = kHex[bytes[k] >> 4];
    out[o++] = kHex[bytes[k] & 15];
  }
  out[o < out_size ? o : out_size - 1] = 0;
}

DecodeStatus decode(const uint8_t* bytes, unsigned avail, Mode mode, Insn* out) {
  Insn d;
  Cursor c{bytes, avail};
  bool opsize_prefix = false, addr_prefix = false;
  // Legacy prefixes in any order, then (64-bit mode) REX right before the opcode. A legacy
  // prefix after a REX makes the CPU ignore that REX.
  for (;;) {
    if (DecodeStatus s = c.need(1); s != DecodeStatus::ok) return s;
    const uint8_t p = bytes[c.i];
    bool legacy = true;
    switch (p) {
      case 0x66: opsize_prefix = true; break;
      case 0x67: addr_prefix = true; break;
      case 0xF0: d.lock = true; break;
      case 0xF2: case 0xF3: d.rep = p; break;
      case 0x26: case 0x2E: case 0x36: case 0x3E:
        // ES CS SS DS overrides: ignored in 64-bit mode (every base is 0 there).
        if (mode != Mode::k64) d.seg = static_cast<uint8_t>((p >> 3) & 3);
        break;
      case 0x64: d.seg = kFs; break;
      case 0x65: d.seg = kGs; break;
      default: legacy = false;
    }
    if (legacy) {
      d.rex = 0;
      c.i++;
      continue;
    }
    if (mode == Mode::k64 && (p & 0xF0) == 0x40) {
      d.rex = p;
      c.i++;
      continue;
    }
    break;
  }
  const bool rex_w = d.rex & 8;
  const uint8_t wide = mode == Mode::k64 ? (rex_w ? 8 : opsize_prefix ? 2 : 4)
                       : mode == Mode::k32 ? (opsize_prefix ? 2 : 4)
                                           : (opsize_prefix ? 4 : 2);
  d.addrsize = mode == Mode::k64 ? (addr_prefix ? 4 : 8) : mode == Mode::k32 ? (addr_prefix ? 2 : 4) : (addr_prefix ? 4 : 2);

  if (DecodeStatus s = c.need(1); s != DecodeStatus::ok) return s;
  uint8_t op = static_cast<uint8_t>(c.take(1));
  if (op == 0x0F) {
    if (DecodeStatus s = c.need(1); s != DecodeStatus::ok) return s;
    op = static_cast<uint8_t>(c.take(1));
    d.two_byte = true;
  }
  d.opcode = op;
  const uint8_t size_w = (op & 1) ? wide : 1;  // the usual byte/full-size pair of an opcode
  bool modrm = true;
  unsigned imm_bytes = 0;

  if (!d.two_byte) {
    if (op < 0x40 && (op & 7) <= 3) {
      // 00-3F: ADD OR ADC SBB AND SUB XOR CMP, r/m,r and r,r/m forms (bit 1: direction).
      d.op = static_cast<Op>(static_cast<unsigned>(Op::kAdd) + (op >> 3));
      d.form = (op & 2) ? Form::kRegMem : Form::kMemReg;
      d.opsize = size_w;
    } else {
      switch (op) {
        case 0x63:
          if (mode != Mode::k64) return DecodeStatus::unknown;  // ARPL outside 64-bit mode
          d.op = Op::kMovsx;  // MOVSXD; without REX.W a plain 16/32-bit load
          d.form = Form::kRegMem;
          d.opsize = wide;
          d.memsize = wide == 8 ? 4 : wide;
          break;
        case 0x80: case 0x81: case 0x83:
          d.form = Form::kMemImm;
          d.opsize = op == 0x80 ? 1 : wide;
          imm_bytes = op == 0x81 ? (wide == 2 ? 2 : 4) : 1;
          break;  // the operation comes from ModR/M reg below
        case 0x84: case 0x85: d.op = Op::kTest; d.form = Form::kMemReg; d.opsize = size_w; break;
        case 0x86: case 0x87: d.op = Op::kXchg; d.form = Form::kMemReg; d.opsize = size_w; break;
        case 0x88: case 0x89: d.op = Op::kMov; d.form = Form::kMemReg; d.opsize = size_w; break;
        case 0x8A: case 0x8B: d.op = Op::kMov; d.form = Form::kRegMem; d.opsize = size_w; break;
        case 0xA0: case 0xA1: case 0xA2: case 0xA3:
          d.op = Op::kMov;
          d.form = op <= 0xA1 ? Form::kRegMem : Form::kMemReg;
          d.opsize = size_w;
          d.reg = 0;
          modrm = false;
          if (DecodeStatus s = c.need(d.addrsize); s != DecodeStatus::ok) return s;
          d.disp = static_cast<int64_t>(c.take(d.addrsize));  // moffs: zero-extended, address-size wide
          break;
        case 0xA4: case 0xA5: d.op = Op::kMovs; d.form = Form::kString; d.opsize = size_w; modrm = false; break;
        case 0xAA: case 0xAB: d.op = Op::kStos; d.form = Form::kString; d.opsize = size_w; modrm = false; break;
        case 0xAC: case 0xAD: d.op = Op::kLods; d.form = Form::kString; d.opsize = size_w; modrm = false; break;
        case 0xC6: case 0xC7:
          d.op = Op::kMov;
          d.form = Form::kMemImm;
          d.opsize = size_w;
          imm_bytes = size_w == 1 ? 1 : size_w == 2 ? 2 : 4;
          break;
        case 0xF6: case 0xF7: d.opsize = size_w; break;  // group 3, by ModR/M reg below
        case 0xFE: case 0xFF: d.opsize = size_w; break;  // group 4/5
        default: return DecodeStatus::unknown;
      }
    }
  } else {
    switch (op) {
      case 0xA3: d.op = Op::kBt; d.form = Form::kMemReg; d.opsize = wide; break;
      case 0xAB: d.op = Op::kBts; d.form = Form::kMemReg; d.opsize = wide; break;
      case 0xB3: d.op = Op::kBtr; d.form = Form::kMemReg; d.opsize = wide; break;
      case 0xBB: d.op = Op::kBtc; d.form = Form::kMemReg; d.opsize = wide; break;
      case 0xBA: d.form = Form::kMemImm; d.opsize = wide; imm_bytes = 1; break;  // group 8 below
      case 0xB0: case 0xB1: d.op = Op::kCmpxchg; d.form = Form::kMemReg; d.opsize = size_w; break;
      case 0xC0: case 0xC1: d.op = Op::kXadd; d.form = Form::kMemReg; d.opsize = size_w; break;
      case 0xB6: case 0xB7: case 0xBE: case 0xBF:
        d.op = op >= 0xBE ? Op::kMovsx : Op::kMovzx;
        d.form = Form::kRegMem;
        d.opsize = wide;
        d.memsize = (op & 1) ? 2 : 1;
        break;
      default: return DecodeStatus::unknown;
    }
  }
  if (d.op != Op::kMovsx && d.op != Op::kMovzx) d.memsize = d.opsize;

  if (modrm) {
    const DecodeStatus s = parse_modrm(c, mode, d);
    // A group's member decides whether the opcode is known at all; report "unknown" before
    // "no memory operand" for the groups (their register field is the operation).
    if (s != DecodeStatus::ok && s != DecodeStatus::no_memory) return s;
    const unsigned sub = d.reg & 7;
    if (!d.two_byte) {
      switch (op) {
        case 0x80: case 0x81: case 0x83:
          d.op = static_cast<Op>(static_cast<unsigned>(Op::kAdd) + sub);
          break;
        case 0xC6: case 0xC7:
          if (sub != 0) return DecodeStatus::unknown;
          break;
        case 0xF6: case 0xF7: {
          static constexpr Op kGroup3[4] = {Op::kTest, Op::kTest, Op::kNot, Op::kNeg};
          if (sub == 1 || sub > 3) return DecodeStatus::unknown;  // /1 undocumented; MUL IMUL DIV IDIV
          d.op = kGroup3[sub];
          if (sub == 0) {
            d.form = Form::kMemImm;
            imm_bytes = d.opsize == 1 ? 1 : d.opsize == 2 ? 2 : 4;
          } else {
            d.form = Form::kMem;
          }
          break;
        }
        case 0xFE: case 0xFF:
          if (sub > 1) return DecodeStatus::unknown;  // CALL JMP PUSH (FF) are not emulated
          d.op = sub == 0 ? Op::kInc : Op::kDec;
          d.form = Form::kMem;
          break;
        default: break;
      }
    } else if (op == 0xBA) {
      static constexpr Op kGroup8[4] = {Op::kBt, Op::kBts, Op::kBtr, Op::kBtc};
      if (sub < 4) return DecodeStatus::unknown;
      d.op = kGroup8[sub - 4];
    }
    if (s == DecodeStatus::no_memory) return s;
  }
  if (imm_bytes) {
    if (DecodeStatus s = parse_imm(c, imm_bytes, d); s != DecodeStatus::ok) return s;
  }
  if (d.lock && !lockable(d)) return DecodeStatus::invalid_lock;
  d.length = static_cast<uint8_t>(c.i);
  *out = d;
  return DecodeStatus::ok;
}

}  // namespace hv::emu
