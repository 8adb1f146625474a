// Power-off sequence (see power.h).
#include "arch/x86/power.h"

#include "arch/x86/apic.h"
#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/percpu.h"
#include "arch/x86/serial.h"

namespace x86::power {
namespace {

constexpr uint16_t kSlpEn = 1 << 13;
constexpr uint16_t kSciEn = 1 << 0;

bool g_have_acpi = false;
uint16_t g_pm1a = 0, g_pm1b = 0;
uint8_t g_typ_a = 0, g_typ_b = 0;
uint16_t g_smi_cmd = 0;
uint8_t g_acpi_enable = 0;
uint32_t g_owner = 0;  // CPU index + 1 of the CPU powering off

void delay_loop(unsigned n) {
  for (unsigned i = 0; i < n; i++) x86::inb(0x80);  // ~1 us per port 0x80 read on real hardware
}

void pm1_sleep(uint16_t port, uint8_t typ) {
  if (!port) return;
  uint16_t v = x86::inw(port);
  v = static_cast<uint16_t>((v & ~(7u << 10)) | (uint16_t{typ} << 10) | kSlpEn);
  x86::outw(port, v);
}

}  // namespace

void configure(const acpi::Info& acpi) {
  if (!acpi.have_fadt || !acpi.pm1a_cnt) return;
  g_have_acpi = true;
  g_pm1a = acpi.pm1a_cnt;
  g_pm1b = acpi.pm1b_cnt;
  // Without a readable \_S5 the usual value (0, as on QEMU and Bochs) is the best guess.
  g_typ_a = acpi.have_s5 ? acpi.slp_typ_a : 0;
  g_typ_b = acpi.have_s5 ? acpi.slp_typ_b : 0;
  g_smi_cmd = acpi.smi_cmd;
  g_acpi_enable = acpi.acpi_enable;
}

bool shutdown_elsewhere() {
  const uint32_t owner = __atomic_load_n(&g_owner, __ATOMIC_ACQUIRE);
  return owner != 0 && owner != x86::cpu_index() + 1;
}

void off(uint8_t status) {
  x86::cli();
  const uint32_t me = x86::cpu_index() + 1;
  uint32_t expected = 0;
  if (!__atomic_compare_exchange_n(&g_owner, &expected, me, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
      expected != me)
    x86::halt_forever();  // another CPU is already powering off
  if (apic::enabled()) apic::send_nmi_all_but_self();
  log::plain("power off (status 0x%x)", status);
  x86::serial::drain();

  x86::outb(0xF4, status);  // QEMU isa-debug-exit: the process ends here when present

  if (g_have_acpi) {
    // Firmware that boots in legacy mode wants ACPI mode switched on through the SMI port.
    if (!(x86::inw(g_pm1a) & kSciEn) && g_smi_cmd && g_acpi_enable) {
      x86::outb(g_smi_cmd, g_acpi_enable);
      for (unsigned i = 0; i < 3000 && !(x86::inw(g_pm1a) & kSciEn); i++) delay_loop(100);
    }
    pm1_sleep(g_pm1a, g_typ_a);
    pm1_sleep(g_pm1b, g_typ_b);
    delay_loop(10000);
  } else {
    x86::outw(0x604, 0x2000);   // QEMU i440fx/PIIX4 PM block as SeaBIOS sets it up
    x86::outw(0xB004, 0x2000);  // Bochs BIOS PM block
  }
  for (const char* s = "Shutdown"; *s; s++) x86::outb(0x8900, static_cast<uint8_t>(*s));
  x86::halt_forever();
}

}  // namespace x86::power
