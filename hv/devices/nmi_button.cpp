// The VM's NMI button (see nmi_button.h).
#include "hv/devices/nmi_button.h"

#include "arch/x86/log.h"
#include "hv/cmdline.h"
#include "hv/irq.h"
#include "hv/vcpu.h"
#include "hv/vm.h"

namespace hv {

void nmi_button_start(Vm& vm, uint64_t now, uint64_t khz) {
  NmiButton& b = vm.nmi_button;
  b.period_ms = cmdline::get_number("hv.nmi-ms", 0);
  b.clock.start(now, b.period_ms * khz);
  b.presses.reset();
  b.nmis.reset();
  b.vectors.reset();
  b.inits.reset();
  b.ignored.reset();
}

void nmi_button_press(Vm& vm, int source_vcpu) {
  NmiButton& b = vm.nmi_button;
  const LintPulseResult r = apic_lint1_pulse(vm, source_vcpu);
  b.presses++;
  b.nmis += r.nmis;
  b.vectors += r.vectors;
  b.inits += r.inits;
  b.ignored += r.ignored;
}

void nmi_button_poll(Vcpu& vcpu, uint64_t now) {
  Vm& vm = vcpu.vm();
  uint64_t elapsed = 0;
  if (vm.nmi_button.clock.claim(now, &elapsed)) nmi_button_press(vm, static_cast<int>(vcpu.index()));
}

void nmi_button_finish(Vm& vm) {
  const NmiButton& b = vm.nmi_button;
  if (!b.armed()) return;
  x86::log::info("vm%u: nmi button: %lu presses (hv.nmi-ms=%lu): %lu NMIs, %lu vectors, %lu INITs, %lu masked or ignored",
                 vm.id(), b.presses.get(), b.period_ms, b.nmis.get(), b.vectors.get(), b.inits.get(), b.ignored.get());
}

}  // namespace hv
