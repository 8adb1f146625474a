// The interrupt descriptor table and the C++ side of interrupt dispatch.
//
// Each CPU has its own IDT, copied from a template built once on the BSP: a CPU's table is
// written only by that CPU, before it loads it, so no CPU ever reads a gate another one is
// writing, and per-CPU IST stacks (in each CPU's TSS) stay a per-CPU matter. The VMCS host
// IDTR of a CPU is read with SIDT on that CPU. Vectors 0-31 are exceptions and go to the fatal exception handler (exception.cpp); other vectors go
// to a handler registered with set_handler(), or are reported as unexpected.
#pragma once

#include <stdint.h>

namespace x86::idt {

// The stack frame that boot/isr.asm builds (lowest address first).
struct InterruptFrame {
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
  uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
  uint64_t vector, error_code;
  uint64_t rip, cs, rflags, rsp, ss;  // pushed by the CPU
};

using Handler = void (*)(InterruptFrame* frame);

inline constexpr uint8_t kSpuriousVector = 0xFF;

// Builds the template IDT (once, on the BSP, before any CPU loads its own).
void init();
// Copies the template into the calling CPU's own IDT and loads that.
void load_this_cpu();
// Routes vector (>= 32) to `handler`. The handler sends the EOI when its source needs one.
void set_handler(uint8_t vector, Handler handler);

// The fatal exception path (exception.cpp): prints everything and powers off with FAIL.
[[noreturn]] void fatal_exception(InterruptFrame* frame);

}  // namespace x86::idt
