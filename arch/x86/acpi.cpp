// ACPI table discovery and parsing (see acpi.h). Layouts per the ACPI specification 6.x:
// RSDP (5.2.5), system description header (5.2.6), FADT (5.2.9), MADT (5.2.12) and the AML
// encoding of a Name(_S5, Package(){...}) object (20.2).
#include "arch/x86/acpi.h"

#include "arch/x86/acpi_layout.h"
#include "arch/x86/paging.h"
#include "arch/x86/string.h"

namespace x86::acpi {
namespace {

bool checksum_ok(const void* p, uint32_t len) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  uint8_t sum = 0;
  for (uint32_t i = 0; i < len; i++) sum = static_cast<uint8_t>(sum + b[i]);
  return sum == 0;
}

const Rsdp* valid_rsdp(const void* p) {
  const Rsdp* r = static_cast<const Rsdp*>(p);
  if (memcmp(r->signature, "RSD PTR ", 8) != 0 || !checksum_ok(r, 20)) return nullptr;
  return r;
}

const Rsdp* scan_rsdp(uint64_t start, uint64_t end) {
  for (uint64_t a = start; a + 20 <= end; a += 16)
    if (const Rsdp* r = valid_rsdp(reinterpret_cast<const void*>(a))) return r;
  return nullptr;
}

// A table at a physical address, if it is mapped, long enough and its checksum holds.
const SdtHeader* table_at(uint64_t pa) {
  if (!pa || !paging::is_mapped(pa, sizeof(SdtHeader))) return nullptr;
  const SdtHeader* h = reinterpret_cast<const SdtHeader*>(pa);
  if (h->length < sizeof(SdtHeader) || !paging::is_mapped(pa, h->length)) return nullptr;
  if (!checksum_ok(h, h->length)) return nullptr;
  return h;
}

struct Root {
  const SdtHeader* table = nullptr;
  bool wide = false;  // XSDT: 8-byte entries
};

const SdtHeader* find_table(const Root& root, const char sig[4]) {
  if (!root.table) return nullptr;
  const uint8_t* entries = reinterpret_cast<const uint8_t*>(root.table) + sizeof(SdtHeader);
  const uint32_t size = root.wide ? 8 : 4;
  const uint32_t n = (root.table->length - sizeof(SdtHeader)) / size;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t pa = 0;
    memcpy(&pa, entries + i * size, size);  // entries are not naturally aligned in the XSDT
    const SdtHeader* t = table_at(pa);
    if (t && memcmp(t->signature, sig, 4) == 0) return t;
  }
  return nullptr;
}

void parse_madt(const MadtHeader* madt, Info& out) {
  out.have_madt = true;
  out.lapic_address = madt->lapic_address;
  const uint8_t* p = reinterpret_cast<const uint8_t*>(madt + 1);
  const uint8_t* end = reinterpret_cast<const uint8_t*>(madt) + madt->h.length;
  auto add_cpu = [&](uint32_t apic_id, uint32_t flags) {
    if (!(flags & 1)) {  // bit 0: enabled; bit 1 (online capable) marks hot-plug slots
      out.cpus_disabled++;
      return;
    }
    for (unsigned i = 0; i < out.cpu_count; i++)
      if (out.apic_ids[i] == apic_id) return;  // listed as both LAPIC and x2APIC
    if (out.cpu_count == x86::kMaxCpus) {
      out.cpus_ignored++;
      return;
    }
    out.apic_ids[out.cpu_count++] = apic_id;
  };
  while (p + 2 <= end) {
    const uint8_t type = p[0], len = p[1];
    if (len < 2 || p + len > end) break;
    switch (type) {
      case kMadtLocalApic:
        if (len >= 8) {
          uint32_t flags;
          memcpy(&flags, p + 4, 4);
          add_cpu(p[3], flags);
        }
        break;
      case kMadtLocalX2Apic:
        if (len >= 16) {
          uint32_t id, flags;
          memcpy(&id, p + 4, 4);
          memcpy(&flags, p + 8, 4);
          add_cpu(id, flags);
        }
        break;
      case kMadtIoApic:
        if (len >= 12) {
          uint32_t addr;
          memcpy(&addr, p + 4, 4);
          if (out.ioapic_count++ == 0) out.ioapic_address = addr;
        }
        break;
      case kMadtLapicAddressOverride:
        if (len >= 12) memcpy(&out.lapic_address, p + 4, 8);
        break;
      default: break;
    }
    p += len;
  }
}

// One element of the \_S5 package: BytePrefix + byte, ZeroOp, OneOp. Returns bytes used.
unsigned aml_small_int(const uint8_t* p, const uint8_t* end, uint8_t* value) {
  if (p >= end) return 0;
  if (p[0] == 0x0A && p + 1 < end) {
    *value = p[1];
    return 2;
  }
  if (p[0] == 0x00 || p[0] == 0x01) {
    *value = p[0];
    return 1;
  }
  return 0;
}

// Finds Name(_S5_, Package(){SLP_TYPa, SLP_TYPb, ...}) in the DSDT's AML by its byte pattern.
void parse_s5(const SdtHeader* dsdt, Info& out) {
  const uint8_t* aml = reinterpret_cast<const uint8_t*>(dsdt) + sizeof(SdtHeader);
  const uint8_t* end = reinterpret_cast<const uint8_t*>(dsdt) + dsdt->length;
  for (const uint8_t* p = aml + 1; p + 4 < end; p++) {
    if (memcmp(p, "_S5_", 4) != 0) continue;
    // NameOp (0x08) right before the name, or before a root prefix '\'.
    const bool named = p[-1] == 0x08 || (p - aml >= 2 && p[-1] == '\\' && p[-2] == 0x08);
    const uint8_t* q = p + 4;
    if (!named || q >= end || *q != 0x12) continue;  // PackageOp
    q++;
    if (q >= end) return;
    q += 1 + (*q >> 6);  // PkgLength: bits 7:6 of the lead byte = number of extra bytes
    q++;                 // NumElements
    uint8_t a = 0, b = 0;
    unsigned n = aml_small_int(q, end, &a);
    if (!n) return;
    unsigned m = aml_small_int(q + n, end, &b);
    if (!m) b = a;
    out.have_s5 = true;
    out.slp_typ_a = a;
    out.slp_typ_b = b;
    return;
  }
}

void parse_fadt(const Fadt* f, Info& out) {
  out.have_fadt = true;
  const uint32_t len = f->h.length;
  auto io_port = [&](const Gas& x, size_t x_off, uint32_t legacy) -> uint16_t {
    if (len >= x_off + sizeof(Gas) && x.address && x.space == 1 && x.address <= 0xFFFF)
      return static_cast<uint16_t>(x.address);
    return legacy <= 0xFFFF ? static_cast<uint16_t>(legacy) : 0;
  };
  out.pm1a_cnt = io_port(f->x_pm1a_cnt_blk, __builtin_offsetof(Fadt, x_pm1a_cnt_blk), f->pm1a_cnt_blk);
  out.pm1b_cnt = io_port(f->x_pm1b_cnt_blk, __builtin_offsetof(Fadt, x_pm1b_cnt_blk), f->pm1b_cnt_blk);
  if (len >= __builtin_offsetof(Fadt, reset_value) + 1 && (f->flags & kFadtResetRegSup) && f->reset_reg.address &&
      f->reset_reg.space <= 2) {
    out.have_reset_reg = true;
    out.reset_space = f->reset_reg.space;
    out.reset_address = f->reset_reg.address;
    out.reset_value = f->reset_value;
  }
  out.smi_cmd = f->smi_cmd <= 0xFFFF ? static_cast<uint16_t>(f->smi_cmd) : 0;
  out.acpi_enable = f->acpi_enable;
  uint64_t dsdt_pa = f->dsdt;
  if (len >= __builtin_offsetof(Fadt, x_dsdt) + 8 && f->x_dsdt) dsdt_pa = f->x_dsdt;
  const SdtHeader* dsdt = table_at(dsdt_pa);
  if (dsdt && memcmp(dsdt->signature, "DSDT", 4) == 0) parse_s5(dsdt, out);
}

}  // namespace

const char* init(const void* rsdp_copy, unsigned rsdp_tag, Info& out) {
  const Rsdp* rsdp = nullptr;
  if (rsdp_copy && (rsdp = valid_rsdp(rsdp_copy))) {
    out.rsdp_source = rsdp_tag == 15 ? "multiboot2 tag 15" : "multiboot2 tag 14";
  } else {
    // Legacy BIOS: the first KiB of the EBDA (segment at 0x40E), then 0xE0000-0xFFFFF.
    const uint64_t ebda = uint64_t{*reinterpret_cast<const volatile uint16_t*>(0x40E)} << 4;
    if (ebda >= 0x80000 && ebda < 0xA0000 && (rsdp = scan_rsdp(ebda, ebda + 1024))) out.rsdp_source = "EBDA";
    else if ((rsdp = scan_rsdp(0xE0000, 0x100000))) out.rsdp_source = "BIOS area";
  }
  if (!rsdp) return "no ACPI RSDP (neither a multiboot2 tag nor in the BIOS areas)";
  out.have_rsdp = true;
  out.revision = rsdp->revision;
  memcpy(out.oem_id, rsdp->oem_id, 6);
  for (int i = 0; i < 6; i++)
    if (out.oem_id[i] < 0x20 || out.oem_id[i] > 0x7E) out.oem_id[i] = '?';

  Root root;
  if (rsdp->revision >= 2 && checksum_ok(rsdp, rsdp->length < 36 ? 36 : rsdp->length) && rsdp->xsdt) {
    root.table = table_at(rsdp->xsdt);
    root.wide = root.table != nullptr;
  }
  if (!root.table) root.table = table_at(rsdp->rsdt);
  if (!root.table) return "ACPI root table (XSDT/RSDT) missing or corrupt";
  out.xsdt = root.wide;

  if (const SdtHeader* madt = find_table(root, "APIC")) parse_madt(reinterpret_cast<const MadtHeader*>(madt), out);
  if (const SdtHeader* fadt = find_table(root, "FACP")) parse_fadt(reinterpret_cast<const Fadt*>(fadt), out);
  return nullptr;
}

}  // namespace x86::acpi
