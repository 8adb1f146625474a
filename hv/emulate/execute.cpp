// The emulator's executor (see execute.h). Semantics from the SDM's instruction pages.
#include "hv/emulate/execute.h"

#include "hv/emulate/flags.h"
#include "hv/emulate/memory.h"
#include "hv/emulate/operand.h"

namespace hv::emu {

namespace {

constexpr unsigned kRax = 0, kRcx = 1, kRsi = 6, kRdi = 7;

Fault exception(uint8_t vector, bool has_error, uint32_t code) {
  Fault f;
  f.kind = Fault::Kind::exception;
  f.vector = vector;
  f.has_error = has_error;
  f.error_code = code;
  return f;
}

int64_t sign_extend(uint64_t v, unsigned bytes) {
  const unsigned shift = 64 - 8 * bytes;
  return static_cast<int64_t>(v << shift) >> shift;
}

// One instruction's context while it executes.
struct Exec {
  const CpuState& cpu;
  Regs& r;
  GuestAccess& mem;
  const Insn& d;
  uint64_t lmask;
  bool rex;

  Fault read(uint64_t la, unsigned size, uint64_t* v) { return read_linear(mem, la, size, cpu.cpl, lmask, v); }
  Fault write(uint64_t la, unsigned size, uint64_t v) { return write_linear(mem, la, size, cpu.cpl, lmask, v); }
  uint64_t reg(unsigned n, unsigned size) const { return get_reg(r, n, size, rex); }
  void set(unsigned n, unsigned size, uint64_t v) { set_reg(r, n, size, rex, v); }
};

// The ModR/M-operand instructions. `la` is the memory operand's linear address, `ea` its
// effective address (BT* with a register offset moves it).
Fault execute_modrm(Exec& x, uint64_t ea, uint64_t la) {
  const Insn& d = x.d;
  const unsigned size = d.opsize;
  uint64_t v = 0;
  switch (d.op) {
    case Op::kMov:
      if (d.form == Form::kRegMem) {
        if (Fault f = x.read(la, size, &v)) return f;
        x.set(d.reg, size, v);
        return {};
      }
      return x.write(la, size, d.form == Form::kMemImm ? d.imm : x.reg(d.reg, size));
    case Op::kMovzx:
    case Op::kMovsx:
      if (Fault f = x.read(la, d.memsize, &v)) return f;
      if (d.op == Op::kMovsx) v = static_cast<uint64_t>(sign_extend(v, d.memsize));
      x.set(d.reg, size, v & size_mask(size));
      return {};
    case Op::kAdd: case Op::kOr: case Op::kAdc: case Op::kSbb: case Op::kAnd: case Op::kSub: case Op::kXor: case Op::kCmp: {
      const Alu alu_op = static_cast<Alu>(static_cast<unsigned>(d.op) - static_cast<unsigned>(Op::kAdd));
      if (Fault f = x.read(la, size, &v)) return f;
      if (d.form == Form::kRegMem) {
        uint64_t rf = x.r.rflags;
        const uint64_t res = alu(alu_op, size, x.reg(d.reg, size), v, &rf);
        if (d.op != Op::kCmp) x.set(d.reg, size, res);
        x.r.rflags = rf;
        return {};
      }
      const uint64_t src = d.form == Form::kMemImm ? d.imm : x.reg(d.reg, size);
      uint64_t rf = x.r.rflags;
      const uint64_t res = alu(alu_op, size, v, src, &rf);
      if (d.op != Op::kCmp) {
        if (Fault f = x.write(la, size, res)) return f;
      }
      x.r.rflags = rf;
      return {};
    }
    case Op::kTest: {
      if (Fault f = x.read(la, size, &v)) return f;
      const uint64_t src = d.form == Form::kMemImm ? d.imm : x.reg(d.reg, size);
      alu(Alu::kAnd, size, v, src, &x.r.rflags);
      return {};
    }
    case Op::kNot:
      if (Fault f = x.read(la, size, &v)) return f;
      return x.write(la, size, ~v & size_mask(size));
    case Op::kNeg:
    case Op::kInc:
    case Op::kDec: {
      if (Fault f = x.read(la, size, &v)) return f;
      uint64_t rf = x.r.rflags;
      const uint64_t res = d.op == Op::kNeg ? neg(size, v, &rf) : inc_dec(d.op == Op::kDec, size, v, &rf);
      if (Fault f = x.write(la, size, res)) return f;
      x.r.rflags = rf;
      return {};
    }
    case Op::kXchg:
      if (Fault f = x.read(la, size, &v)) return f;
      if (Fault f = x.write(la, size, x.reg(d.reg, size))) return f;
      x.set(d.reg, size, v);
      return {};
    case Op::kCmpxchg: {
      // Compare the accumulator with the destination; equal: destination = source, else
      // accumulator = destination. The destination is written either way (with its own value
      // when the comparison fails), as the CPU does for the locked bus cycle.
      if (Fault f = x.read(la, size, &v)) return f;
      uint64_t rf = x.r.rflags;
      const uint64_t acc = x.reg(kRax, size);
      alu(Alu::kCmp, size, acc, v, &rf);
      const bool equal = acc == v;
      if (Fault f = x.write(la, size, equal ? x.reg(d.reg, size) : v)) return f;
      if (!equal) x.set(kRax, size, v);
      x.r.rflags = rf;
      return {};
    }
    case Op::kXadd: {
      if (Fault f = x.read(la, size, &v)) return f;
      uint64_t rf = x.r.rflags;
      const uint64_t sum = alu(Alu::kAdd, size, v, x.reg(d.reg, size), &rf);
      if (Fault f = x.write(la, size, sum)) return f;
      x.set(d.reg, size, v);
      x.r.rflags = rf;
      return {};
    }
    case Op::kBt: case Op::kBts: case Op::kBtr: case Op::kBtc: {
      // Bit offset: an immediate is taken modulo the operand width; a register offset is a
      // signed bit index from the operand's address, which may reach other operand-sized
      // units below or above it (SDM "BT": the address moves by (offset SAR log2(width)) units).
      const unsigned bits = 8 * size;
      uint64_t bit = 0;
      if (d.form == Form::kMemImm) {
        bit = d.imm & (bits - 1);
      } else {
        const int64_t off = sign_extend(x.reg(d.reg, size), size);
        const unsigned log2 = size == 2 ? 4 : size == 4 ? 5 : 6;
        const int64_t units = off >> log2;  // arithmetic shift: floor division
        const uint64_t ea2 = (ea + static_cast<uint64_t>(units * static_cast<int64_t>(size))) & addr_mask(d.addrsize);
        la = linear_address(x.cpu, d, ea2);
        bit = static_cast<uint64_t>(off) & (bits - 1);
      }
      if (Fault f = x.read(la, size, &v)) return f;
      const bool old = (v >> bit) & 1;
      if (d.op != Op::kBt) {
        const uint64_t m = uint64_t{1} << bit;
        const uint64_t nv = d.op == Op::kBts ? v | m : d.op == Op::kBtr ? v & ~m : v ^ m;
        if (Fault f = x.write(la, size, nv)) return f;
      }
      // CF is the old bit; OF SF AF PF are undefined (left as they were), ZF unaffected.
      x.r.rflags = (x.r.rflags & ~rflags::kCf) | (old ? rflags::kCf : 0);
      return {};
    }
    default:
      return exception(6, false, 0);  // not reached: the decoder hands only the ops above here
  }
}

// MOVS STOS LODS, with REP: the count in rCX, the pointers rSI/rDI, all of address size; the
// source segment may be overridden (DS by default), the destination is always ES. Stops after
// `budget` iterations; returns whether the instruction is complete.
Fault execute_string(Exec& x, uint64_t budget, bool* complete, uint64_t* iterations) {
  const Insn& d = x.d;
  const unsigned size = d.opsize;
  const uint64_t am = addr_mask(d.addrsize);
  const bool rep = d.rep != 0;
  const int64_t step = (x.r.rflags & rflags::kDf) ? -static_cast<int64_t>(size) : static_cast<int64_t>(size);
  const unsigned src_seg = d.seg != kSegNone ? d.seg : kDs;
  *complete = true;
  for (;;) {
    if (rep && (x.r.gpr[kRcx] & am) == 0) return {};
    if (*iterations == budget) {
      *complete = false;
      return {};
    }
    const uint64_t si = x.r.gpr[kRsi] & am, di = x.r.gpr[kRdi] & am;
    const uint64_t src = (segment_base(x.cpu, src_seg) + si) & x.lmask;
    const uint64_t dst = (segment_base(x.cpu, kEs) + di) & x.lmask;
    uint64_t v = 0;
    switch (d.op) {
      case Op::kMovs:
        if (Fault f = x.read(src, size, &v)) return f;
        if (Fault f = x.write(dst, size, v)) return f;
        set_addr_reg(x.r, kRsi, d.addrsize, si + static_cast<uint64_t>(step));
        set_addr_reg(x.r, kRdi, d.addrsize, di + static_cast<uint64_t>(step));
        break;
      case Op::kStos:
        if (Fault f = x.write(dst, size, x.reg(kRax, size))) return f;
        set_addr_reg(x.r, kRdi, d.addrsize, di + static_cast<uint64_t>(step));
        break;
      default:  // LODS
        if (Fault f = x.read(src, size, &v)) return f;
        x.set(kRax, size, v);
        set_addr_reg(x.r, kRsi, d.addrsize, si + static_cast<uint64_t>(step));
        break;
    }
    ++*iterations;
    if (!rep) return {};
    set_addr_reg(x.r, kRcx, d.addrsize, (x.r.gpr[kRcx] & am) - 1);
  }
}

}  // namespace

Result emulate(const CpuState& cpu, Regs& regs, GuestAccess& mem, uint64_t rep_budget) {
  Result res;
  const uint64_t lmask = lin_mask(cpu.mode);
  const uint64_t ip = cpu.mode == Mode::k64 ? regs.rip : cpu.mode == Mode::k32 ? regs.rip & 0xFFFFFFFFull : regs.rip & 0xFFFF;
  const uint64_t fetch_at = (segment_base(cpu, kCs) + ip) & lmask;
  Fault fetch_fault;
  res.nbytes = fetch_linear(mem, fetch_at, sizeof res.bytes, cpu.cpl, lmask, res.bytes, &fetch_fault);
  res.decode = decode(res.bytes, res.nbytes, cpu.mode, &res.insn);
  switch (res.decode) {
    case DecodeStatus::ok: break;
    case DecodeStatus::truncated:
      // The bytes ran out where the fetch failed: the guest's fetch of that byte faults
      // (#PF with the fetch's error code), or it cannot be completed (a table outside RAM).
      if (fetch_fault) {
        res.fault = fetch_fault;
        res.status = fetch_fault.kind == Fault::Kind::stop ? Result::Status::stop : Result::Status::fault;
      } else {
        res.status = Result::Status::refused;
      }
      return res;
    case DecodeStatus::too_long:
      res.fault = exception(13, true, 0);
      res.status = Result::Status::fault;
      return res;
    case DecodeStatus::invalid_lock:
      res.fault = exception(6, false, 0);
      res.status = Result::Status::fault;
      return res;
    default:
      res.status = Result::Status::refused;
      return res;
  }

  const Insn& d = res.insn;
  Regs work = regs;  // committed only when the instruction (or its REP batch) completes
  Exec x{cpu, work, mem, d, lmask, d.rex != 0};
  const uint64_t next_rip = advance_rip(cpu.mode, regs.rip, d.length);
  Fault f;
  bool complete = true;
  if (d.form == Form::kString) {
    f = execute_string(x, rep_budget, &complete, &res.iterations);
    if (f && res.iterations) {
      // The iterations before the fault stay done (registers included), as on the CPU.
      regs = work;
    }
  } else {
    work.rip = next_rip;
    const uint64_t ea = effective_address(d, regs, next_rip);
    f = execute_modrm(x, ea, linear_address(cpu, d, ea));
  }
  if (f) {
    res.fault = f;
    res.status = f.kind == Fault::Kind::stop ? Result::Status::stop : Result::Status::fault;
    return res;
  }
  if (complete) work.rip = next_rip;
  regs = work;
  res.status = Result::Status::done;
  return res;
}

}  // namespace hv::emu
