// The emulator's decoder: instruction bytes -> Insn (insn.h), for 16-, 32- and 64-bit code.
//
// It knows the prefixes (66 operand size, 67 address size, the six segment overrides - in
// 64-bit mode only FS and GS keep a meaning, the others are ignored as the CPU ignores them -,
// F0 LOCK, F3/F2 REP), REX in 64-bit mode (W R X B; a REX that is not the last prefix is ignored,
// as the CPU ignores it), ModR/M with SIB and displacement in 16-, 32- and 64-bit addressing,
// RIP-relative addressing, and the opcodes listed in insn.h (Op). Encodings from the SDM,
// volume 2, chapter 2 and the instruction pages. Anything else is refused with a status that
// names the reason; the caller reports the bytes and never guesses.
#pragma once

#include <stdint.h>

#include "hv/emulate/insn.h"

namespace hv::emu {

enum class DecodeStatus : uint8_t {
  ok,
  truncated,      // the bytes ran out before the instruction ended (fetch more, or the fetch failed)
  too_long,       // more than 15 bytes: the CPU raises #GP(0)
  unknown,        // an opcode (or group member) the emulator does not implement
  no_memory,      // a known opcode without a memory operand (ModR/M mod = 3): cannot have exited
  invalid_lock,   // LOCK on an instruction that does not allow it: #UD
  invalid,        // an encoding that is #UD in this mode (e.g. moffs forms are fine; 63 outside 64-bit is ARPL)
};
const char* to_string(DecodeStatus s);

// Decodes bytes[0, avail) as code of `mode`. On ok, *out describes the instruction.
DecodeStatus decode(const uint8_t* bytes, unsigned avail, Mode mode, Insn* out);

}  // namespace hv::emu
