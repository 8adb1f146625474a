// Power-off and reset sequences (see power.h).
#include "arch/x86/power.h"

#include "arch/x86/apic.h"
#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/paging.h"
#include "arch/x86/percpu.h"
#include "arch/x86/serial.h"

namespace x86::power {
namespace {

constexpr uint16_t kSlpEn = 1 << 13;
constexpr uint16_t kSciEn = 1 << 0;

bool g_have_acpi = false;
uint16_t g_pm1a = 0, g_pm1b = 0;
uint8_t g_typ_a = 0, g_typ_b = 0;
bool g_have_s5 = false;
uint16_t g_smi_cmd = 0;
uint8_t g_acpi_enable = 0;
bool g_have_reset_reg = false;
uint8_t g_reset_space = 0;
uint64_t g_reset_address = 0;
uint8_t g_reset_value = 0;
Method g_method = Method::automatic;
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

// Claims the shutdown for this CPU, or halts when another CPU has it; stops the others.
void claim() {
  x86::cli();
  const uint32_t me = x86::cpu_index() + 1;
  uint32_t expected = 0;
  if (!__atomic_compare_exchange_n(&g_owner, &expected, me, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
      expected != me)
    x86::halt_forever();  // another CPU is already powering off
  if (apic::enabled()) apic::send_nmi_all_but_self();
}

void acpi_s5() {
  // Firmware that boots in legacy mode wants ACPI mode switched on through the SMI port
  // (SCI_EN set by the firmware's SMI handler); SLP_EN is ignored until then on some chipsets.
  if (!(x86::inw(g_pm1a) & kSciEn) && g_smi_cmd && g_acpi_enable) {
    x86::outb(g_smi_cmd, g_acpi_enable);
    for (unsigned i = 0; i < 3000 && !(x86::inw(g_pm1a) & kSciEn); i++) delay_loop(100);
  }
  pm1_sleep(g_pm1a, g_typ_a);
  pm1_sleep(g_pm1b, g_typ_b);
  delay_loop(100000);  // ~100 ms: the chipset powers down asynchronously
}

// PCI configuration write of one byte through mechanism #1 (ports 0xCF8/0xCFC). The GAS
// address of a PCI-config reset register is device << 32 | function << 16 | offset, bus 0.
void pci_config_write8(uint64_t gas_address, uint8_t value) {
  const uint32_t dev = (gas_address >> 32) & 0x1F, fn = (gas_address >> 16) & 7, off = gas_address & 0xFF;
  x86::outl(0xCF8, 0x80000000u | (dev << 11) | (fn << 8) | (off & 0xFC));
  x86::outb(static_cast<uint16_t>(0xCFC + (off & 3)), value);
}

}  // namespace

void configure(const acpi::Info& acpi) {
  g_have_reset_reg = acpi.have_reset_reg;
  g_reset_space = acpi.reset_space;
  g_reset_address = acpi.reset_address;
  g_reset_value = acpi.reset_value;
  if (!acpi.have_fadt || !acpi.pm1a_cnt) return;
  g_have_acpi = true;
  g_pm1a = acpi.pm1a_cnt;
  g_pm1b = acpi.pm1b_cnt;
  // Without a readable \_S5 the usual value (0, as on QEMU and Bochs) is the best guess.
  g_have_s5 = acpi.have_s5;
  g_typ_a = acpi.have_s5 ? acpi.slp_typ_a : 0;
  g_typ_b = acpi.have_s5 ? acpi.slp_typ_b : 0;
  g_smi_cmd = acpi.smi_cmd;
  g_acpi_enable = acpi.acpi_enable;
}

void set_method(Method m) { g_method = m; }

bool shutdown_elsewhere() {
  const uint32_t owner = __atomic_load_n(&g_owner, __ATOMIC_ACQUIRE);
  return owner != 0 && owner != x86::cpu_index() + 1;
}

void off(uint8_t status) {
  if (g_method == Method::reset) reset(status);
  claim();
  log::plain("power off (status 0x%x)", status);
  x86::serial::drain();

  if (g_method == Method::automatic) x86::outb(0xF4, status);  // QEMU isa-debug-exit: ends here when present

  if (g_have_acpi) {
    log::plain("power off via ACPI S5 (PM1a_CNT 0x%x, PM1b_CNT 0x%x, SLP_TYP %u/%u%s)", g_pm1a, g_pm1b, g_typ_a, g_typ_b,
               g_have_s5 ? "" : ", guessed: no \\_S5 in the DSDT");
    x86::serial::drain();
    acpi_s5();
    log::plain("power off: ACPI S5 did not take effect");
    x86::serial::drain();
  }
  if (!g_have_acpi) {
    x86::outw(0x604, 0x2000);   // QEMU i440fx/PIIX4 PM block as SeaBIOS sets it up
    x86::outw(0xB004, 0x2000);  // Bochs BIOS PM block
  }
  for (const char* s = "Shutdown"; *s; s++) x86::outb(0x8900, static_cast<uint8_t>(*s));
  log::plain("power off failed: halting (switch the machine off)");
  x86::serial::drain();
  x86::halt_forever();
}

void reset(uint8_t status) {
  claim();
  if (g_have_reset_reg) {
    log::plain("reset (status 0x%x) via ACPI RESET_REG (%s 0x%lx, value 0x%x)", status,
               g_reset_space == 0 ? "memory" : g_reset_space == 1 ? "I/O" : "PCI config", g_reset_address,
               g_reset_value);
    x86::serial::drain();
    if (g_reset_space == 1 && g_reset_address <= 0xFFFF)
      x86::outb(static_cast<uint16_t>(g_reset_address), g_reset_value);
    else if (g_reset_space == 0 && paging::is_mapped(g_reset_address, 1))
      *reinterpret_cast<volatile uint8_t*>(g_reset_address) = g_reset_value;
    else if (g_reset_space == 2)
      pci_config_write8(g_reset_address, g_reset_value);
    delay_loop(50000);
  } else {
    log::plain("reset (status 0x%x) via port 0xCF9 (no ACPI RESET_REG)", status);
    x86::serial::drain();
  }
  // The PCI reset control register of Intel chipsets: bit 1 system reset, bit 2 do it (a
  // 0 -> 1 edge), bit 3 full reset (power cycle).
  x86::outb(0xCF9, 0x02);
  delay_loop(10);
  x86::outb(0xCF9, 0x06);
  delay_loop(50000);
  // The keyboard controller's "pulse output port bit 0" command pulls the CPU's reset line.
  for (unsigned i = 0; i < 100000 && (x86::inb(0x64) & 2); i++) delay_loop(1);
  x86::outb(0x64, 0xFE);
  delay_loop(50000);
  // Last resort: a triple fault (no IDT, then an exception).
  struct [[gnu::packed]] {
    uint16_t limit;
    uint64_t base;
  } const empty_idt{0, 0};
  asm volatile("lidt %0; int3" ::"m"(empty_idt));
  x86::halt_forever();
}

}  // namespace x86::power
