// The guest's firmware tables: ACPI (RSDP, RSDT, XSDT, FADT, FACS, MADT, DSDT) and an Intel
// MultiProcessor table (MP specification 1.4), built by hv for every multiboot guest. Pure
// code: one builder writes the whole area into a byte buffer; the loader side
// (hv/devices/acpi.cpp) copies it into the guest; the host unit tests check every table
// (tests/unit/acpi_tables_test.cpp). Layouts from the ACPI specification 6.x (sections 5.2.5
// RSDP, 5.2.7 RSDT, 5.2.8 XSDT, 5.2.9 FADT, 5.2.10 FACS, 5.2.12 MADT, 20 AML) and the MP
// specification 1.4 (chapter 4); the code is ours.
//
// Where it goes: one area of kAcpiAreaBytes at guest-physical kAcpiAreaGpa (0xF0000), in the
// PC's BIOS area 0xE0000-0xFFFFF, which the multiboot memory map reports as reserved (inside
// the 640K-1M hole, hv/multiboot_info.h) and which slot 0 backs with RAM, so the guest reads it
// like ROM but nothing hv places (image information, modules) ever lands there. The RSDP sits
// at the area's start and the MP floating pointer right after it, both 16-byte aligned, where
// guests search (ACPI: 0xE0000-0xFFFFF; MP: 0xF0000-0xFFFFF); the tables follow.
//
// What the tables say (docs/guest-platform.md section 10):
//   RSDP   revision 2, RSDT and XSDT addresses, both checksums
//   XSDT/RSDT  FADT, MADT (the FACS and the DSDT are reached through the FADT)
//   FADT   revision 6 (276 bytes): not hardware-reduced; PM1a event block kPm1aEvtPort (4
//          bytes), PM1a control block kPm1aCntPort (2), 32-bit PM timer kPmTmrPort; SCI on
//          IRQ kSciIrq; SMI_CMD 0 (the machine is in ACPI mode from reset: SCI_EN is set);
//          reset register port 0xCF9 value 6; IAPC_BOOT_ARCH legacy devices, no 8042, no VGA;
//          flags WBINVD, C1 on all CPUs, no fixed power/sleep buttons, 32-bit timer, reset
//          register supported; no GPE blocks, no C2/C3
//   FACS   64 bytes, no waking vector (no S3/S4), no global lock users
//   MADT   local APIC 0xFEE00000, PCAT_COMPAT; one enabled local APIC per vCPU (processor UID =
//          APIC ID = vCPU index), the I/O APIC (ID = vCPU count, 0xFEC00000, GSI base 0),
//          overrides ISA IRQ0 -> GSI 2 and IRQ9 (SCI) -> GSI 9 level/active high, local APIC
//          NMI on LINT1 of every processor
//   DSDT   AML: Name (_S5, Package () {kSlpTypS5, kSlpTypS5, 0, 0}) and nothing else
//   MP     floating pointer + configuration table: a processor per vCPU (vCPU 0 the BSP),
//          bus 0 "ISA", the I/O APIC, ISA IRQs 0-15 but 2 on I/O APIC pins (IRQ0 on pin 2,
//          IRQ9 level/active high), ExtINT on LINT0 and NMI on LINT1 of every local APIC
// No HPET, SRAT, SLIT, MCFG, SSDT, no PCI routing (_PRT), no processor objects in the DSDT.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "arch/x86/acpi_layout.h"

namespace hv::acpi {

// Placement (guest-physical).
inline constexpr uint64_t kAcpiAreaGpa = 0xF0000;
inline constexpr uint64_t kAcpiAreaBytes = 0x1000;
inline constexpr uint64_t kBiosAreaStart = 0xE0000, kBiosAreaEnd = 0x100000;
static_assert(kAcpiAreaGpa >= kBiosAreaStart && kAcpiAreaGpa + kAcpiAreaBytes <= kBiosAreaEnd);
static_assert(kAcpiAreaGpa >= 0xF0000, "the MP floating pointer must be in 0xF0000-0xFFFFF");

// The platform the tables describe.
inline constexpr uint32_t kLapicGpa = 0xFEE00000, kIoapicGpa = 0xFEC00000;
inline constexpr uint16_t kPm1aEvtPort = 0x600;  // PM1_STS (2 bytes), PM1_EN (2 bytes)
inline constexpr uint16_t kPm1aCntPort = 0x604;  // PM1_CNT (2 bytes)
inline constexpr uint16_t kPmTmrPort = 0x608;    // PM_TMR (4 bytes, 32-bit)
inline constexpr uint16_t kPmPortsBase = 0x600, kPmPortsCount = 12;
inline constexpr uint8_t kSciIrq = 9;
inline constexpr uint8_t kSlpTypS5 = 5;   // the SLP_TYP value of \_S5 (both PM1a and PM1b)
inline constexpr uint16_t kResetPort = 0xCF9;
inline constexpr uint8_t kResetValue = 0x06;
inline constexpr unsigned kMaxCpus = 64;  // the builder's bound; hv has at most kMaxVcpus
// The I/O APIC's ID: after the local APIC IDs 0..vcpus-1, so the two never collide.
inline constexpr uint8_t ioapic_id(unsigned vcpus) { return static_cast<uint8_t>(vcpus); }

struct Config {
  unsigned vcpus = 1;
  uint32_t cpu_signature = 0;  // CPUID.1 EAX, for the MP processor entries
  uint32_t cpu_features = 0;   // CPUID.1 EDX
};

// Where each table lies, as offsets into the area (its first byte at kAcpiAreaGpa).
struct Layout {
  uint32_t rsdp, mp_float, mp_config, facs, rsdt, xsdt, fadt, madt, dsdt;
  uint32_t mp_config_bytes, fadt_bytes, madt_bytes, dsdt_bytes;
  uint32_t bytes;  // used, from 0
};

// Builds the area into buf (at least kAcpiAreaBytes; zeroed first). nullptr, or why not
// (no vCPU, too many).
const char* build(const Config& c, uint8_t* buf, size_t cap, Layout* out);

// The sum of `n` bytes, modulo 256 (every ACPI/MP checksum makes it 0).
uint8_t sum8(const uint8_t* p, size_t n);

// The table layouts are the architecture's (arch/x86/acpi_layout.h).
using x86::acpi::Rsdp;
using x86::acpi::SdtHeader;
using x86::acpi::Gas;
using x86::acpi::Fadt;
using x86::acpi::Facs;
using x86::acpi::MadtHeader;
using x86::acpi::MadtLapic;
using x86::acpi::MadtIoapic;
using x86::acpi::MadtOverride;
using x86::acpi::MadtLapicNmi;
using x86::acpi::kFadtWbinvd;
using x86::acpi::kFadtProcC1;
using x86::acpi::kFadtPwrButton;
using x86::acpi::kFadtSlpButton;
using x86::acpi::kFadtTmrValExt;
using x86::acpi::kFadtResetRegSup;
using x86::acpi::kBootArchLegacyDevices;
using x86::acpi::kBootArch8042;
using x86::acpi::kBootArchNoVga;

inline constexpr uint16_t kIntiActiveHighLevel = 0x1 | (0x3 << 2);

// MP specification 1.4, 4.1 and 4.2.
struct [[gnu::packed]] MpFloating {
  char signature[4];  // "_MP_"
  uint32_t config;    // the configuration table
  uint8_t length;     // in 16-byte units: 1
  uint8_t spec_rev;   // 4
  uint8_t checksum;
  uint8_t feature[5];  // all 0: a configuration table is present, virtual wire mode (no IMCR)
};
static_assert(sizeof(MpFloating) == 16);
struct [[gnu::packed]] MpConfigHeader {
  char signature[4];  // "PCMP"
  uint16_t length;    // base table
  uint8_t spec_rev;   // 4
  uint8_t checksum;
  char oem_id[8];
  char product_id[12];
  uint32_t oem_table;
  uint16_t oem_table_size;
  uint16_t entry_count;
  uint32_t lapic_address;
  uint16_t ext_length;
  uint8_t ext_checksum;
  uint8_t reserved;
};
static_assert(sizeof(MpConfigHeader) == 44);
struct [[gnu::packed]] MpProcessor {
  uint8_t type;  // 0
  uint8_t lapic_id, lapic_version;
  uint8_t flags;  // bit 0 enabled, bit 1 bootstrap processor
  uint32_t signature, features;
  uint8_t reserved[8];
};
struct [[gnu::packed]] MpBus {
  uint8_t type;  // 1
  uint8_t id;
  char bus_type[6];
};
struct [[gnu::packed]] MpIoapic {
  uint8_t type;  // 2
  uint8_t id, version, flags;  // flags bit 0 usable
  uint32_t address;
};
struct [[gnu::packed]] MpInterrupt {
  uint8_t type;      // 3 I/O interrupt assignment, 4 local interrupt assignment
  uint8_t int_type;  // 0 INT, 1 NMI, 2 SMI, 3 ExtINT
  uint16_t flags;    // polarity and trigger, as the MADT's
  uint8_t src_bus, src_irq, dst_id, dst_pin;  // dst_id 0xFF: every local APIC
};
static_assert(sizeof(MpProcessor) == 20 && sizeof(MpBus) == 8 && sizeof(MpIoapic) == 8 && sizeof(MpInterrupt) == 8);

}  // namespace hv::acpi
