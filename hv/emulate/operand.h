// Operands of a decoded instruction (insn.h): the effective address with address-size masking,
// the linear address with the segment base (in 64-bit mode only FS and GS have one; elsewhere
// linear addresses wrap at 4 GiB), and general registers by size with the byte-register rule
// (without REX, byte registers 4-7 are AH CH DH BH; with any REX they are SPL BPL SIL DIL).
// Segment limits are not checked (see docs/guest-platform.md, section 5).
#pragma once

#include <stdint.h>

#include "hv/emulate/guest_access.h"
#include "hv/emulate/insn.h"

namespace hv::emu {

inline uint64_t addr_mask(unsigned addrsize) {
  return addrsize == 8 ? ~uint64_t{0} : addrsize == 4 ? 0xFFFFFFFFull : 0xFFFFull;
}
inline uint64_t lin_mask(Mode m) { return m == Mode::k64 ? ~uint64_t{0} : 0xFFFFFFFFull; }
// RIP after `length` bytes: IP wraps at 64 KiB in 16-bit code, EIP at 4 GiB in 32-bit code.
inline uint64_t advance_rip(Mode m, uint64_t rip, unsigned length) {
  const uint64_t next = rip + length;
  return m == Mode::k64 ? next : m == Mode::k32 ? next & 0xFFFFFFFFull : next & 0xFFFFull;
}

uint64_t segment_base(const CpuState& cpu, unsigned seg);
// The ModR/M or moffs operand's effective address (next_rip: RIP after the instruction, for
// RIP-relative addressing), masked to the address size.
uint64_t effective_address(const Insn& d, const Regs& r, uint64_t next_rip);
// Segment base + effective address, as a linear address of the mode.
uint64_t linear_address(const CpuState& cpu, const Insn& d, uint64_t ea);

uint64_t get_reg(const Regs& r, unsigned reg, unsigned size, bool rex);
// A register write as the CPU does it: 8/16-bit writes keep the other bits, a 32-bit write
// clears bits 63:32.
void set_reg(Regs& r, unsigned reg, unsigned size, bool rex, uint64_t value);
// The low `addrsize` bytes of a register as an address-sized counter/pointer update (rSI, rDI,
// rCX of string instructions): 16-bit keeps bits 63:16, 32-bit zero-extends.
void set_addr_reg(Regs& r, unsigned reg, unsigned addrsize, uint64_t value);

}  // namespace hv::emu
