// The fatal exception handler: every CPU exception (vectors 0-31) ends the run.
//
// It prints the vector and its name, the error code, RIP/CS/RFLAGS/RSP/SS, the control
// registers (CR2 is the faulting address of a #PF), all general registers and a stack trace
// that follows the frame-pointer chain (the kernel is built with -fno-omit-frame-pointer),
// then "hv: result: FAIL exception <n>" and powers off with the FAIL status. An NMI that
// arrives while another CPU is powering off (power::off) is its "stop" request: the receiver
// halts quietly. So does a CPU that faults while another one is already dumping.
#include "arch/x86/cpu.h"
#include "arch/x86/idt.h"
#include "arch/x86/log.h"
#include "arch/x86/paging.h"
#include "arch/x86/percpu.h"
#include "arch/x86/power.h"
#include "arch/x86/exit_status.h"

namespace x86::idt {
namespace {

const char* const kNames[32] = {
    "#DE divide error",       "#DB debug",
    "NMI",                    "#BP breakpoint",
    "#OF overflow",           "#BR bound range",
    "#UD invalid opcode",     "#NM device not available",
    "#DF double fault",       "coprocessor segment overrun",
    "#TS invalid TSS",        "#NP segment not present",
    "#SS stack fault",        "#GP general protection",
    "#PF page fault",         "reserved 15",
    "#MF x87 FP error",       "#AC alignment check",
    "#MC machine check",      "#XM SIMD FP exception",
    "#VE virtualization",     "#CP control protection",
    "reserved 22",            "reserved 23",
    "reserved 24",            "reserved 25",
    "reserved 26",            "reserved 27",
    "#HV hypervisor injection", "#VC VMM communication",
    "#SX security",           "reserved 31",
};

uint32_t g_dying = 0;  // CPU index + 1 of the first CPU in the fatal path

}  // namespace

void fatal_exception(InterruptFrame* f) {
  if (f->vector == 2 && power::shutdown_elsewhere()) x86::halt_forever();  // the "stop" NMI
  const unsigned cpu = x86::cpu_index();
  const uint32_t me = cpu + 1;
  uint32_t expected = 0;
  if (!__atomic_compare_exchange_n(&g_dying, &expected, me, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    if (expected != me) x86::halt_forever();  // another CPU owns the shutdown (NMI stop)
    // A fault inside the fatal path itself: skip the dump, just stop.
    log::enter_panic_mode();
    log::plain("result: FAIL exception %lu (nested, in the exception handler)", f->vector);
    power::off(kExitFail);
  }
  log::enter_panic_mode();
  const uint64_t v = f->vector;
  log::error("exception %lu (%s) on cpu%u, error code 0x%lx", v, kNames[v & 31], cpu, f->error_code);
  log::error("  rip %016lx  cs %04lx  rflags %016lx  rsp %016lx  ss %04lx", f->rip, f->cs, f->rflags, f->rsp,
             f->ss);
  log::error("  cr0 %016lx  cr2 %016lx  cr3 %016lx  cr4 %016lx", x86::read_cr0(), x86::read_cr2(), x86::read_cr3(),
             x86::read_cr4());
  log::error("  rax %016lx  rbx %016lx  rcx %016lx  rdx %016lx", f->rax, f->rbx, f->rcx, f->rdx);
  log::error("  rsi %016lx  rdi %016lx  rbp %016lx  r8  %016lx", f->rsi, f->rdi, f->rbp, f->r8);
  log::error("  r9  %016lx  r10 %016lx  r11 %016lx  r12 %016lx", f->r9, f->r10, f->r11, f->r12);
  log::error("  r13 %016lx  r14 %016lx  r15 %016lx", f->r13, f->r14, f->r15);

  // Stack trace: [rbp] = caller's rbp, [rbp+8] = return address. Stop at rbp == 0 (the boot
  // code clears it), at anything unmapped or misaligned, or when the chain goes downwards.
  log::error("  stack trace (addr2line -e build/kernel/hv/hv.elf <addresses>):");
  log::error("    #0  %016lx", f->rip);
  uint64_t rbp = f->rbp;
  for (unsigned depth = 1; depth < 24 && rbp; depth++) {
    if ((rbp & 7) || rbp < 0x1000 || !paging::is_mapped(rbp, 16)) {
      log::error("    (frame pointer %016lx not followed)", rbp);
      break;
    }
    const uint64_t* frame = reinterpret_cast<const uint64_t*>(rbp);
    const uint64_t ret = frame[1];
    if (!ret) break;
    log::error("    #%-2u %016lx", depth, ret);
    const uint64_t next = frame[0];
    if (next && next <= rbp) break;
    rbp = next;
  }
  log::plain("result: FAIL exception %lu", v);
  power::off(kExitFail);
}

}  // namespace x86::idt
