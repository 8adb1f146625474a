// Exception frames, recorded (frames.asm): an IDT at an address the guest chooses whose gates
// log what the CPU pushed, and instruction sequences with known addresses for the debug tests.
// Used by guest-events (tests/guests/guest_events.cpp). CPL 0, one vCPU.
#pragma once

#include <stdint.h>

struct Frame {
  uint32_t vector;
  uint32_t error_code;
  uint32_t eip;
  uint32_t eflags;  // as pushed (RF is bit 16)
  uint32_t dr6;     // DR6 when the handler ran
  uint32_t where;   // linear address of the pushed EIP
};
static_assert(sizeof(Frame) == 24, "frames.asm FRAME_SIZE");

extern "C" {
extern volatile uint32_t frame_count;
extern volatile uint32_t frame_db_steps;  // #DBs until the handler clears TF (1: the first)
extern Frame frame_log[16];
void frames_install(void* idt);
void frames_load(void* idt);
uint32_t frames_call(void (*fn)(void*), void* ctx);
void frames_ud_on_stack(uint32_t new_esp);
void frames_step_new_stack(uint32_t new_esp, uint32_t zap);
void frames_step_after_zap(uint32_t zap);
void frames_step_cpuid();
void frames_step_out();
void frames_step_three();
void frames_bp_nop();
void frames_bp_cpuid();
void frames_store(uint32_t* p, uint32_t v);
void frames_int80();
extern char frames_ud_insn[], frames_step_new_stack_after[], frames_step_after_zap_after[];
extern char frames_step_cpuid_after[], frames_step_out_after[], frames_step3_a[], frames_step3_b[], frames_step3_c[];
extern char frames_bp_nop_insn[], frames_bp_cpuid_insn[], frames_store_after[];
}

template <class F>
uint32_t frames_probe(F fn) {
  return frames_call([](void* c) { (*static_cast<F*>(c))(); }, &fn);
}
