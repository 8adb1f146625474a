// Exits caused by events rather than instructions: interrupts, NMIs, exceptions, the
// preemption timer, the interrupt and NMI windows, triple faults, INIT and SIPI, and failed VM
// entries.
#include "arch/x86/cpu.h"
#include "arch/x86/idt.h"
#include "arch/x86/vmx/dump.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"
#include "hv/cpu_work.h"
#include "hv/event_inject.h"
#include "hv/exit.h"
#include "hv/vcpu.h"

extern "C" void interrupt_dispatch(x86::idt::InterruptFrame* frame);  // arch/x86/idt.cpp

namespace hv {

using namespace x86::vmx;

// An external interrupt arrived while the guest ran: this CPU's tick (its slice is over) or a
// kick IPI (a flush request, a VM stop). Without "acknowledge interrupt on exit" it is still
// pending in the LAPIC: open a one-instruction interrupt window so that the host's IDT handler
// takes it (and sends the EOI), then serve any request it carried. The vCPU loop's safe point
// before the next entry does the rest (new slice, stop request, time budget).
// With "acknowledge interrupt on exit" (the hardware APIC path, hv/apicv.h) the CPU has already
// acknowledged it and the exit carries its vector: hv runs the handler its IDT would run, with
// interrupts off as through an interrupt gate (the handler sends the EOI).
void handle_external_interrupt(Vcpu& vcpu, const ExitInfo&) {
  const uint64_t info = vmread(field::kExitInterruptionInfo);
  if (info & (1u << 31)) {
    vcpu.apicv.acked_exits++;
    x86::idt::InterruptFrame frame{};
    frame.vector = info & 0xFF;
    frame.rip = vmread(field::kGuestRip);
    interrupt_dispatch(&frame);
  } else {
    asm volatile("sti; nop; cli" ::: "memory");
  }
  cpu_work::service();
}

// With an exception bitmap of 0 only NMIs land here ("NMI exiting"). The NMI was consumed by
// the exit, so hand it to the host's NMI handler (the panic path uses NMIs to stop CPUs).
void handle_exception_or_nmi(Vcpu& vcpu, const ExitInfo&) {
  const uint64_t info = vmread(field::kExitInterruptionInfo);
  const unsigned type = (info >> 8) & 7, vector = info & 0xFF;
  if (type == 2 && vector == 2) {
    asm volatile("int $2" ::: "memory");
    return;
  }
  dump_vmcs("unexpected exception exit");
  vcpu.stop(true, "unexpected exception exit: vector %u type %u", vector, type);
}

// The timer only bounds how long the guest runs without an exit; the vCPU loop checks the
// budget before the next entry. The VMCS value is reloaded at every entry ("save preemption
// timer value" is off), so nothing to rearm.
void handle_preemption_timer(Vcpu&, const ExitInfo&) {}

// The guest can take an interrupt now (RFLAGS.IF = 1, no shadow): the next entry injects it
// (hv/irq_inject.cpp sets and clears the control).
void handle_interrupt_window(Vcpu&, const ExitInfo&) {}

// The guest can take an NMI now (no virtual-NMI blocking, no MOV-SS shadow): the next entry
// injects it (hv/irq_inject.cpp sets and clears the control).
void handle_nmi_window(Vcpu& vcpu, const ExitInfo&) { vcpu.count_nmi_window(); }

// A SIPI arrived while the VMCS was in the wait-for-SIPI activity state (exit reason 4). hv
// never puts a VMCS into that state (hv/sipi_latch.h says why: its INIT/SIPI are virtual and
// wait in software), so only a physical SIPI after such a state could cause this; it is
// handled as a latched SIPI would be: the vector is in bits 7:0 of the qualification.
void handle_sipi(Vcpu& vcpu, const ExitInfo& e) { vcpu.sipi_exit(static_cast<uint8_t>(e.qualification & 0xFF)); }

void handle_fatal(Vcpu& vcpu, const ExitInfo& e) {
  const uint64_t rip = vmread(field::kGuestRip);
  if (e.reason & kExitReasonEntryFailure) {
    dump_vmcs("VM entry failed (guest state or MSR loading)");
    vcpu.stop(true, "VM entry failed: exit reason %u (%s), qualification 0x%lx", e.basic, exit_reason_name(e.basic),
              e.qualification);
    return;
  }
  if (e.basic == kExitTripleFault) {
    dump_vmcs("guest triple fault");
    // The CPU saves the event it was delivering when the fault that made the triple fault came
    // (typically the #DF): name it when the field is valid.
    const uint32_t vec = static_cast<uint32_t>(vmread(field::kIdtVectoringInfo));
    if (vec & event::kInfoValid) {
      vcpu.stop(true, "guest triple fault at rip 0x%lx (while delivering %s, vector %u)", rip,
                event::vector_name(event::info_vector(vec)), event::info_vector(vec));
      return;
    }
  }
  vcpu.stop(true, "guest %s at rip 0x%lx", exit_reason_name(e.basic), rip);
}

}  // namespace hv
