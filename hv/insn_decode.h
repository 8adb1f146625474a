// A tiny x86 decoder for the one job hv needs it for: finding out what a guest MOV that hit
// unbacked or read-only guest-physical memory wanted, so hv can finish it by hand (a load gets
// all ones, a store is dropped) and skip it. EPT-violation exits carry no instruction length,
// so hv must decode the length itself.
//
// Only 32-bit code (CS.D = 1, no address-size prefix) and only the plain MOV forms that
// compilers emit for volatile loads and stores:
//   88/89 /r (store r8/r32), 8A/8B /r (load r8/r32), C6/C7 /0 (store imm8/imm32),
//   A0-A3 (MOV AL/EAX <-> moffs32), 0F B6/B7 /r (MOVZX r32, r/m8/r/m16),
// with an optional operand-size prefix (66) and segment overrides (ignored: flat segments).
// Anything else (read-modify-write instructions, string moves, REX, 16-bit addressing) is
// refused and hv stops the vCPU with a report instead of guessing.
// Pure code with no kernel dependencies, so it can be tested anywhere.
#pragma once

#include <stdint.h>

namespace hv {

struct MemInsn {
  uint8_t length = 0;      // bytes, prefixes included
  uint8_t size = 0;        // memory operand size: 1, 2 or 4
  bool store = false;      // true: writes memory; false: reads it into `reg`
  bool has_imm = false;    // store of an immediate (no register source)
  bool high8 = false;      // `reg` names AH/CH/DH/BH (8-bit operand, reg 4-7)
  uint8_t dest_size = 0;   // loads: bytes written to `reg` (MOVZX widens: dest 2 or 4)
  uint8_t reg = 0;         // general register: 0 EAX, 1 ECX, 2 EDX, 3 EBX, 4 ESP, 5 EBP, 6 ESI, 7 EDI
  uint32_t imm = 0;
};

// Decodes the instruction in bytes[0, avail). False when it is not one of the forms above or
// is cut short.
bool decode_mov32(const uint8_t* bytes, unsigned avail, MemInsn* out);

// The new value of the load's destination register `reg` (old value `old`) when the memory
// operand read as all ones (hv's unbacked-memory policy): all ones in the operand's bytes,
// MOVZX widening with zeros, 8/16-bit destinations keeping the register's other bits, a 32-bit
// destination clearing bits 63:32 (as a 32-bit register write does).
uint64_t all_ones_load(const MemInsn& m, uint64_t old);

}  // namespace hv
