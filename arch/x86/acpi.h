// ACPI tables hv reads: the RSDP, the RSDT/XSDT, the MADT (CPU enumeration, LAPIC/IOAPIC
// addresses) and the FADT + DSDT (the PM1 control ports and the \_S5 sleep type for power
// off). Nothing is interpreted beyond that: no AML interpreter.
#pragma once

#include <stdint.h>

#include "arch/x86/percpu.h"

namespace x86::acpi {

struct Info {
  bool have_rsdp = false;
  const char* rsdp_source = "none";  // "multiboot2 tag 15", "multiboot2 tag 14", "EBDA", "BIOS area"
  uint8_t revision = 0;
  char oem_id[7] = {};
  bool xsdt = false;  // root table in use: XSDT (64-bit pointers) or RSDT

  // MADT.
  bool have_madt = false;
  uint64_t lapic_address = 0xFEE00000;
  uint32_t apic_ids[x86::kMaxCpus] = {};
  unsigned cpu_count = 0;          // enabled LAPIC + x2APIC entries (capped at kMaxCpus)
  unsigned cpus_ignored = 0;       // enabled ones beyond kMaxCpus
  unsigned cpus_disabled = 0;      // present but not enabled (hot-plug slots)
  unsigned ioapic_count = 0;
  uint64_t ioapic_address = 0;

  // FADT / DSDT.
  bool have_fadt = false;
  uint16_t pm1a_cnt = 0, pm1b_cnt = 0;  // I/O ports, 0 when absent
  bool have_s5 = false;
  uint8_t slp_typ_a = 0, slp_typ_b = 0;
  uint16_t smi_cmd = 0;
  uint8_t acpi_enable = 0;

  // FADT RESET_REG / RESET_VALUE, valid when the FADT flag RESET_REG_SUP (bit 10) is set and
  // the table is long enough to hold them (ACPI 2.0+). space: 0 memory, 1 I/O, 2 PCI config.
  bool have_reset_reg = false;
  uint8_t reset_space = 0;
  uint64_t reset_address = 0;
  uint8_t reset_value = 0;
};

// rsdp_copy: the RSDP copy from the multiboot2 information (or nullptr; then the BIOS areas
// are scanned). Returns nullptr when at least the RSDP was found, else a reason.
const char* init(const void* rsdp_copy, unsigned rsdp_tag, Info& out);

}  // namespace x86::acpi
