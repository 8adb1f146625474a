// The emulator's decoder (hv/emulate/decode.h): a table of encodings in 16-, 32- and 64-bit
// code with their length, sizes, registers, addressing and immediate; and the refusals.
#include <catch2/catch.hpp>

#include <vector>

#include "hv/emulate/decode.h"

using hv::emu::DecodeStatus;
using hv::emu::Insn;
using hv::emu::Mode;
using hv::emu::Op;

namespace {

struct Row {
  const char* text;
  Mode mode;
  std::vector<uint8_t> bytes;
  unsigned length;
  Op op;
  unsigned opsize, memsize, addrsize;
  int reg;  // -1: don't care
  int base, index;
  unsigned scale;
  int64_t disp;
  bool rip_relative;
  uint64_t imm;  // checked when has_imm
  bool has_imm;
  uint8_t seg;   // override, kSegNone for none
};

constexpr uint8_t N = hv::emu::kSegNone;

const Row kRows[] = {
    // --- 32-bit code ---
    {"mov eax,[eax]", Mode::k32, {0x8B, 0x00}, 2, Op::kMov, 4, 4, 4, 0, 0, -1, 1, 0, false, 0, false, N},
    {"mov [edx],ecx", Mode::k32, {0x89, 0x0A}, 2, Op::kMov, 4, 4, 4, 1, 2, -1, 1, 0, false, 0, false, N},
    {"mov ebx,[esp+8]", Mode::k32, {0x8B, 0x5C, 0x24, 0x08}, 4, Op::kMov, 4, 4, 4, 3, 4, -1, 1, 8, false, 0, false, N},
    {"mov ecx,[esi+0x1000]", Mode::k32, {0x8B, 0x8E, 0x00, 0x10, 0x00, 0x00}, 6, Op::kMov, 4, 4, 4, 1, 6, -1, 1, 0x1000, false, 0, false, N},
    {"mov edi,[0x4000000]", Mode::k32, {0x8B, 0x3D, 0x00, 0x00, 0x00, 0x04}, 6, Op::kMov, 4, 4, 4, 7, -1, -1, 1, 0x4000000, false, 0, false, N},
    {"mov eax,[0x4000000] (SIB, no base)", Mode::k32, {0x8B, 0x04, 0x25, 0x00, 0x00, 0x00, 0x04}, 7, Op::kMov, 4, 4, 4, 0, -1, -1, 1, 0x4000000, false, 0, false, N},
    {"mov eax,[ebx+ecx*8-4]", Mode::k32, {0x8B, 0x44, 0xCB, 0xFC}, 4, Op::kMov, 4, 4, 4, 0, 3, 1, 8, -4, false, 0, false, N},
    {"mov ah,[esi]", Mode::k32, {0x8A, 0x26}, 2, Op::kMov, 1, 1, 4, 4, 6, -1, 1, 0, false, 0, false, N},
    {"mov ax,[edi]", Mode::k32, {0x66, 0x8B, 0x07}, 3, Op::kMov, 2, 2, 4, 0, 7, -1, 1, 0, false, 0, false, N},
    {"mov dword [eax+4],0x12345678", Mode::k32, {0xC7, 0x40, 0x04, 0x78, 0x56, 0x34, 0x12}, 7, Op::kMov, 4, 4, 4, -1, 0, -1, 1, 4, false, 0x12345678, true, N},
    {"mov word [eax],0x8001", Mode::k32, {0x66, 0xC7, 0x00, 0x01, 0x80}, 5, Op::kMov, 2, 2, 4, -1, 0, -1, 1, 0, false, 0x8001, true, N},
    {"mov eax,[moffs32]", Mode::k32, {0xA1, 0x00, 0x00, 0x00, 0x04}, 5, Op::kMov, 4, 4, 4, 0, -1, -1, 1, 0x4000000, false, 0, false, N},
    {"ds: mov [moffs32],al", Mode::k32, {0x3E, 0xA2, 0x00, 0x00, 0x00, 0x84}, 6, Op::kMov, 1, 1, 4, 0, -1, -1, 1, 0x84000000, false, 0, false, hv::emu::kDs},
    {"fs: mov eax,[ebx]", Mode::k32, {0x64, 0x8B, 0x03}, 3, Op::kMov, 4, 4, 4, 0, 3, -1, 1, 0, false, 0, false, hv::emu::kFs},
    {"movzx ecx,byte [eax]", Mode::k32, {0x0F, 0xB6, 0x08}, 3, Op::kMovzx, 4, 1, 4, 1, 0, -1, 1, 0, false, 0, false, N},
    {"movsx dx,byte [eax]", Mode::k32, {0x66, 0x0F, 0xBE, 0x10}, 4, Op::kMovsx, 2, 1, 4, 2, 0, -1, 1, 0, false, 0, false, N},
    {"movsx eax,word [ebp-2]", Mode::k32, {0x0F, 0xBF, 0x45, 0xFE}, 4, Op::kMovsx, 4, 2, 4, 0, 5, -1, 1, -2, false, 0, false, N},
    {"add [ecx],edx", Mode::k32, {0x01, 0x11}, 2, Op::kAdd, 4, 4, 4, 2, 1, -1, 1, 0, false, 0, false, N},
    {"sbb bl,[ecx]", Mode::k32, {0x1A, 0x19}, 2, Op::kSbb, 1, 1, 4, 3, 1, -1, 1, 0, false, 0, false, N},
    {"cmp dword [eax],-1 (83)", Mode::k32, {0x83, 0x38, 0xFF}, 3, Op::kCmp, 4, 4, 4, -1, 0, -1, 1, 0, false, 0xFFFFFFFF, true, N},
    {"and word [eax],0x1234 (81)", Mode::k32, {0x66, 0x81, 0x20, 0x34, 0x12}, 5, Op::kAnd, 2, 2, 4, -1, 0, -1, 1, 0, false, 0x1234, true, N},
    {"xor byte [eax],0x80", Mode::k32, {0x80, 0x30, 0x80}, 3, Op::kXor, 1, 1, 4, -1, 0, -1, 1, 0, false, 0x80, true, N},
    {"test dword [eax],0x10", Mode::k32, {0xF7, 0x00, 0x10, 0x00, 0x00, 0x00}, 6, Op::kTest, 4, 4, 4, -1, 0, -1, 1, 0, false, 0x10, true, N},
    {"neg byte [eax]", Mode::k32, {0xF6, 0x18}, 2, Op::kNeg, 1, 1, 4, -1, 0, -1, 1, 0, false, 0, false, N},
    {"lock inc dword [eax]", Mode::k32, {0xF0, 0xFF, 0x00}, 3, Op::kInc, 4, 4, 4, -1, 0, -1, 1, 0, false, 0, false, N},
    {"xchg [eax],ebx", Mode::k32, {0x87, 0x18}, 2, Op::kXchg, 4, 4, 4, 3, 0, -1, 1, 0, false, 0, false, N},
    {"bts dword [eax],5", Mode::k32, {0x0F, 0xBA, 0x28, 0x05}, 4, Op::kBts, 4, 4, 4, -1, 0, -1, 1, 0, false, 5, true, N},
    {"btr [eax],ecx", Mode::k32, {0x0F, 0xB3, 0x08}, 3, Op::kBtr, 4, 4, 4, 1, 0, -1, 1, 0, false, 0, false, N},
    {"lock cmpxchg [edx],ecx", Mode::k32, {0xF0, 0x0F, 0xB1, 0x0A}, 4, Op::kCmpxchg, 4, 4, 4, 1, 2, -1, 1, 0, false, 0, false, N},
    {"xadd [edx],al", Mode::k32, {0x0F, 0xC0, 0x02}, 3, Op::kXadd, 1, 1, 4, 0, 2, -1, 1, 0, false, 0, false, N},
    {"rep movsd", Mode::k32, {0xF3, 0xA5}, 2, Op::kMovs, 4, 4, 4, -1, -1, -1, 1, 0, false, 0, false, N},
    {"rep stosb (a16)", Mode::k32, {0x67, 0xF3, 0xAA}, 3, Op::kStos, 1, 1, 2, -1, -1, -1, 1, 0, false, 0, false, N},
    {"mov eax,[bx+si+4] (a16)", Mode::k32, {0x67, 0x8B, 0x40, 0x04}, 4, Op::kMov, 4, 4, 2, 0, 3, 6, 1, 4, false, 0, false, N},
    // --- 16-bit code ---
    {"mov ax,[bx+si]", Mode::k16, {0x8B, 0x00}, 2, Op::kMov, 2, 2, 2, 0, 3, 6, 1, 0, false, 0, false, N},
    {"mov ax,[0x1234]", Mode::k16, {0x8B, 0x06, 0x34, 0x12}, 4, Op::kMov, 2, 2, 2, 0, -1, -1, 1, 0x1234, false, 0, false, N},
    {"mov cl,[bp-1]", Mode::k16, {0x8A, 0x4E, 0xFF}, 3, Op::kMov, 1, 1, 2, 1, 5, -1, 1, -1, false, 0, false, N},
    {"mov eax,[di] (o32)", Mode::k16, {0x66, 0x8B, 0x05}, 3, Op::kMov, 4, 4, 2, 0, 7, -1, 1, 0, false, 0, false, N},
    {"mov ax,[moffs16]", Mode::k16, {0xA1, 0x00, 0x80}, 3, Op::kMov, 2, 2, 2, 0, -1, -1, 1, 0x8000, false, 0, false, N},
    {"mov eax,[ebx] (a32)", Mode::k16, {0x67, 0x66, 0x8B, 0x03}, 4, Op::kMov, 4, 4, 4, 0, 3, -1, 1, 0, false, 0, false, N},
    // --- 64-bit code ---
    {"mov rax,[rdi]", Mode::k64, {0x48, 0x8B, 0x07}, 3, Op::kMov, 8, 8, 8, 0, 7, -1, 1, 0, false, 0, false, N},
    {"mov r9d,[r12]", Mode::k64, {0x45, 0x8B, 0x0C, 0x24}, 4, Op::kMov, 4, 4, 8, 9, 12, -1, 1, 0, false, 0, false, N},
    {"mov [r13+0],r15", Mode::k64, {0x4D, 0x89, 0x7D, 0x00}, 4, Op::kMov, 8, 8, 8, 15, 13, -1, 1, 0, false, 0, false, N},
    {"mov rax,[rbx+r12*4+0x10]", Mode::k64, {0x4A, 0x8B, 0x44, 0xA3, 0x10}, 5, Op::kMov, 8, 8, 8, 0, 3, 12, 4, 0x10, false, 0, false, N},
    {"mov eax,[rip+0x100]", Mode::k64, {0x8B, 0x05, 0x00, 0x01, 0x00, 0x00}, 6, Op::kMov, 4, 4, 8, 0, -1, -1, 1, 0x100, true, 0, false, N},
    {"mov sil,[rax] (REX byte reg)", Mode::k64, {0x40, 0x8A, 0x30}, 3, Op::kMov, 1, 1, 8, 6, 0, -1, 1, 0, false, 0, false, N},
    {"mov qword [rax],-2 (imm32 sign-extended)", Mode::k64, {0x48, 0xC7, 0x00, 0xFE, 0xFF, 0xFF, 0xFF}, 7, Op::kMov, 8, 8, 8, -1, 0, -1, 1, 0, false, 0xFFFFFFFFFFFFFFFEull, true, N},
    {"mov rax,[moffs64]", Mode::k64, {0x48, 0xA1, 8, 7, 6, 5, 4, 3, 2, 1}, 10, Op::kMov, 8, 8, 8, 0, -1, -1, 1, 0x0102030405060708ll, false, 0, false, N},
    {"mov al,[moffs32] (a32)", Mode::k64, {0x67, 0xA0, 0x00, 0x00, 0x00, 0xFE}, 6, Op::kMov, 1, 1, 4, 0, -1, -1, 1, 0xFE000000ll, false, 0, false, N},
    {"movsxd rax,dword [rcx]", Mode::k64, {0x48, 0x63, 0x01}, 3, Op::kMovsx, 8, 4, 8, 0, 1, -1, 1, 0, false, 0, false, N},
    {"gs: add [rax],r8w", Mode::k64, {0x65, 0x66, 0x44, 0x01, 0x00}, 5, Op::kAdd, 2, 2, 8, 8, 0, -1, 1, 0, false, 0, false, hv::emu::kGs},
    {"ds: ignored in 64-bit mode", Mode::k64, {0x3E, 0x8B, 0x00}, 3, Op::kMov, 4, 4, 8, 0, 0, -1, 1, 0, false, 0, false, N},
    {"REX before a legacy prefix is ignored", Mode::k64, {0x48, 0x66, 0x8B, 0x00}, 4, Op::kMov, 2, 2, 8, 0, 0, -1, 1, 0, false, 0, false, N},
    {"rep movsq", Mode::k64, {0xF3, 0x48, 0xA5}, 3, Op::kMovs, 8, 8, 8, -1, -1, -1, 1, 0, false, 0, false, N},
    {"lock btc qword [rax],r10", Mode::k64, {0xF0, 0x4C, 0x0F, 0xBB, 0x10}, 5, Op::kBtc, 8, 8, 8, 10, 0, -1, 1, 0, false, 0, false, N},
    {"add qword [rax],0x7fffffff (81)", Mode::k64, {0x48, 0x81, 0x00, 0xFF, 0xFF, 0xFF, 0x7F}, 7, Op::kAdd, 8, 8, 8, -1, 0, -1, 1, 0, false, 0x7FFFFFFF, true, N},
};

}  // namespace

TEST_CASE("emulate decode: a table of encodings in 16-, 32- and 64-bit code", "[emulate]") {
  for (const Row& row : kRows) {
    INFO(row.text);
    Insn d;
    REQUIRE(hv::emu::decode(row.bytes.data(), static_cast<unsigned>(row.bytes.size()), row.mode, &d) == DecodeStatus::ok);
    CHECK(d.length == row.length);
    CHECK(d.op == row.op);
    CHECK(d.opsize == row.opsize);
    CHECK(d.memsize == row.memsize);
    CHECK(d.addrsize == row.addrsize);
    if (row.reg >= 0) CHECK(d.reg == row.reg);
    if (row.op != Op::kMovs && row.op != Op::kStos) {
      CHECK(d.base == row.base);
      CHECK(d.index == row.index);
      if (row.index >= 0) CHECK(d.scale == row.scale);
      CHECK(d.disp == row.disp);
      CHECK(d.rip_relative == row.rip_relative);
    }
    CHECK(d.has_imm == row.has_imm);
    if (row.has_imm) CHECK(d.imm == row.imm);
    CHECK(d.seg == row.seg);
    // Every prefix of the instruction is "cut short", never a different instruction.
    for (size_t n = 0; n < row.bytes.size(); n++) {
      Insn t;
      CHECK(hv::emu::decode(row.bytes.data(), static_cast<unsigned>(n), row.mode, &t) == DecodeStatus::truncated);
    }
  }
}

TEST_CASE("emulate decode: default segment SS for rBP/rSP-based operands", "[emulate]") {
  Insn d;
  const uint8_t a[] = {0x8B, 0x45, 0x08};  // mov eax,[ebp+8]
  REQUIRE(hv::emu::decode(a, 3, Mode::k32, &d) == DecodeStatus::ok);
  CHECK(d.default_seg == hv::emu::kSs);
  const uint8_t b[] = {0x8B, 0x43, 0x08};  // mov eax,[ebx+8]
  REQUIRE(hv::emu::decode(b, 3, Mode::k32, &d) == DecodeStatus::ok);
  CHECK(d.default_seg == hv::emu::kDs);
  const uint8_t c[] = {0x8B, 0x42, 0x08};  // mov ax,[bp+si+8] in 16-bit code
  REQUIRE(hv::emu::decode(c, 3, Mode::k16, &d) == DecodeStatus::ok);
  CHECK(d.default_seg == hv::emu::kSs);
}

TEST_CASE("emulate decode: refusals name their reason", "[emulate]") {
  struct Bad {
    const char* text;
    Mode mode;
    std::vector<uint8_t> bytes;
    DecodeStatus want;
  };
  const Bad bad[] = {
      {"ud2", Mode::k32, {0x0F, 0x0B}, DecodeStatus::unknown},
      {"shl dword [eax],1", Mode::k32, {0xD1, 0x20}, DecodeStatus::unknown},
      {"mul dword [eax]", Mode::k32, {0xF7, 0x20}, DecodeStatus::unknown},
      {"push dword [eax]", Mode::k32, {0xFF, 0x30}, DecodeStatus::unknown},
      {"C7 /1", Mode::k32, {0xC7, 0x48, 0x04, 0, 0, 0, 0}, DecodeStatus::unknown},
      {"arpl outside 64-bit mode", Mode::k32, {0x63, 0x00}, DecodeStatus::unknown},
      {"mov eax,eax: no memory operand", Mode::k32, {0x8B, 0xC0}, DecodeStatus::no_memory},
      {"lock mov", Mode::k32, {0xF0, 0x89, 0x00}, DecodeStatus::invalid_lock},
      {"lock cmp", Mode::k32, {0xF0, 0x39, 0x00}, DecodeStatus::invalid_lock},
      {"lock add reg,[mem]", Mode::k32, {0xF0, 0x03, 0x00}, DecodeStatus::invalid_lock},
      {"16 bytes of prefixes", Mode::k32, {0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x8B, 0x00}, DecodeStatus::too_long},
      {"disp32 cut short", Mode::k32, {0x8B, 0x80, 0x00}, DecodeStatus::truncated},
      {"nothing", Mode::k64, {}, DecodeStatus::truncated},
  };
  for (const Bad& b : bad) {
    INFO(b.text);
    Insn d;
    CHECK(hv::emu::decode(b.bytes.data(), static_cast<unsigned>(b.bytes.size()), b.mode, &d) == b.want);
  }
  char text[64];
  const uint8_t ud2[] = {0x0F, 0x0B};
  hv::emu::format_bytes(ud2, 2, text, sizeof text);
  CHECK(std::string(text) == "0f 0b");
  CHECK(std::string(hv::emu::to_string(DecodeStatus::unknown)) == "unknown opcode");
}
