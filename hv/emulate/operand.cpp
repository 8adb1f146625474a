// Operand addressing and registers (see operand.h).
#include "hv/emulate/operand.h"

#include "hv/emulate/flags.h"

namespace hv::emu {

uint64_t segment_base(const CpuState& cpu, unsigned seg) {
  if (seg > kGs) return 0;
  if (cpu.mode == Mode::k64 && seg != kFs && seg != kGs) return 0;
  return cpu.seg_base[seg];
}

uint64_t effective_address(const Insn& d, const Regs& r, uint64_t next_rip) {
  uint64_t a = static_cast<uint64_t>(d.disp);
  if (d.rip_relative) a += next_rip;
  if (d.base >= 0) a += r.gpr[d.base];
  if (d.index >= 0) a += r.gpr[d.index] * d.scale;
  return a & addr_mask(d.addrsize);
}

uint64_t linear_address(const CpuState& cpu, const Insn& d, uint64_t ea) {
  const unsigned seg = d.seg != kSegNone ? d.seg : d.default_seg;
  return (segment_base(cpu, seg) + ea) & lin_mask(cpu.mode);
}

uint64_t get_reg(const Regs& r, unsigned reg, unsigned size, bool rex) {
  reg &= 15;
  if (size == 1 && !rex && reg >= 4 && reg < 8) return (r.gpr[reg - 4] >> 8) & 0xFF;
  return r.gpr[reg] & size_mask(size);
}

void set_reg(Regs& r, unsigned reg, unsigned size, bool rex, uint64_t value) {
  reg &= 15;
  if (size == 1 && !rex && reg >= 4 && reg < 8) {
    uint64_t& g = r.gpr[reg - 4];
    g = (g & ~uint64_t{0xFF00}) | ((value & 0xFF) << 8);
    return;
  }
  uint64_t& g = r.gpr[reg];
  if (size >= 4) {
    g = value & size_mask(size);  // 32-bit writes zero-extend
  } else {
    g = (g & ~size_mask(size)) | (value & size_mask(size));
  }
}

void set_addr_reg(Regs& r, unsigned reg, unsigned addrsize, uint64_t value) { set_reg(r, reg, addrsize, true, value); }

}  // namespace hv::emu
