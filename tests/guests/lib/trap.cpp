// Exception probes (guest.h, "exceptions"; the IDT and the probes are in trap.asm).
#include "tests/guests/lib/guest.h"

extern "C" void trap_install();
extern "C" uint32_t trap_rdpmc(uint32_t counter, uint64_t* value);
extern "C" volatile uint32_t trap_last_vector, trap_last_error;
extern "C" uint32_t trap_call(void (*fn)(void*), void* ctx);

Fault probe_call(void (*fn)(void*), void* ctx) {
  trap_install();
  Fault f{};
  if (trap_call(fn, ctx)) {
    f.raised = true;
    f.vector = static_cast<uint8_t>(trap_last_vector);
    f.error_code = trap_last_error;
  }
  return f;
}

Fault try_rdpmc(uint32_t counter, uint64_t* value) {
  trap_install();
  Fault f{};
  if (trap_rdpmc(counter, value)) {
    f.raised = true;
    f.vector = static_cast<uint8_t>(trap_last_vector);
    f.error_code = trap_last_error;
  }
  return f;
}

// An exception outside a probe: without the library's IDT it would have been a triple fault.
extern "C" [[noreturn]] void trap_unexpected(uint32_t vector, uint32_t error_code, uint32_t eip) {
  gprintf("%s: FAIL: unexpected exception %u (error code 0x%x) at eip 0x%x\n", guest_name, vector, error_code, eip);
  guest_exit(1);
}
