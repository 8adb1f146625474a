// The guest's ACPI and MP tables (hv/devices/acpi_tables.h) and the PM1a registers
// (hv/devices/acpi_pm.h): every checksum and length, the MADT per vCPU count, the FADT's
// fields, the DSDT's \_S5 AML, the MP table, the placement; the S5 power-off decision.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "hv/devices/acpi_pm.h"
#include "hv/devices/acpi_tables.h"
#include "hv/multiboot_info.h"

using namespace hv;
using namespace hv::acpi;

namespace {

template <class T>
T at(const std::vector<uint8_t>& b, uint64_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

std::vector<uint8_t> build_area(unsigned vcpus, Layout* l) {
  std::vector<uint8_t> buf(kAcpiAreaBytes, 0xCC);
  Config c;
  c.vcpus = vcpus;
  c.cpu_signature = 0x50654;
  c.cpu_features = 0xBFEBFBFF;
  REQUIRE(build(c, buf.data(), buf.size(), l) == nullptr);
  return buf;
}

uint64_t off_of(uint64_t gpa) {
  REQUIRE(gpa >= kAcpiAreaGpa);
  REQUIRE(gpa < kAcpiAreaGpa + kAcpiAreaBytes);
  return gpa - kAcpiAreaGpa;
}

// A table at `off`: signature, length within the area, checksum 0.
SdtHeader table(const std::vector<uint8_t>& b, uint64_t off, const char* sig) {
  const SdtHeader h = at<SdtHeader>(b, off);
  CHECK(std::memcmp(h.signature, sig, 4) == 0);
  REQUIRE(h.length >= sizeof(SdtHeader));
  REQUIRE(off + h.length <= b.size());
  CHECK(sum8(b.data() + off, h.length) == 0);
  return h;
}

}  // namespace

TEST_CASE("acpi: RSDP, RSDT and XSDT checksums, lengths and pointers", "[hv][acpi]") {
  Layout l;
  const auto b = build_area(1, &l);
  CHECK(l.rsdp % 16 == 0);
  const Rsdp r = at<Rsdp>(b, l.rsdp);
  CHECK(std::memcmp(r.signature, "RSD PTR ", 8) == 0);
  CHECK(r.revision == 2);
  CHECK(r.length == 36);
  CHECK(sum8(b.data() + l.rsdp, 20) == 0);
  CHECK(sum8(b.data() + l.rsdp, 36) == 0);
  const SdtHeader rsdt = table(b, off_of(r.rsdt), "RSDT");
  const SdtHeader xsdt = table(b, off_of(r.xsdt), "XSDT");
  REQUIRE(rsdt.length == 36 + 4 * 2);
  REQUIRE(xsdt.length == 36 + 8 * 2);
  // Both list the same tables: FADT and MADT.
  for (unsigned i = 0; i < 2; i++) {
    const uint32_t a32 = at<uint32_t>(b, off_of(r.rsdt) + 36 + 4 * i);
    const uint64_t a64 = at<uint64_t>(b, off_of(r.xsdt) + 36 + 8 * i);
    CHECK(a32 == a64);
    table(b, off_of(a64), i == 0 ? "FACP" : "APIC");
  }
  // Breaking a byte breaks the checksum (the check above can fail).
  auto bad = b;
  bad[off_of(r.xsdt) + 10] ^= 1;
  CHECK(sum8(bad.data() + off_of(r.xsdt), xsdt.length) != 0);
}

TEST_CASE("acpi: MADT has one enabled local APIC per vCPU, the I/O APIC, the overrides and LINT1 NMI", "[hv][acpi]") {
  for (unsigned n : {1u, 2u, 4u}) {
    CAPTURE(n);
    Layout l;
    const auto b = build_area(n, &l);
    const SdtHeader h = table(b, l.madt, "APIC");
    CHECK(h.length == l.madt_bytes);
    const MadtHeader m = at<MadtHeader>(b, l.madt);
    CHECK(m.lapic_address == 0xFEE00000u);
    CHECK(m.flags == 1u);
    unsigned lapics = 0, ioapics = 0, overrides = 0, nmis = 0;
    bool seen[kMaxCpus] = {};
    bool irq0_to_2 = false, sci_level_high = false;
    for (uint64_t off = l.madt + sizeof(MadtHeader); off < l.madt + h.length;) {
      const uint8_t type = b[off], len = b[off + 1];
      REQUIRE(len >= 2);
      REQUIRE(off + len <= l.madt + h.length);
      if (type == 0) {
        REQUIRE(len == 8);
        const MadtLapic e = at<MadtLapic>(b, off);
        CHECK(e.uid == e.apic_id);
        REQUIRE(e.apic_id < n);
        CHECK_FALSE(seen[e.apic_id]);
        seen[e.apic_id] = true;
        CHECK(e.flags == 1u);
        lapics++;
      } else if (type == 1) {
        const MadtIoapic e = at<MadtIoapic>(b, off);
        CHECK(len == 12);
        CHECK(e.address == 0xFEC00000u);
        CHECK(e.gsi_base == 0u);
        CHECK(e.id == n);  // after the local APIC IDs
        ioapics++;
      } else if (type == 2) {
        const MadtOverride e = at<MadtOverride>(b, off);
        CHECK(len == 10);
        if (e.source == 0 && e.gsi == 2 && e.flags == 0) irq0_to_2 = true;
        if (e.source == 9 && e.gsi == 9 && e.flags == 0xD) sci_level_high = true;
        overrides++;
      } else if (type == 4) {
        const MadtLapicNmi e = at<MadtLapicNmi>(b, off);
        CHECK(len == 6);
        CHECK(e.uid == 0xFF);
        CHECK(e.lint == 1);
        nmis++;
      } else {
        FAIL("unexpected MADT entry type " << int(type));
      }
      off += len;
    }
    CHECK(lapics == n);
    CHECK(ioapics == 1);
    CHECK(overrides == 2);
    CHECK(irq0_to_2);
    CHECK(sci_level_high);
    CHECK(nmis == 1);
  }
}

TEST_CASE("acpi: FADT fields, FACS and the DSDT's _S5 package", "[hv][acpi]") {
  Layout l;
  const auto b = build_area(2, &l);
  table(b, l.fadt, "FACP");
  const Fadt f = at<Fadt>(b, l.fadt);
  CHECK(f.h.length == 276);
  CHECK(f.h.revision == 6);
  CHECK(f.sci_int == 9);
  CHECK(f.smi_cmd == 0u);
  CHECK(f.pm1a_evt_blk == 0x600u);
  CHECK(f.pm1_evt_len == 4);
  CHECK(f.pm1a_cnt_blk == 0x604u);
  CHECK(f.pm1_cnt_len == 2);
  CHECK(f.pm_tmr_blk == 0x608u);
  CHECK(f.pm_tmr_len == 4);
  CHECK(f.x_pm1a_cnt_blk.space == 1);
  CHECK(f.x_pm1a_cnt_blk.address == 0x604u);
  CHECK(f.x_pm1a_cnt_blk.bit_width == 16);
  CHECK(f.x_pm1a_evt_blk.bit_width == 32);
  CHECK(f.x_pm_tmr_blk.bit_width == 32);
  CHECK((f.flags & kFadtResetRegSup) != 0u);
  CHECK((f.flags & kFadtTmrValExt) != 0u);
  CHECK(f.reset_reg.space == 1);
  CHECK(f.reset_reg.address == 0xCF9u);
  CHECK(f.reset_value == 6);
  // Legacy devices, but no 8042 (hv's i8042 ports are only the reset line: Linux would probe
  // them for a keyboard, each command waiting out a timeout).
  CHECK((f.iapc_boot_arch & (kBootArchLegacyDevices | kBootArch8042)) == kBootArchLegacyDevices);
  CHECK(uint64_t{f.dsdt} == uint64_t{f.x_dsdt});
  CHECK(uint64_t{f.firmware_ctrl} == uint64_t{f.x_firmware_ctrl});
  // FACS: signature, length, 64-byte aligned.
  REQUIRE(f.x_firmware_ctrl % 64 == 0);
  const Facs facs = at<Facs>(b, off_of(f.x_firmware_ctrl));
  CHECK(std::memcmp(facs.signature, "FACS", 4) == 0);
  CHECK(facs.length == 64u);
  // DSDT: checksum and the AML bytes of Name (_S5, Package () {5, 5, 0, 0}).
  const uint64_t d = off_of(f.x_dsdt);
  const SdtHeader dh = table(b, d, "DSDT");
  CHECK(dh.length == l.dsdt_bytes);
  const std::vector<uint8_t> aml(b.begin() + d + 36, b.begin() + d + dh.length);
  const std::vector<uint8_t> want = {0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0A, 5, 0x0A, 5, 0x00, 0x00};
  CHECK(aml == want);
}

TEST_CASE("acpi: MP floating pointer and configuration table", "[hv][acpi][mp]") {
  for (unsigned n : {1u, 2u, 4u}) {
    CAPTURE(n);
    Layout l;
    const auto b = build_area(n, &l);
    CHECK((kAcpiAreaGpa + l.mp_float) % 16 == 0);
    CHECK(kAcpiAreaGpa + l.mp_float >= 0xF0000);
    const MpFloating fp = at<MpFloating>(b, l.mp_float);
    CHECK(std::memcmp(fp.signature, "_MP_", 4) == 0);
    CHECK(fp.length == 1);
    CHECK(fp.spec_rev == 4);
    CHECK(sum8(b.data() + l.mp_float, 16) == 0);
    const uint64_t c = off_of(fp.config);
    const MpConfigHeader h = at<MpConfigHeader>(b, c);
    CHECK(std::memcmp(h.signature, "PCMP", 4) == 0);
    REQUIRE(h.length == l.mp_config_bytes);
    CHECK(sum8(b.data() + c, h.length) == 0);
    CHECK(h.lapic_address == 0xFEE00000u);
    unsigned cpus = 0, bsps = 0, buses = 0, ioapics = 0, ints = 0, locals = 0, entries = 0;
    bool irq0_pin2 = false, irq2 = false;
    for (uint64_t off = c + sizeof h; off < c + h.length; entries++) {
      const uint8_t type = b[off];
      if (type == 0) {
        const MpProcessor p = at<MpProcessor>(b, off);
        CHECK(p.lapic_id < n);
        CHECK((p.flags & 1) == 1);
        if (p.flags & 2) bsps++;
        CHECK(p.signature == 0x50654u);
        cpus++;
        off += 20;
      } else {
        REQUIRE(type <= 4);
        if (type == 1) {
          CHECK(std::memcmp(at<MpBus>(b, off).bus_type, "ISA   ", 6) == 0);
          buses++;
        } else if (type == 2) {
          CHECK(at<MpIoapic>(b, off).address == 0xFEC00000u);
          CHECK(at<MpIoapic>(b, off).id == n);
          ioapics++;
        } else if (type == 3) {
          const MpInterrupt e = at<MpInterrupt>(b, off);
          if (e.src_irq == 0 && e.dst_pin == 2) irq0_pin2 = true;
          if (e.src_irq == 2) irq2 = true;
          ints++;
        } else {
          locals++;
        }
        off += 8;
      }
    }
    CHECK(entries == h.entry_count);
    CHECK(cpus == n);
    CHECK(bsps == 1);
    CHECK(buses == 1);
    CHECK(ioapics == 1);
    CHECK(ints == 15);
    CHECK(irq0_pin2);
    CHECK_FALSE(irq2);
    CHECK(locals == 2);
  }
}

TEST_CASE("acpi: placement stays inside the reserved BIOS area, tables do not overlap", "[hv][acpi]") {
  Layout l;
  build_area(kMaxCpus, &l);
  CHECK(l.bytes <= kAcpiAreaBytes);
  // Inside the hole the multiboot map reserves, so the information block never goes there.
  CHECK(kAcpiAreaGpa >= kMbLowRamEnd);
  CHECK(kAcpiAreaGpa + kAcpiAreaBytes <= kMbHighRamStart);
  const uint64_t busy[] = {kMbLowRamEnd, kMbHighRamStart};
  const GpaRange r[] = {{busy[0], busy[1]}};
  const uint64_t free = mb_find_free(r, 1, 0x10000, 32 << 20);
  CHECK((free + 0x10000 <= kAcpiAreaGpa || free >= kAcpiAreaGpa + kAcpiAreaBytes));
  struct Span { uint32_t start, len; };
  const Span spans[] = {{l.rsdp, 36}, {l.mp_float, 16}, {l.mp_config, l.mp_config_bytes}, {l.facs, 64},
                        {l.rsdt, 44}, {l.xsdt, 52}, {l.fadt, l.fadt_bytes}, {l.madt, l.madt_bytes},
                        {l.dsdt, l.dsdt_bytes}};
  for (const Span& a : spans)
    for (const Span& b : spans)
      if (&a != &b) CHECK((a.start + a.len <= b.start || b.start + b.len <= a.start));
  // Too many or no vCPUs: refused.
  std::vector<uint8_t> buf(kAcpiAreaBytes);
  Config c;
  c.vcpus = 0;
  CHECK(build(c, buf.data(), buf.size(), &l) != nullptr);
  c.vcpus = kMaxCpus + 1;
  CHECK(build(c, buf.data(), buf.size(), &l) != nullptr);
}

TEST_CASE("acpi pm: PM1 registers, S5 power-off, other sleep states refused, PM timer", "[hv][acpi]") {
  AcpiPm pm;
  pm.reset();
  // SCI_EN is set from reset and stays set.
  CHECK(pm.read(0x604, 2, 0, 0) == AcpiPm::kSciEn);
  CHECK(pm.write(0x604, 2, 0) == AcpiPm::Action::none);
  CHECK(pm.read(0x604, 2, 0, 0) == AcpiPm::kSciEn);
  // PM1_STS reads 0, PM1_EN keeps its defined bits.
  CHECK(pm.read(0x600, 2, 0, 0) == 0u);
  CHECK(pm.write(0x602, 2, 0xFFFF) == AcpiPm::Action::none);
  CHECK(pm.read(0x602, 2, 0, 0) == AcpiPm::kPm1EnMask);
  CHECK(pm.read(0x600, 4, 0, 0) == (uint32_t{AcpiPm::kPm1EnMask} << 16));
  // SLP_TYP without SLP_EN: just stored.
  CHECK(pm.write(0x604, 2, 5u << 10) == AcpiPm::Action::none);
  CHECK(pm.read(0x604, 2, 0, 0) == ((5u << 10) | 1u));
  // S1 and S3: refused.
  CHECK(pm.write(0x604, 2, (1u << 10) | AcpiPm::kSlpEn) == AcpiPm::Action::sleep_refused);
  CHECK(pm.last_sleep_type() == 1);
  CHECK(pm.write(0x604, 2, (3u << 10) | AcpiPm::kSlpEn) == AcpiPm::Action::sleep_refused);
  // SLP_EN reads back 0.
  CHECK((pm.read(0x604, 2, 0, 0) & AcpiPm::kSlpEn) == 0u);
  // S5 with a word write, and with a byte write of the high half.
  CHECK(pm.write(0x604, 2, (kSlpTypS5 << 10) | AcpiPm::kSlpEn) == AcpiPm::Action::power_off);
  CHECK(pm.write(0x605, 1, ((kSlpTypS5 << 10) | AcpiPm::kSlpEn) >> 8) == AcpiPm::Action::power_off);
  CHECK(pm.write(0x604, 1, 0xFF) == AcpiPm::Action::none);  // the low byte has no SLP_EN
  // The timer: 3.579545 MHz of the TSC, 32 bits, wrapping; read-only.
  const uint64_t hz = 2'000'000'000;
  CHECK(AcpiPm::timer(hz, hz) == 3579545u);
  CHECK(AcpiPm::timer(hz / 2, hz) == 3579545u / 2);
  CHECK(AcpiPm::timer(1200 * hz, hz) == static_cast<uint32_t>(1200ull * 3579545));
  CHECK(pm.read(0x608, 4, hz, hz) == 3579545u);
  CHECK(pm.read(0x60A, 2, hz, hz) == (3579545u >> 16));
  CHECK(pm.write(0x608, 4, 0) == AcpiPm::Action::none);
  // Bytes without a register read 0; beyond the block, all ones.
  CHECK(pm.read(0x606, 2, 0, 0) == 0u);
  CHECK(pm.read(0x60B, 2, 0, hz) == 0xFF00u);
}
