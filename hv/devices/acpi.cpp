// A multiboot guest's ACPI tables and PM ports (see acpi.h).
#include "hv/devices/acpi.h"

#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/string.h"
#include "arch/x86/timer.h"
#include "hv/devices/acpi_tables.h"
#include "hv/vcpu.h"
#include "hv/vm.h"

namespace hv {

namespace {

uint8_t g_area[acpi::kAcpiAreaBytes];  // one VM is built at a time (the runner serializes it)

uint32_t pm_read(void* ctx, Vcpu& vcpu, uint16_t port, unsigned size) {
  // The guest's TSC: the host's minus the VM's origin (every vCPU's TSC offset, hv/msr_policy.h).
  const uint64_t guest_tsc = x86::rdtsc() - vcpu.vm().tsc_origin;
  return static_cast<AcpiPm*>(ctx)->read(port, size, guest_tsc, x86::timer::tsc_khz() * 1000);
}

void pm_write(void* ctx, Vcpu& vcpu, uint16_t port, unsigned size, uint32_t value) {
  AcpiPm& pm = *static_cast<AcpiPm*>(ctx);
  switch (pm.write(port, size, value)) {
    case AcpiPm::Action::none: break;
    case AcpiPm::Action::sleep_refused:
      x86::log::warn("vm%u: vcpu%u asked for ACPI sleep type %u: hv offers only S5 (soft off); ignored", vcpu.vm().id(),
                     vcpu.index(), pm.last_sleep_type());
      break;
    case AcpiPm::Action::power_off: {
      Vm& vm = vcpu.vm();
      vm.uart.flush();
      // Power-off is the guest's "exit 0": a result it reported before stands (a failure has
      // stopped the VM already).
      if (!vm.result_valid()) vm.report_result(0);
      vcpu.stop(false, "guest powered off (ACPI S5)");
      vcpu.finish_vm("guest powered off (ACPI S5)");
      break;
    }
  }
}

}  // namespace

const char* add_acpi(Vm& vm, unsigned vcpus) {
  acpi::Config c;
  c.vcpus = vcpus;
  const x86::CpuidResult id = x86::cpuid(1);
  c.cpu_signature = id.eax;
  c.cpu_features = id.edx;
  acpi::Layout l;
  if (const char* err = acpi::build(c, g_area, sizeof g_area, &l)) return err;
  const uint64_t hpa = vm.mmu().translate(acpi::kAcpiAreaGpa, l.bytes, true);
  if (!hpa) return "ACPI tables: the BIOS area 0xF0000 is not in guest RAM";
  memcpy(reinterpret_cast<void*>(hpa), g_area, l.bytes);
  vm.acpi_rsdp_gpa = acpi::kAcpiAreaGpa + l.rsdp;
  vm.acpi_pm.reset();
  IoDevice d{};
  d.name = "acpi-pm";
  d.base = acpi::kPmPortsBase;
  d.count = acpi::kPmPortsCount;
  d.ctx = &vm.acpi_pm;
  d.read = pm_read;
  d.write = pm_write;
  if (const char* err = vm.io.claim(d)) return err;
  x86::log::info("vm%u: ACPI tables at [0x%lx, 0x%lx): RSDP 0x%lx, MP floating pointer 0x%lx; PM1a ports 0x%x-0x%x", vm.id(),
                 acpi::kAcpiAreaGpa, acpi::kAcpiAreaGpa + l.bytes, vm.acpi_rsdp_gpa, acpi::kAcpiAreaGpa + l.mp_float,
                 acpi::kPmPortsBase, acpi::kPmPortsBase + acpi::kPmPortsCount - 1);
  return nullptr;
}

}  // namespace hv
