// The MOV decoder that hv uses to finish guest accesses to unbacked and read-only memory
// (hv/insn_decode.h). It is pure code, so it is compiled into the host tests directly.
#include <catch2/catch.hpp>

#include "hv/insn_decode.h"

using hv::decode_mov32;
using hv::MemInsn;

namespace {
MemInsn dec(std::initializer_list<uint8_t> bytes, bool expect_ok = true) {
  uint8_t buf[16] = {};
  unsigned n = 0;
  for (uint8_t b : bytes) buf[n++] = b;
  MemInsn m;
  REQUIRE(decode_mov32(buf, n, &m) == expect_ok);
  return m;
}
}  // namespace

TEST_CASE("insn_decode: loads and stores through a register", "[insn_decode]") {
  MemInsn m = dec({0x8B, 0x00});  // mov eax, [eax]
  CHECK(m.length == 2);
  CHECK(!m.store);
  CHECK(m.size == 4);
  CHECK(m.reg == 0);
  m = dec({0x89, 0x0A});  // mov [edx], ecx
  CHECK(m.length == 2);
  CHECK(m.store);
  CHECK(m.reg == 1);
  m = dec({0x8B, 0x5C, 0x24, 0x08});  // mov ebx, [esp+8]: SIB + disp8
  CHECK(m.length == 4);
  CHECK(m.reg == 3);
  m = dec({0x8B, 0x8E, 0x00, 0x10, 0x00, 0x00});  // mov ecx, [esi+0x1000]: disp32
  CHECK(m.length == 6);
  m = dec({0x8B, 0x3D, 0x00, 0x00, 0x00, 0x04});  // mov edi, [0x4000000]: mod 0, rm 5
  CHECK(m.length == 6);
  CHECK(m.reg == 7);
  m = dec({0x8B, 0x04, 0x25, 0x00, 0x00, 0x00, 0x04});  // mov eax, [0x4000000] via SIB, no base
  CHECK(m.length == 7);
}

TEST_CASE("insn_decode: byte, word, immediate, moffs and movzx forms", "[insn_decode]") {
  MemInsn m = dec({0x8A, 0x26});  // mov ah, [esi]
  CHECK(m.size == 1);
  CHECK(m.high8);
  CHECK(m.reg == 0);
  m = dec({0x66, 0x8B, 0x07});  // mov ax, [edi]
  CHECK(m.length == 3);
  CHECK(m.size == 2);
  m = dec({0xC7, 0x40, 0x04, 0x78, 0x56, 0x34, 0x12});  // mov dword [eax+4], 0x12345678
  CHECK(m.length == 7);
  CHECK(m.store);
  CHECK(m.has_imm);
  CHECK(m.imm == 0x12345678);
  m = dec({0xA1, 0x00, 0x00, 0x00, 0x04});  // mov eax, [moffs32]
  CHECK(m.length == 5);
  CHECK(!m.store);
  m = dec({0x3E, 0xA3, 0x00, 0x00, 0x00, 0x04});  // ds: mov [moffs32], eax
  CHECK(m.length == 6);
  CHECK(m.store);
  m = dec({0x0F, 0xB6, 0x08});  // movzx ecx, byte [eax]
  CHECK(m.length == 3);
  CHECK(m.size == 1);
  CHECK(m.dest_size == 4);
  CHECK(m.reg == 1);
}

TEST_CASE("insn_decode: refuses what it does not know, and short input", "[insn_decode]") {
  dec({0x01, 0x00}, false);        // add [eax], eax: read-modify-write
  dec({0x8B, 0xC0}, false);        // mov eax, eax: no memory operand
  dec({0xC7, 0x48, 0x04}, false);  // C7 /1 is not MOV; and cut short
  dec({0x8B, 0x80, 0x00}, false);  // disp32 cut short
  dec({0x67, 0x8B, 0x00}, false);  // 16-bit addressing
  dec({0xA5}, false);              // movs
  dec({}, false);
}

TEST_CASE("insn_decode: the register after a load of all ones", "[insn_decode]") {
  const uint64_t old = 0xAAAAAAAA12345678ull;
  CHECK(hv::all_ones_load(dec({0x8B, 0x00}), old) == 0xFFFFFFFFull);              // mov eax: bits 63:32 cleared
  CHECK(hv::all_ones_load(dec({0x66, 0x8B, 0x00}), old) == 0xAAAAAAAA1234FFFFull);  // mov ax
  CHECK(hv::all_ones_load(dec({0x8A, 0x00}), old) == 0xAAAAAAAA123456FFull);        // mov al
  CHECK(hv::all_ones_load(dec({0x8A, 0x20}), old) == 0xAAAAAAAA1234FF78ull);        // mov ah
  CHECK(hv::all_ones_load(dec({0x0F, 0xB6, 0x00}), old) == 0xFFull);                // movzx eax, byte
  CHECK(hv::all_ones_load(dec({0x0F, 0xB7, 0x00}), old) == 0xFFFFull);              // movzx eax, word
  CHECK(hv::all_ones_load(dec({0x66, 0x0F, 0xB6, 0x00}), old) == 0xAAAAAAAA123400FFull);  // movzx ax, byte
}
