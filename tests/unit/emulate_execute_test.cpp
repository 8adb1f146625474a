// The emulator's execution (hv/emulate/execute.h) against the host CPU: every arithmetic,
// logic and read-modify-write instruction it knows runs natively here (inline assembly on a
// host buffer, RFLAGS set before with POPF and read after with PUSHF) and in the emulator on a
// fake guest with the same operands; memory, register and flags must agree. The host CPU is an
// independent implementation of the same instructions, so a wrong flag formula shows up here.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>

#include "emulate_fake_guest.h"
#include "hv/emulate/execute.h"
#include "hv/emulate/flags.h"

using emu_test::FakeGuest;
using hv::emu::CpuState;
using hv::emu::Mode;
using hv::emu::Regs;
using hv::emu::Result;
namespace rf = hv::emu::rflags;

namespace {

// A native run: *mem is the memory operand, *reg the register operand, *flags RFLAGS in/out.
using Native = void (*)(uint64_t* mem, uint64_t* reg, uint64_t* flags);

// PUSHF/POPF below RSP: step over the red zone first (the compiler may keep locals there).
#define NATIVE(name, text, sfx)                                                                      \
  void name(uint64_t* mem, uint64_t* reg, uint64_t* flags) {                                       \
    uint64_t f = *flags, r = *reg;                                                                  \
    asm volatile("sub $128, %%rsp\n\tpushq %[f]\n\tpopfq\n\t" text "\n\tpushfq\n\tpopq %[f]\n\tadd $128, %%rsp" \
                 : [f] "+r"(f), [r] "+r"(r)                                                         \
                 : [m] "r"(mem)                                                                     \
                 : "memory", "cc");                                                                 \
    *flags = f;                                                                                      \
    *reg = r;                                                                                        \
  }

// Memory-destination forms "op [m], r" in four sizes.
#define MEMREG4(op)                                   \
  NATIVE(op##_mr_b, #op "b %b[r], (%[m])", b)         \
  NATIVE(op##_mr_w, #op "w %w[r], (%[m])", w)         \
  NATIVE(op##_mr_l, #op "l %k[r], (%[m])", l)         \
  NATIVE(op##_mr_q, #op "q %q[r], (%[m])", q)
// Register-destination forms "op r, [m]".
#define REGMEM4(op)                                   \
  NATIVE(op##_rm_b, #op "b (%[m]), %b[r]", b)         \
  NATIVE(op##_rm_w, #op "w (%[m]), %w[r]", w)         \
  NATIVE(op##_rm_l, #op "l (%[m]), %k[r]", l)         \
  NATIVE(op##_rm_q, #op "q (%[m]), %q[r]", q)
// Unary "op [m]".
#define MEM4(op)                                      \
  NATIVE(op##_m_b, #op "b (%[m])", b)                 \
  NATIVE(op##_m_w, #op "w (%[m])", w)                 \
  NATIVE(op##_m_l, #op "l (%[m])", l)                 \
  NATIVE(op##_m_q, #op "q (%[m])", q)

MEMREG4(add) MEMREG4(or) MEMREG4(adc) MEMREG4(sbb) MEMREG4(and) MEMREG4(sub) MEMREG4(xor) MEMREG4(cmp)
MEMREG4(test) MEMREG4(xchg) MEMREG4(xadd)
REGMEM4(add) REGMEM4(or) REGMEM4(adc) REGMEM4(sbb) REGMEM4(and) REGMEM4(sub) REGMEM4(xor) REGMEM4(cmp)
MEM4(not) MEM4(neg) MEM4(inc) MEM4(dec)
// BT family (no byte form): register bit offset taken from *reg.
NATIVE(bt_mr_w, "btw %w[r], (%[m])", w) NATIVE(bt_mr_l, "btl %k[r], (%[m])", l) NATIVE(bt_mr_q, "btq %q[r], (%[m])", q)
NATIVE(bts_mr_w, "btsw %w[r], (%[m])", w) NATIVE(bts_mr_l, "btsl %k[r], (%[m])", l) NATIVE(bts_mr_q, "btsq %q[r], (%[m])", q)
NATIVE(btr_mr_w, "btrw %w[r], (%[m])", w) NATIVE(btr_mr_l, "btrl %k[r], (%[m])", l) NATIVE(btr_mr_q, "btrq %q[r], (%[m])", q)
NATIVE(btc_mr_w, "btcw %w[r], (%[m])", w) NATIVE(btc_mr_l, "btcl %k[r], (%[m])", l) NATIVE(btc_mr_q, "btcq %q[r], (%[m])", q)

// CMPXCHG needs the accumulator: *reg is the source, flags' companion `acc` is RAX.
void cmpxchg_native(unsigned size, uint64_t* mem, uint64_t* src, uint64_t* acc, uint64_t* flags) {
  uint64_t f = *flags, s = *src, a = *acc;
#define CX(sfx, reg)                                                                                        \
  asm volatile("sub $128, %%rsp\n\tpushq %[f]\n\tpopfq\n\tcmpxchg" sfx " %" reg "[s], (%[m])\n\tpushfq\n\tpopq %[f]\n\tadd $128, %%rsp" \
               : [f] "+r"(f), "+a"(a)                                                                       \
               : [m] "r"(mem), [s] "r"(s)                                                                   \
               : "memory", "cc")
  switch (size) {
    case 1: CX("b", "b"); break;
    case 2: CX("w", "w"); break;
    case 4: CX("l", "k"); break;
    default: CX("q", "q"); break;
  }
#undef CX
  *flags = f;
  *acc = a;
}

constexpr uint64_t kMemGpa = 0x3000;

// Emulates `bytes` (64-bit code, memory operand [rdi], register operand rax/rcx as the
// encoding says) on a fake guest. Returns the emulator's result.
Result run64(const std::vector<uint8_t>& bytes, Regs& r, FakeGuest& g) {
  g.put(0x1000, bytes);
  r.rip = 0x1000;
  CpuState cpu;
  cpu.mode = Mode::k64;
  return hv::emu::emulate(cpu, r, g);
}

// The encoding prefix for a size: 66 for 16-bit, REX.W for 64-bit.
std::vector<uint8_t> sized(unsigned size, std::vector<uint8_t> rest) {
  std::vector<uint8_t> v;
  if (size == 2) v.push_back(0x66);
  if (size == 8) v.push_back(0x48);
  v.insert(v.end(), rest.begin(), rest.end());
  return v;
}

const uint64_t kValues[] = {0,
                            1,
                            2,
                            0x7F,
                            0x80,
                            0xFF,
                            0x7FFF,
                            0x8000,
                            0xFFFF,
                            0x7FFFFFFF,
                            0x80000000,
                            0xFFFFFFFF,
                            0x7FFFFFFFFFFFFFFFull,
                            0x8000000000000000ull,
                            0xFFFFFFFFFFFFFFFFull,
                            0x0F0F0F0F0F0F0F0Full,
                            0x123456789ABCDEF0ull,
                            0xFEDCBA9876543210ull};


struct Case {
  const char* name;
  uint8_t opcode;          // one-byte opcode (byte form; +1 for the full-size form) or 0F xx
  bool two_byte;
  uint8_t modrm_reg;       // ModR/M reg field for groups, else the register operand (0 = rax)
  Native native[4];        // sizes 1, 2, 4, 8 (nullptr: no such size)
  uint64_t flag_mask;      // flags defined by the instruction
  bool writes_reg;         // the register operand changes (xchg, xadd, reg-destination forms)
};

constexpr uint64_t kLogicFlags = rf::kCf | rf::kPf | rf::kZf | rf::kSf | rf::kOf;  // AF undefined

const Case kCases[] = {
    {"add [m],r", 0x00, false, 0, {add_mr_b, add_mr_w, add_mr_l, add_mr_q}, rf::kArith, false},
    {"or [m],r", 0x08, false, 0, {or_mr_b, or_mr_w, or_mr_l, or_mr_q}, kLogicFlags, false},
    {"adc [m],r", 0x10, false, 0, {adc_mr_b, adc_mr_w, adc_mr_l, adc_mr_q}, rf::kArith, false},
    {"sbb [m],r", 0x18, false, 0, {sbb_mr_b, sbb_mr_w, sbb_mr_l, sbb_mr_q}, rf::kArith, false},
    {"and [m],r", 0x20, false, 0, {and_mr_b, and_mr_w, and_mr_l, and_mr_q}, kLogicFlags, false},
    {"sub [m],r", 0x28, false, 0, {sub_mr_b, sub_mr_w, sub_mr_l, sub_mr_q}, rf::kArith, false},
    {"xor [m],r", 0x30, false, 0, {xor_mr_b, xor_mr_w, xor_mr_l, xor_mr_q}, kLogicFlags, false},
    {"cmp [m],r", 0x38, false, 0, {cmp_mr_b, cmp_mr_w, cmp_mr_l, cmp_mr_q}, rf::kArith, false},
    {"add r,[m]", 0x02, false, 0, {add_rm_b, add_rm_w, add_rm_l, add_rm_q}, rf::kArith, true},
    {"or r,[m]", 0x0A, false, 0, {or_rm_b, or_rm_w, or_rm_l, or_rm_q}, kLogicFlags, true},
    {"adc r,[m]", 0x12, false, 0, {adc_rm_b, adc_rm_w, adc_rm_l, adc_rm_q}, rf::kArith, true},
    {"sbb r,[m]", 0x1A, false, 0, {sbb_rm_b, sbb_rm_w, sbb_rm_l, sbb_rm_q}, rf::kArith, true},
    {"and r,[m]", 0x22, false, 0, {and_rm_b, and_rm_w, and_rm_l, and_rm_q}, kLogicFlags, true},
    {"sub r,[m]", 0x2A, false, 0, {sub_rm_b, sub_rm_w, sub_rm_l, sub_rm_q}, rf::kArith, true},
    {"xor r,[m]", 0x32, false, 0, {xor_rm_b, xor_rm_w, xor_rm_l, xor_rm_q}, kLogicFlags, true},
    {"cmp r,[m]", 0x3A, false, 0, {cmp_rm_b, cmp_rm_w, cmp_rm_l, cmp_rm_q}, rf::kArith, true},
    {"test [m],r", 0x84, false, 0, {test_mr_b, test_mr_w, test_mr_l, test_mr_q}, kLogicFlags, false},
    {"xchg [m],r", 0x86, false, 0, {xchg_mr_b, xchg_mr_w, xchg_mr_l, xchg_mr_q}, 0, true},
    {"not [m]", 0xF6, false, 2, {not_m_b, not_m_w, not_m_l, not_m_q}, 0, false},
    {"neg [m]", 0xF6, false, 3, {neg_m_b, neg_m_w, neg_m_l, neg_m_q}, rf::kArith, false},
    {"inc [m]", 0xFE, false, 0, {inc_m_b, inc_m_w, inc_m_l, inc_m_q}, rf::kArith, false},
    {"dec [m]", 0xFE, false, 1, {dec_m_b, dec_m_w, dec_m_l, dec_m_q}, rf::kArith, false},
    {"xadd [m],r", 0xC0, true, 0, {xadd_mr_b, xadd_mr_w, xadd_mr_l, xadd_mr_q}, rf::kArith, true},
    {"bt [m],r", 0xA3, true, 0, {nullptr, bt_mr_w, bt_mr_l, bt_mr_q}, rf::kCf, false},
    {"bts [m],r", 0xAB, true, 0, {nullptr, bts_mr_w, bts_mr_l, bts_mr_q}, rf::kCf, false},
    {"btr [m],r", 0xB3, true, 0, {nullptr, btr_mr_w, btr_mr_l, btr_mr_q}, rf::kCf, false},
    {"btc [m],r", 0xBB, true, 0, {nullptr, btc_mr_w, btc_mr_l, btc_mr_q}, rf::kCf, false},
};

}  // namespace

TEST_CASE("emulate execute: ALU, unary, XCHG, XADD and BT forms agree with the host CPU", "[emulate]") {
  std::mt19937_64 rng(0xE3A1);
  const unsigned sizes[4] = {1, 2, 4, 8};
  unsigned compared = 0;
  for (const Case& c : kCases) {
    for (unsigned si = 0; si < 4; si++) {
      if (!c.native[si]) continue;
      const unsigned size = sizes[si];
      for (uint64_t a : kValues) {
        for (uint64_t b : kValues) {
          for (uint64_t cf : {uint64_t{0}, rf::kCf}) {
            // BT with a register offset may address other units: keep the offset within
            // the buffer (+-2 units) to compare memory simply.
            uint64_t breg = b;
            const bool bt = c.two_byte && c.opcode != 0xC0;
            if (bt) breg = (b % (8 * size * 3)) - 8 * size;  // -width .. 2*width-1
            uint64_t buf[4] = {rng(), 0, rng(), rng()};
            buf[1] = a;
            uint64_t nreg = breg, nflags = 0x202 | cf;
            const uint64_t reg_in = nreg;
            std::vector<uint8_t> membytes(sizeof buf);
            std::memcpy(membytes.data(), buf, sizeof buf);
            c.native[si](&buf[1], &nreg, &nflags);

            FakeGuest g;
            g.put(kMemGpa - 8, membytes);
            Regs r;
            r.gpr[0] = reg_in;
            r.gpr[7] = kMemGpa;  // [rdi]
            r.rflags = 0x202 | cf;
            std::vector<uint8_t> enc;
            const uint8_t op = static_cast<uint8_t>(c.opcode + (size == 1 || bt ? 0 : 1));
            if (c.two_byte) enc = sized(size, {0x0F, op, static_cast<uint8_t>(0x07 | (c.modrm_reg << 3))});
            else enc = sized(size, {op, static_cast<uint8_t>(0x07 | (c.modrm_reg << 3))});
            const Result res = run64(enc, r, g);
            INFO(c.name << " size " << size << " a 0x" << std::hex << a << " b 0x" << breg << " cf " << cf);
            REQUIRE(res.status == Result::Status::done);
            CHECK(r.rip == 0x1000 + enc.size());
            for (unsigned k = 0; k < 4; k++) CHECK(g.get_le(kMemGpa - 8 + 8 * k, 8) == buf[k]);
            // A register written with size 4 zero-extends; smaller sizes merge; natively the
            // same, so compare the whole register.
            CHECK(r.gpr[0] == (c.writes_reg ? nreg : reg_in));
            const uint64_t mask = c.flag_mask | 0x202;
            CHECK((r.rflags & mask) == (nflags & mask));
            compared++;
          }
        }
      }
    }
  }
  CHECK(compared > 10000);
}

TEST_CASE("emulate execute: CMPXCHG agrees with the host CPU", "[emulate]") {
  const unsigned sizes[4] = {1, 2, 4, 8};
  for (unsigned size : sizes) {
    for (uint64_t mem : kValues) {
      for (uint64_t acc : {mem, mem ^ 1, uint64_t{0}, ~uint64_t{0}}) {
        uint64_t nmem = mem, nacc = acc, src = 0x1122334455667788ull, nflags = 0x202;
        cmpxchg_native(size, &nmem, &src, &nacc, &nflags);
        FakeGuest g;
        g.put_le(kMemGpa, mem, 8);
        Regs r;
        r.gpr[0] = acc;
        r.gpr[1] = src;  // rcx
        r.gpr[7] = kMemGpa;
        r.rflags = 0x202;
        const uint8_t op = size == 1 ? 0xB0 : 0xB1;
        std::vector<uint8_t> enc = {0xF0};  // LOCK first: a REX must come last
        const std::vector<uint8_t> rest = sized(size, {0x0F, op, 0x0F});  // cmpxchg [rdi], rcx
        enc.insert(enc.end(), rest.begin(), rest.end());
        const Result res = run64(enc, r, g);
        INFO("size " << size << " mem 0x" << std::hex << mem << " acc 0x" << acc);
        REQUIRE(res.status == Result::Status::done);
        CHECK(g.get_le(kMemGpa, 8) == nmem);
        CHECK(r.gpr[0] == nacc);
        CHECK((r.rflags & rf::kArith) == (nflags & rf::kArith));
      }
    }
  }
}

TEST_CASE("emulate execute: group-1 immediates (80/81/83) agree with the host CPU", "[emulate]") {
  // add/or/adc/sbb/and/sub/xor/cmp dword [rdi], imm8 sign-extended (83) and imm32 (81, REX.W).
  for (unsigned alu = 0; alu < 8; alu++) {
    for (uint64_t a : kValues) {
      for (int8_t imm : {int8_t{0}, int8_t{1}, int8_t{-1}, int8_t{0x7F}, int8_t{-128}}) {
        uint64_t mem = a, flags = 0x202 | rf::kCf;
        const uint64_t imm64 = static_cast<uint64_t>(static_cast<int64_t>(imm));
        // Native: the same operation via the register form with the sign-extended immediate
        // (identical semantics for the memory-immediate form).
        Native natives[8] = {add_mr_q, or_mr_q, adc_mr_q, sbb_mr_q, and_mr_q, sub_mr_q, xor_mr_q, cmp_mr_q};
        uint64_t reg = imm64;
        natives[alu](&mem, &reg, &flags);
        FakeGuest g;
        g.put_le(kMemGpa, a, 8);
        Regs r;
        r.gpr[7] = kMemGpa;
        r.rflags = 0x202 | rf::kCf;
        const Result res = run64({0x48, 0x83, static_cast<uint8_t>(0x07 | (alu << 3)), static_cast<uint8_t>(imm)}, r, g);
        INFO("alu " << alu << " a 0x" << std::hex << a << " imm " << int(imm));
        REQUIRE(res.status == Result::Status::done);
        CHECK(g.get_le(kMemGpa, 8) == mem);
        const uint64_t mask = (alu == 1 || alu == 4 || alu == 6) ? kLogicFlags : rf::kArith;
        CHECK((r.rflags & mask) == (flags & mask));
      }
    }
  }
}

TEST_CASE("emulate execute: MOV forms, byte registers, MOVZX/MOVSX/MOVSXD and RIP-relative", "[emulate]") {
  FakeGuest g;
  g.put_le(kMemGpa, 0x8877665544332211ull, 8);
  CpuState cpu64;
  cpu64.mode = Mode::k64;
  auto run = [&](const std::vector<uint8_t>& bytes, Regs& r, Mode mode = Mode::k64) {
    g.put(0x1000, bytes);
    r.rip = 0x1000;
    CpuState cpu;
    cpu.mode = mode;
    return hv::emu::emulate(cpu, r, g);
  };
  Regs r;
  r.gpr[7] = kMemGpa;
  r.gpr[0] = 0xAAAAAAAAAAAAAAAAull;
  // mov ah,[rdi] without REX: AH.
  REQUIRE(run({0x8A, 0x27}, r).status == Result::Status::done);
  CHECK(r.gpr[0] == 0xAAAAAAAAAAAA11AAull);
  // mov spl,[rdi] with REX: SPL (register 4), not AH.
  r.gpr[4] = 0xBBBBBBBBBBBBBBBBull;
  REQUIRE(run({0x40, 0x8A, 0x27}, r).status == Result::Status::done);
  CHECK(r.gpr[4] == 0xBBBBBBBBBBBBBB11ull);
  CHECK(r.gpr[0] == 0xAAAAAAAAAAAA11AAull);
  // mov eax,[rdi]: the 32-bit write zero-extends.
  REQUIRE(run({0x8B, 0x07}, r).status == Result::Status::done);
  CHECK(r.gpr[0] == 0x44332211ull);
  // mov ax,[rdi]: merges.
  r.gpr[0] = ~uint64_t{0};
  REQUIRE(run({0x66, 0x8B, 0x07}, r).status == Result::Status::done);
  CHECK(r.gpr[0] == 0xFFFFFFFFFFFF2211ull);
  // movzx ecx, byte [rdi+7]; movsx rcx, byte [rdi+7]; movsxd rcx, dword [rdi+4]; movsx cx,[rdi+7]
  REQUIRE(run({0x0F, 0xB6, 0x4F, 0x07}, r).status == Result::Status::done);
  CHECK(r.gpr[1] == 0x88);
  REQUIRE(run({0x48, 0x0F, 0xBE, 0x4F, 0x07}, r).status == Result::Status::done);
  CHECK(r.gpr[1] == 0xFFFFFFFFFFFFFF88ull);
  REQUIRE(run({0x48, 0x63, 0x4F, 0x04}, r).status == Result::Status::done);
  CHECK(r.gpr[1] == 0xFFFFFFFF88776655ull);
  r.gpr[1] = 0;
  REQUIRE(run({0x66, 0x0F, 0xBF, 0x4F, 0x06}, r).status == Result::Status::done);  // movsx cx, word [rdi+6]
  CHECK(r.gpr[1] == 0x8877);
  // mov r11, [rip + disp]: RIP after the instruction (0x1007) + 0x1FF9 = 0x3000.
  REQUIRE(run({0x4C, 0x8B, 0x1D, 0xF9, 0x1F, 0x00, 0x00}, r).status == Result::Status::done);
  CHECK(r.gpr[11] == 0x8877665544332211ull);
  // mov [moffs64], rax and mov rax, [moffs64].
  r.gpr[0] = 0x0102030405060708ull;
  REQUIRE(run({0x48, 0xA3, 0x00, 0x40, 0, 0, 0, 0, 0, 0}, r).status == Result::Status::done);
  CHECK(g.get_le(0x4000, 8) == 0x0102030405060708ull);
  r.gpr[0] = 0;
  REQUIRE(run({0x48, 0xA1, 0x04, 0x40, 0, 0, 0, 0, 0, 0}, r).status == Result::Status::done);
  CHECK(r.gpr[0] == 0x01020304ull);
  CHECK(r.rip == 0x100A);
  // mov qword [rdi], imm32 sign-extended; mov byte [rdi], imm8
  REQUIRE(run({0x48, 0xC7, 0x07, 0xFE, 0xFF, 0xFF, 0xFF}, r).status == Result::Status::done);
  CHECK(g.get_le(kMemGpa, 8) == 0xFFFFFFFFFFFFFFFEull);
  REQUIRE(run({0xC6, 0x07, 0x5A}, r).status == Result::Status::done);
  CHECK(g.get_le(kMemGpa, 8) == 0xFFFFFFFFFFFFFF5Aull);
  // FS override counts in 64-bit mode, DS does not.
  {
    FakeGuest h;
    h.put_le(0x9000, 0x1234, 4);
    h.put(0x1000, {0x64, 0x8B, 0x07});  // mov eax, fs:[rdi]
    Regs q;
    q.rip = 0x1000;
    q.gpr[7] = 0x1000;
    CpuState cpu;
    cpu.mode = Mode::k64;
    cpu.seg_base[hv::emu::kFs] = 0x8000;
    cpu.seg_base[hv::emu::kDs] = 0x100000;  // ignored
    REQUIRE(hv::emu::emulate(cpu, q, h).status == Result::Status::done);
    CHECK(q.gpr[0] == 0x1234);
  }
  // 32-bit code: segment bases count, and EIP wraps at 4 GiB.
  {
    FakeGuest h;
    h.put_le(0x5010, 0xCAFE, 2);
    h.put(0xFFFFFFFE, {0x8B, 0x03});  // mov eax,[ebx] at EIP 0xFFFFFFFE
    Regs q;
    q.rip = 0xFFFFFFFE;
    q.gpr[3] = 0x10;
    CpuState cpu;
    cpu.mode = Mode::k32;
    cpu.seg_base[hv::emu::kDs] = 0x5000;
    REQUIRE(hv::emu::emulate(cpu, q, h).status == Result::Status::done);
    CHECK(q.gpr[0] == 0xCAFE);
    CHECK(q.rip == 0);
  }
  // 16-bit code: [bp+si] defaults to SS; IP wraps at 64 KiB.
  {
    FakeGuest h;
    h.put_le(0x20000 + 0x30, 0xBEEF, 2);
    h.put(0x10000 + 0xFFFE, {0x8B, 0x02});  // mov ax,[bp+si]
    Regs q;
    q.rip = 0xFFFE;
    q.gpr[5] = 0x10;
    q.gpr[6] = 0x20;
    CpuState cpu;
    cpu.mode = Mode::k16;
    cpu.seg_base[hv::emu::kCs] = 0x10000;
    cpu.seg_base[hv::emu::kSs] = 0x20000;
    REQUIRE(hv::emu::emulate(cpu, q, h).status == Result::Status::done);
    CHECK((q.gpr[0] & 0xFFFF) == 0xBEEF);
    CHECK(q.rip == 0);
  }
}
