// Kernel panic: an internal inconsistency that the kernel can't recover from.
// Prints the reason, "hv: result: FAIL panic: <reason>", and powers off with x86::kExitFail.
#pragma once

namespace hv {

[[noreturn]] void panic(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace hv
