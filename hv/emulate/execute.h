// The emulator: fetches the instruction at CS:RIP through GuestAccess (guest_access.h), decodes
// it (decode.h) and executes it on the caller's Regs and guest memory, with the flags computed
// exactly (flags.h). One call emulates one instruction - or, for REP string instructions, up to
// `rep_budget` iterations: when iterations remain, RIP stays on the instruction with rCX/rSI/
// rDI updated, so the guest re-executes it (and takes the next exit) as the CPU would after an
// interrupt between iterations; hv's exit handler stays bounded that way.
//
// Every access of the instruction goes through GuestAccess in program order: a read-modify-
// write is one read and one write of the same bytes, which the caller makes atomic with respect
// to its devices by holding their lock across the call (LOCK'd forms and XCHG need nothing
// more). On a fault, no register is changed and nothing was written (except the iterations a
// REP instruction already completed, as on the CPU); Result says what to inject.
#pragma once

#include <stdint.h>

#include "hv/emulate/decode.h"
#include "hv/emulate/guest_access.h"
#include "hv/emulate/insn.h"

namespace hv::emu {

struct Result {
  enum class Status : uint8_t {
    done,        // emulated; Regs (RIP included) updated
    fault,       // inject `fault` (page fault or exception); Regs as the CPU leaves them
    refused,     // the instruction cannot be emulated (decode status below): stop, report the bytes
    stop,        // a fault that cannot be reflected to the guest (fault.why): stop with a report
  };
  Status status = Status::refused;
  Fault fault;
  DecodeStatus decode = DecodeStatus::ok;
  Insn insn;             // valid from the decode on
  uint8_t bytes[15] = {};
  unsigned nbytes = 0;   // instruction bytes fetched
  uint64_t iterations = 0;  // REP: iterations done in this call
};

Result emulate(const CpuState& cpu, Regs& regs, GuestAccess& mem, uint64_t rep_budget = 1024);

}  // namespace hv::emu
