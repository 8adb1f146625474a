// hv::panic and the MMU core's mmu::panic (declared in mmu/types.h), both fatal.
#include "hv/panic.h"

#include <stdarg.h>

#include "arch/x86/cpu.h"
#include "arch/x86/format.h"
#include "arch/x86/log.h"
#include "arch/x86/power.h"
#include "arch/x86/exit_status.h"
#include "mmu/types.h"

namespace hv {

void panic(const char* fmt, ...) {
  x86::cli();
  char reason[256];
  va_list ap;
  va_start(ap, fmt);
  x86::vformat(reason, sizeof reason, fmt, ap);
  va_end(ap);
  x86::log::enter_panic_mode();
  x86::log::error("panic: %s", reason);
  x86::log::plain("result: FAIL panic: %s", reason);
  x86::power::off(x86::kExitFail);
}

}  // namespace hv

namespace mmu {

void panic(const char* file, int line, const char* what) { hv::panic("mmu: %s:%d: %s", file, line, what); }

}  // namespace mmu
