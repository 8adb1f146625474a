// Port I/O exits: the guest console (0xE9) and result (0x500) ports; for multiboot guests
// (Vm::devices) also the 16550 at 0x3F8 (hv/uart.h) and the exit port 0xF4 (the value written
// is the guest's exit status, as with QEMU's isa-debug-exit). Everything else reads as all
// ones and ignores writes, like an empty ISA bus.
#include "arch/x86/log.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"
#include "hv/exit.h"
#include "hv/guest_abi.h"
#include "hv/vcpu.h"
#include "hv/vm.h"

namespace hv {

using namespace x86::vmx;

namespace {
constexpr uint16_t kExitPort = 0xF4;
}  // namespace

void handle_io(Vcpu& vcpu, const ExitInfo& e) {
  const uint64_t q = e.qualification;
  if (io_qual::is_string(q)) {
    vcpu.stop(true, "string I/O (INS/OUTS) on port 0x%x is not supported", io_qual::port(q));
    return;
  }
  const unsigned size = io_qual::size(q);
  const uint64_t mask = size == 4 ? 0xFFFFFFFFull : (1ull << (8 * size)) - 1;
  const uint16_t port = io_qual::port(q);
  Vm& vm = vcpu.vm();
  if (vm.devices && Uart::claims(port)) {
    if (io_qual::is_in(q)) {
      const uint64_t v = vm.uart.read(port);
      vcpu.regs.rax = size == 4 ? v : (vcpu.regs.rax & ~mask) | v;
    } else {
      vm.uart.write(port, static_cast<uint8_t>(vcpu.regs.rax));
    }
    vcpu.skip_instruction();
    return;
  }
  if (vm.devices && port == kExitPort && !io_qual::is_in(q)) {
    const uint64_t v = vcpu.regs.rax & mask;
    vm.uart.flush();
    // As HV_CALL_EXIT: only vCPU 0's status (or a failure of any vCPU) is the VM's result.
    if (vcpu.index() == 0 || v != 0) vm.report_result(static_cast<uint32_t>(v));
    vcpu.skip_instruction();
    vcpu.stop(v != 0, "guest exited through port 0xf4 with status %lu", v);
    return;
  }
  if (io_qual::is_in(q)) {
    // IN writes AL/AX/EAX; a 32-bit IN zero-extends into RAX like any 32-bit register write.
    if (size == 4) vcpu.regs.rax = mask;
    else vcpu.regs.rax = (vcpu.regs.rax & ~mask) | mask;
  } else {
    const uint64_t v = vcpu.regs.rax & mask;
    if (port == guest_abi::kConsolePort) {
      // The vCPU's own line buffer (Vcpu::console_put: single writer, this CPU).
      vcpu.console_put(static_cast<uint8_t>(v));
    } else if (port == guest_abi::kResultPort) {
      vm.report_result(static_cast<uint32_t>(v));
      vcpu.skip_instruction();
      vcpu.stop(v != 0, "guest reported result %lu (%s)", v, v == 0 ? "pass" : "failure");
      return;
    }
  }
  vcpu.skip_instruction();
}

}  // namespace hv
