// The interrupt descriptor table and the C++ side of interrupt dispatch.
//
// One IDT serves all CPUs (it is read-only after init; per-CPU state is in the TSS). Vectors
// 0-31 are exceptions and go to the fatal exception handler (exception.cpp); other vectors go
// to a handler registered with set_handler(), or are reported as unexpected.
#pragma once

#include <stdint.h>

namespace hv::idt {

// The stack frame that boot/isr.asm builds (lowest address first).
struct InterruptFrame {
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
  uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
  uint64_t vector, error_code;
  uint64_t rip, cs, rflags, rsp, ss;  // pushed by the CPU
};

using Handler = void (*)(InterruptFrame* frame);

inline constexpr uint8_t kSpuriousVector = 0xFF;

// Builds the IDT (once, on the BSP).
void init();
// Loads it on the calling CPU.
void load_this_cpu();
// Routes vector (>= 32) to `handler`. The handler sends the EOI when its source needs one.
void set_handler(uint8_t vector, Handler handler);

// The fatal exception path (exception.cpp): prints everything and powers off with FAIL.
[[noreturn]] void fatal_exception(InterruptFrame* frame);

}  // namespace hv::idt
