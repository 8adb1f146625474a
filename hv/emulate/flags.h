// The arithmetic flags (CF PF AF ZF SF OF) of the operations the emulator executes, computed
// exactly as the SDM defines them for each instruction (volume 1, appendix A "EFLAGS cross-
// reference", and the instruction pages). Pure functions; the host tests compare every one with
// the host CPU executing the same instruction.
#pragma once

#include <stdint.h>

namespace hv::emu {

namespace rflags {
inline constexpr uint64_t kCf = 1u << 0;
inline constexpr uint64_t kPf = 1u << 2;
inline constexpr uint64_t kAf = 1u << 4;
inline constexpr uint64_t kZf = 1u << 6;
inline constexpr uint64_t kSf = 1u << 7;
inline constexpr uint64_t kDf = 1u << 10;
inline constexpr uint64_t kOf = 1u << 11;
inline constexpr uint64_t kArith = kCf | kPf | kAf | kZf | kSf | kOf;
}  // namespace rflags

// Two-operand ALU operations in the order of the 00-3F opcode rows (and of ModR/M reg in
// group 1): ADD OR ADC SBB AND SUB XOR CMP.
enum class Alu : uint8_t { kAdd, kOr, kAdc, kSbb, kAnd, kSub, kXor, kCmp };

inline uint64_t size_mask(unsigned bytes) { return bytes >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * bytes)) - 1; }

// a OP b on `bytes`-wide operands (1, 2, 4, 8); updates the six arithmetic flags in *rflags
// (ADC/SBB read CF from it). Logic operations clear CF, OF and AF (AF is architecturally
// undefined there; zero is what current processors produce). Returns the masked result (for
// CMP the difference, which is not stored).
uint64_t alu(Alu op, unsigned bytes, uint64_t a, uint64_t b, uint64_t* rflags);
// INC / DEC: as ADD/SUB with 1, CF unchanged.
uint64_t inc_dec(bool dec, unsigned bytes, uint64_t a, uint64_t* rflags);
// NEG: 0 - a; CF = (a != 0).
uint64_t neg(unsigned bytes, uint64_t a, uint64_t* rflags);

}  // namespace hv::emu
