// The decoded form of one instruction, as the emulator's decoder (decode.h) produces it and its
// executor (execute.h) consumes it. Only instructions with a memory operand exist here: the
// emulator runs for accesses to emulated memory (MMIO, unbacked, read-only), and an instruction
// without a memory operand cannot have made one.
//
// Register numbers are the encodings' (hv/guest_gpr.h: 0 RAX .. 15 R15); segment numbers are the
// SDM's Sreg encoding (ES 0, CS 1, SS 2, DS 3, FS 4, GS 5). Pure data, no kernel dependencies.
#pragma once

#include <stdint.h>

namespace hv::emu {

// The code the instruction belongs to: CS.D / CS.L and EFER.LMA (and CR0.PE) select it.
enum class Mode : uint8_t { k16, k32, k64 };

enum Seg : uint8_t { kEs = 0, kCs = 1, kSs = 2, kDs = 3, kFs = 4, kGs = 5, kSegNone = 0xFF };

// What the instruction does. Operand roles are in Insn::form.
enum class Op : uint8_t {
  kMov,      // 88 89 8A 8B C6 C7 A0-A3
  kMovzx,    // 0F B6 / 0F B7
  kMovsx,    // 0F BE / 0F BF, 63 (MOVSXD)
  kAdd, kOr, kAdc, kSbb, kAnd, kSub, kXor, kCmp,  // 00-3F, 80/81/83: in this order (ModR/M reg of the group)
  kTest,     // 84 85, F6/F7 /0
  kNot,      // F6/F7 /2
  kNeg,      // F6/F7 /3
  kInc,      // FE/FF /0
  kDec,      // FE/FF /1
  kXchg,     // 86 87 (locked whether or not LOCK is given)
  kBt, kBts, kBtr, kBtc,  // 0F A3/AB/B3/BB (bit offset in a register), 0F BA /4-7 (imm8)
  kCmpxchg,  // 0F B0 / 0F B1
  kXadd,     // 0F C0 / 0F C1
  kMovs,     // A4 A5
  kStos,     // AA AB
  kLods,     // AC AD
};

// Operand roles. `reg` is Insn::reg (ModR/M reg field with REX.R), `mem` the memory operand.
enum class Form : uint8_t {
  kMemReg,  // mem is the destination (or the only operand read: CMP/TEST), reg the source
  kRegMem,  // reg is the destination, mem the source
  kMemImm,  // mem op= imm
  kMem,     // unary on mem (NOT NEG INC DEC)
  kString,  // MOVS STOS LODS: addresses in rSI/rDI
};

struct Insn {
  uint8_t length = 0;    // bytes, prefixes included (at most 15)
  Op op = Op::kMov;
  Form form = Form::kMemReg;
  uint8_t opsize = 4;    // operand size of the operation: 1, 2, 4 or 8
  uint8_t memsize = 4;   // size of the memory access (MOVZX/MOVSX: the source size)
  uint8_t addrsize = 4;  // address size: 2, 4 or 8
  uint8_t rex = 0;       // the REX byte (0x40-0x4F) or 0
  bool lock = false;     // F0
  uint8_t rep = 0;       // 0, 0xF3 (REP/REPE) or 0xF2 (REPNE)
  uint8_t seg = kSegNone;  // segment override prefix, or kSegNone
  uint8_t reg = 0;       // register operand (0-15); with opsize 1 and no REX, 4-7 mean AH CH DH BH
  // Memory operand (ModR/M forms): base + index * scale + disp, or RIP-relative, or moffs.
  int8_t base = -1;      // register or -1
  int8_t index = -1;     // register or -1
  uint8_t scale = 1;
  bool rip_relative = false;
  uint8_t default_seg = kDs;  // SS for BP/SP-based addresses
  int64_t disp = 0;      // sign-extended displacement, or the moffs address (zero-extended)
  uint64_t imm = 0;      // the immediate, sign-extended to opsize as the instruction defines it
  bool has_imm = false;
  uint8_t opcode = 0;    // the opcode byte (after 0F for two-byte opcodes)
  bool two_byte = false; // 0F map
};

// Bytes of an instruction as reported in a refusal: "0f 0b" (at most `avail`, 15).
void format_bytes(const uint8_t* bytes, unsigned avail, char* out, unsigned out_size);

}  // namespace hv::emu
