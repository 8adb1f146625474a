// The guest's ACPI and MP tables (see acpi_tables.h).
#include "hv/devices/acpi_tables.h"

namespace hv::acpi {

namespace {

constexpr char kOemId[6] = {'H', 'V', 'T', 'D', 'P', ' '};
constexpr char kOemTableId[8] = {'H', 'V', 'G', 'U', 'E', 'S', 'T', ' '};
constexpr char kCreatorId[4] = {'H', 'V', ' ', ' '};

void copy(void* d, const void* s, size_t n) { __builtin_memcpy(d, s, n); }

uint32_t align16(uint32_t v) { return (v + 15) & ~15u; }

// A table header with everything but the checksum.
SdtHeader header(const char (&sig)[5], uint32_t length, uint8_t revision) {
  SdtHeader h{};
  copy(h.signature, sig, 4);
  h.length = length;
  h.revision = revision;
  copy(h.oem_id, kOemId, 6);
  copy(h.oem_table_id, kOemTableId, 8);
  h.oem_revision = 1;
  copy(h.creator_id, kCreatorId, 4);
  h.creator_revision = 1;
  return h;
}

// Makes the `n` bytes at p sum to 0 through the byte at p + at.
void fix_checksum(uint8_t* p, size_t n, size_t at) {
  p[at] = 0;
  p[at] = static_cast<uint8_t>(0x100 - sum8(p, n));
}

// The DSDT's AML (ACPI 6.x, chapter 20): one named object,
//   Name (_S5, Package (0x04) { kSlpTypS5, kSlpTypS5, Zero, Zero })
// which is what an OS reads to learn the SLP_TYP values of the soft-off state.
//   08               NameOp
//   5F 53 35 5F      NameSeg "_S5_"
//   12               PackageOp
//   08               PkgLength: 8 bytes (this byte, NumElements and the four elements)
//   04               NumElements
//   0A 05  0A 05     BytePrefix 5, BytePrefix 5   (SLP_TYPa, SLP_TYPb)
//   00  00           ZeroOp, ZeroOp               (reserved)
constexpr uint8_t kDsdtAml[] = {0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0A, kSlpTypS5, 0x0A, kSlpTypS5, 0x00, 0x00};
static_assert(kDsdtAml[6] == sizeof kDsdtAml - 6, "PkgLength counts itself and what follows");

Gas io_gas(uint16_t port, uint8_t bytes) {
  Gas g{};
  g.space = 1;  // system I/O
  g.bit_width = static_cast<uint8_t>(bytes * 8);
  g.access_size = bytes == 1 ? 1 : bytes == 2 ? 2 : 3;
  g.address = port;
  return g;
}

}  // namespace

uint8_t sum8(const uint8_t* p, size_t n) {
  uint8_t s = 0;
  for (size_t i = 0; i < n; i++) s = static_cast<uint8_t>(s + p[i]);
  return s;
}

const char* build(const Config& c, uint8_t* buf, size_t cap, Layout* out) {
  if (c.vcpus < 1 || c.vcpus > kMaxCpus) return "ACPI tables: the vCPU count must be 1 to 64";
  if (cap < kAcpiAreaBytes) return "ACPI tables: buffer too small";
  __builtin_memset(buf, 0, kAcpiAreaBytes);
  const unsigned n = c.vcpus;
  const uint32_t base = static_cast<uint32_t>(kAcpiAreaGpa);
  Layout l{};
  // The two structures guests search for first, 16-byte aligned, then the tables.
  l.rsdp = 0;
  l.mp_float = align16(l.rsdp + sizeof(Rsdp));
  l.mp_config = align16(l.mp_float + sizeof(MpFloating));
  const unsigned mp_irqs = 15;  // ISA IRQs 0-15 without 2 (the cascade)
  const unsigned mp_entries = n + 1 + 1 + mp_irqs + 2;
  l.mp_config_bytes = static_cast<uint32_t>(sizeof(MpConfigHeader) + n * sizeof(MpProcessor) + sizeof(MpBus) +
                                            sizeof(MpIoapic) + (mp_irqs + 2) * sizeof(MpInterrupt));
  l.facs = (l.mp_config + l.mp_config_bytes + 63) & ~63u;  // the FACS is 64-byte aligned
  l.rsdt = align16(l.facs + sizeof(Facs));
  const unsigned tables = 2;  // FADT, MADT
  l.xsdt = align16(l.rsdt + sizeof(SdtHeader) + 4 * tables);
  l.fadt = align16(l.xsdt + sizeof(SdtHeader) + 8 * tables);
  l.fadt_bytes = sizeof(Fadt);
  l.madt = align16(l.fadt + l.fadt_bytes);
  l.madt_bytes = static_cast<uint32_t>(sizeof(MadtHeader) + n * sizeof(MadtLapic) + sizeof(MadtIoapic) +
                                       2 * sizeof(MadtOverride) + sizeof(MadtLapicNmi));
  l.dsdt = align16(l.madt + l.madt_bytes);
  l.dsdt_bytes = static_cast<uint32_t>(sizeof(SdtHeader) + sizeof kDsdtAml);
  l.bytes = l.dsdt + l.dsdt_bytes;
  if (l.bytes > kAcpiAreaBytes) return "ACPI tables: the area is too small";

  // RSDP.
  Rsdp r{};
  copy(r.signature, "RSD PTR ", 8);
  copy(r.oem_id, kOemId, 6);
  r.revision = 2;
  r.rsdt = base + l.rsdt;
  r.length = sizeof(Rsdp);
  r.xsdt = base + l.xsdt;
  copy(buf + l.rsdp, &r, sizeof r);
  fix_checksum(buf + l.rsdp, 20, __builtin_offsetof(Rsdp, checksum));
  fix_checksum(buf + l.rsdp, sizeof(Rsdp), __builtin_offsetof(Rsdp, ext_checksum));

  // RSDT and XSDT: the same two tables.
  {
    const uint32_t len = sizeof(SdtHeader) + 4 * tables;
    SdtHeader h = header("RSDT", len, 1);
    copy(buf + l.rsdt, &h, sizeof h);
    const uint32_t entries[tables] = {base + l.fadt, base + l.madt};
    copy(buf + l.rsdt + sizeof h, entries, sizeof entries);
    fix_checksum(buf + l.rsdt, len, __builtin_offsetof(SdtHeader, checksum));
  }
  {
    const uint32_t len = sizeof(SdtHeader) + 8 * tables;
    SdtHeader h = header("XSDT", len, 1);
    copy(buf + l.xsdt, &h, sizeof h);
    const uint64_t entries[tables] = {base + l.fadt, base + l.madt};
    copy(buf + l.xsdt + sizeof h, entries, sizeof entries);
    fix_checksum(buf + l.xsdt, len, __builtin_offsetof(SdtHeader, checksum));
  }

  // FACS: no checksum; nothing to wake from, no global lock users.
  {
    Facs f{};
    copy(f.signature, "FACS", 4);
    f.length = sizeof(Facs);
    f.version = 2;
    copy(buf + l.facs, &f, sizeof f);
  }

  // FADT.
  {
    Fadt f{};
    f.h = header("FACP", sizeof(Fadt), 6);
    f.minor_version = 0;
    f.firmware_ctrl = base + l.facs;
    f.dsdt = base + l.dsdt;
    f.preferred_pm_profile = 0;  // unspecified
    f.sci_int = kSciIrq;
    f.smi_cmd = 0;  // no SMM: the machine is in ACPI mode from reset (PM1_CNT.SCI_EN = 1)
    f.pm1a_evt_blk = kPm1aEvtPort;
    f.pm1a_cnt_blk = kPm1aCntPort;
    f.pm_tmr_blk = kPmTmrPort;
    f.pm1_evt_len = 4;
    f.pm1_cnt_len = 2;
    f.pm_tmr_len = 4;
    f.p_lvl2_lat = 101;   // > 100: C2 not supported
    f.p_lvl3_lat = 1001;  // > 1000: C3 not supported
    f.century = 0x32;     // CMOS index of the century byte, as on a PC
    // No 8042 bit: hv's i8042 ports are only the reset line and the command byte, with no
    // keyboard or mouse behind them (hv/devices/reset.h). With the bit, Linux probes the
    // controller and its ports directly, and each command it sends waits out a timeout
    // (i8042 and atkbd probes: about 1.9 s of a 11 s boot in Bochs, 20,000 I/O exits).
    // Without it Linux leaves the ports alone (FADT revision >= 3); it resets through the
    // reset register (0xCF9), and a guest that writes 0xFE to port 0x64 still resets.
    f.iapc_boot_arch = kBootArchLegacyDevices | kBootArchNoVga;
    f.flags = kFadtWbinvd | kFadtProcC1 | kFadtPwrButton | kFadtSlpButton | kFadtTmrValExt | kFadtResetRegSup;
    f.reset_reg = io_gas(kResetPort, 1);
    f.reset_value = kResetValue;
    f.x_firmware_ctrl = base + l.facs;
    f.x_dsdt = base + l.dsdt;
    f.x_pm1a_evt_blk = io_gas(kPm1aEvtPort, 4);
    f.x_pm1a_cnt_blk = io_gas(kPm1aCntPort, 2);
    f.x_pm_tmr_blk = io_gas(kPmTmrPort, 4);
    // A GAS for a PM1 event block describes the whole block; its access size is "undefined"
    // (0) since the status and enable halves are 16-bit registers of their own.
    f.x_pm1a_evt_blk.access_size = 0;
    copy(buf + l.fadt, &f, sizeof f);
    fix_checksum(buf + l.fadt, sizeof f, __builtin_offsetof(SdtHeader, checksum));
  }

  // MADT.
  {
    uint8_t* p = buf + l.madt;
    MadtHeader m{};
    m.h = header("APIC", l.madt_bytes, 5);
    m.lapic_address = kLapicGpa;
    m.flags = 1;  // PCAT_COMPAT
    copy(p, &m, sizeof m);
    p += sizeof m;
    for (unsigned i = 0; i < n; i++) {
      const MadtLapic e{0, sizeof(MadtLapic), static_cast<uint8_t>(i), static_cast<uint8_t>(i), 1};
      copy(p, &e, sizeof e);
      p += sizeof e;
    }
    const MadtIoapic io{1, sizeof(MadtIoapic), ioapic_id(n), 0, kIoapicGpa, 0};
    copy(p, &io, sizeof io);
    p += sizeof io;
    const MadtOverride irq0{2, sizeof(MadtOverride), 0, 0, 2, 0};
    copy(p, &irq0, sizeof irq0);
    p += sizeof irq0;
    const MadtOverride sci{2, sizeof(MadtOverride), 0, kSciIrq, kSciIrq, kIntiActiveHighLevel};
    copy(p, &sci, sizeof sci);
    p += sizeof sci;
    const MadtLapicNmi nmi{4, sizeof(MadtLapicNmi), 0xFF, 0, 1};
    copy(p, &nmi, sizeof nmi);
    fix_checksum(buf + l.madt, l.madt_bytes, __builtin_offsetof(SdtHeader, checksum));
  }

  // DSDT.
  {
    SdtHeader h = header("DSDT", l.dsdt_bytes, 2);  // revision 2: 64-bit AML integers
    copy(buf + l.dsdt, &h, sizeof h);
    copy(buf + l.dsdt + sizeof h, kDsdtAml, sizeof kDsdtAml);
    fix_checksum(buf + l.dsdt, l.dsdt_bytes, __builtin_offsetof(SdtHeader, checksum));
  }

  // MP floating pointer and configuration table.
  {
    uint8_t* p = buf + l.mp_config;
    MpConfigHeader h{};
    copy(h.signature, "PCMP", 4);
    h.length = static_cast<uint16_t>(l.mp_config_bytes);
    h.spec_rev = 4;
    copy(h.oem_id, "HV      ", 8);
    copy(h.product_id, "HV GUEST    ", 12);
    h.entry_count = static_cast<uint16_t>(mp_entries);
    h.lapic_address = kLapicGpa;
    copy(p, &h, sizeof h);
    p += sizeof h;
    for (unsigned i = 0; i < n; i++) {
      MpProcessor e{};
      e.type = 0;
      e.lapic_id = static_cast<uint8_t>(i);
      e.lapic_version = 0x14;
      e.flags = static_cast<uint8_t>(1 | (i == 0 ? 2 : 0));
      e.signature = c.cpu_signature;
      e.features = c.cpu_features;
      copy(p, &e, sizeof e);
      p += sizeof e;
    }
    const MpBus bus{1, 0, {'I', 'S', 'A', ' ', ' ', ' '}};
    copy(p, &bus, sizeof bus);
    p += sizeof bus;
    const MpIoapic io{2, ioapic_id(n), 0x11, 1, kIoapicGpa};
    copy(p, &io, sizeof io);
    p += sizeof io;
    for (unsigned irq = 0; irq < 16; irq++) {
      if (irq == 2) continue;
      const uint16_t flags = irq == kSciIrq ? kIntiActiveHighLevel : 0;
      const MpInterrupt e{3, 0, flags, 0, static_cast<uint8_t>(irq), ioapic_id(n), static_cast<uint8_t>(irq == 0 ? 2 : irq)};
      copy(p, &e, sizeof e);
      p += sizeof e;
    }
    const MpInterrupt lint0{4, 3, 0, 0, 0, 0xFF, 0};  // ExtINT on LINT0 (the 8259 in virtual wire mode)
    copy(p, &lint0, sizeof lint0);
    p += sizeof lint0;
    const MpInterrupt lint1{4, 1, 0, 0, 0, 0xFF, 1};  // NMI on LINT1
    copy(p, &lint1, sizeof lint1);
    fix_checksum(buf + l.mp_config, l.mp_config_bytes, __builtin_offsetof(MpConfigHeader, checksum));

    MpFloating f{};
    copy(f.signature, "_MP_", 4);
    f.config = base + l.mp_config;
    f.length = 1;
    f.spec_rev = 4;
    copy(buf + l.mp_float, &f, sizeof f);
    fix_checksum(buf + l.mp_float, sizeof f, __builtin_offsetof(MpFloating, checksum));
  }
  *out = l;
  return nullptr;
}

}  // namespace hv::acpi
