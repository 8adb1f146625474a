// ACPI and MP table conformance (docs/guest-platform.md section 10): what an operating system
// reads to find its CPUs, interrupt controllers and how to power off, read the way an OS
// reads it. Runs under hv (hv/devices/acpi_tables.h) and bare under QEMU TCG (SeaBIOS's and
// QEMU's tables: an independent implementation); the verdict lines are the same on both where
// the behaviour is architectural, and where the two legitimately differ (OEM IDs, RSDP
// revision, which tables exist, SMI_CMD, timer width) the guest prints what it found without
// judging.
//
// Checks: the RSDP is found on a 16-byte boundary in 0xE0000-0xFFFFF (or the EBDA's first KiB)
// with its checksum (and the extended one from revision 2); every table the RSDT (and XSDT)
// lists has a valid length and checksum, the two roots list the same tables; the MADT has one
// enabled local APIC per CPU the guest knows (1 bare unless expect-cpus=N, hv's vCPU count
// under hv), its own APIC ID (CPUID.1 EBX[31:24]) among them, an I/O APIC at 0xFEC00000, the
// ISA IRQ0 -> GSI 2 override and a local APIC NMI on LINT1; the FADT names a PM1a control
// block and an SCI, its DSDT has a valid checksum and a \_S5 package whose first two values
// are read; ACPI mode is on (SCI_EN; through SMI_CMD/ACPI_ENABLE if the firmware left it off);
// the PM timer advances monotonically; the MP floating pointer and configuration table, when
// present, have valid checksums and one enabled processor per CPU with one BSP.
// The guest then ends by powering off through S5 (SLP_TYPa | SLP_EN to PM1a_CNT): hv stops
// the VM with "guest powered off (ACPI S5)", QEMU exits (status 0). A failed check ends the
// guest through port 0xf4 with status 1 instead.
#include "tests/guests/lib/guest.h"

const char guest_name[] = "acpi";

namespace {

void outw(uint16_t port, uint16_t v) { asm volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
uint16_t inw(uint16_t port) {
  uint16_t v;
  asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
uint32_t inl(uint16_t port) {
  uint32_t v;
  asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

const uint8_t* ptr(uint32_t a) { return reinterpret_cast<const uint8_t*>(a); }
uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t rd32(const uint8_t* p) { return rd16(p) | static_cast<uint32_t>(rd16(p + 2)) << 16; }
uint64_t rd64(const uint8_t* p) { return rd32(p) | static_cast<uint64_t>(rd32(p + 4)) << 32; }
bool same(const uint8_t* p, const char* s, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    if (p[i] != static_cast<uint8_t>(s[i])) return false;
  return true;
}
uint8_t sum8(const uint8_t* p, uint32_t n) {
  uint8_t s = 0;
  for (uint32_t i = 0; i < n; i++) s = static_cast<uint8_t>(s + p[i]);
  return s;
}
void sig(const uint8_t* p, char out[5]) {
  for (int i = 0; i < 4; i++) out[i] = (p[i] >= 0x20 && p[i] < 0x7F) ? static_cast<char>(p[i]) : '?';
  out[4] = 0;
}

// The guest's arguments: "expect-cpus=N" (bare: what QEMU's -smp says).
long arg_number(const char* name) {
  const uint32_t* mbi = reinterpret_cast<const uint32_t*>(multiboot_info());
  if (!(mbi[0] & 4)) return -1;
  const char* s = reinterpret_cast<const char*>(mbi[4]);
  unsigned n = 0;
  while (name[n]) n++;
  for (const char* p = s; *p; p++) {
    if ((p == s || p[-1] == ' ') && same(reinterpret_cast<const uint8_t*>(p), name, n) && p[n] == '=') {
      long v = 0;
      for (p += n + 1; *p >= '0' && *p <= '9'; p++) v = v * 10 + (*p - '0');
      return v;
    }
  }
  return -1;
}

// A 16-byte aligned structure with signature `s` (n bytes) in [start, end) whose first
// `csum_len` bytes sum to 0.
uint32_t scan(uint32_t start, uint32_t end, const char* s, unsigned n, uint32_t csum_len) {
  for (uint32_t a = start; a + csum_len <= end; a += 16)
    if (same(ptr(a), s, n) && sum8(ptr(a), csum_len) == 0) return a;
  return 0;
}

// A table at `a`: a sane length and a zero checksum.
bool table_ok(uint32_t a) {
  if (!a) return false;
  const uint32_t len = rd32(ptr(a) + 4);
  return len >= 36 && len < (1u << 20) && sum8(ptr(a), len) == 0;
}

// An AML integer at p (ZeroOp, OneOp, OnesOp, Byte/Word/DWordPrefix): its value, *len its bytes.
bool aml_int(const uint8_t* p, uint32_t* v, unsigned* len) {
  switch (p[0]) {
    case 0x00: *v = 0; *len = 1; return true;
    case 0x01: *v = 1; *len = 1; return true;
    case 0xFF: *v = 0xFFFFFFFFu; *len = 1; return true;
    case 0x0A: *v = p[1]; *len = 2; return true;
    case 0x0B: *v = rd16(p + 1); *len = 3; return true;
    case 0x0C: *v = rd32(p + 1); *len = 5; return true;
    default: return false;
  }
}

uint32_t g_pm1a_cnt = 0;
uint16_t g_slp_typ = 0xFFFF;

// S5: the guest's "exit 0". A failure still goes to port 0xf4 (status 1).
unsigned power_off(unsigned status) {
  if (status != 0 || !g_pm1a_cnt || g_slp_typ > 7) return status;
  const uint16_t v = static_cast<uint16_t>((g_slp_typ << 10) | (1u << 13));
  outw(static_cast<uint16_t>(g_pm1a_cnt), v);
  // QEMU handles the request in its main loop: the CPU may run a little longer.
  for (uint32_t i = 0; i < 200000000u; i++) cpu_relax();
  gprintf("acpi: FAIL: still running after the S5 request (0x%x to port 0x%x)\n", v, g_pm1a_cnt);
  return 1;
}

void check_madt(uint32_t madt, unsigned want_cpus) {
  const uint8_t* m = ptr(madt);
  const uint32_t len = rd32(m + 4);
  uint32_t my_id;
  {
    uint32_t a, b, c, d;
    asm volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    my_id = b >> 24;
  }
  gprintf("acpi: MADT: local APIC address 0x%x, flags 0x%x\n", rd32(m + 36), rd32(m + 40));
  CHECK_EQ(rd32(m + 36), 0xFEE00000u);
  unsigned enabled = 0, disabled = 0, ioapics = 0, nmi_lint1 = 0;
  bool mine = false, ioapic_ok = false, irq0 = false, bad = false;
  for (uint32_t off = 44; off + 2 <= len;) {
    const uint8_t* e = m + off;
    const uint8_t type = e[0], elen = e[1];
    if (elen < 2 || off + elen > len) {
      bad = true;
      break;
    }
    if (type == 0 && elen >= 8) {
      if (rd32(e + 4) & 1) {
        enabled++;
        if (e[3] == my_id) mine = true;
      } else {
        disabled++;
      }
    } else if (type == 1 && elen >= 12) {
      ioapics++;
      gprintf("acpi: MADT: I/O APIC id %u at 0x%x, GSI base %u\n", e[2], rd32(e + 4), rd32(e + 8));
      if (rd32(e + 4) == 0xFEC00000u && rd32(e + 8) == 0) ioapic_ok = true;
    } else if (type == 2 && elen >= 10) {
      gprintf("acpi: MADT: override bus %u IRQ %u -> GSI %u flags 0x%x\n", e[2], e[3], rd32(e + 4), rd16(e + 8));
      if (e[2] == 0 && e[3] == 0 && rd32(e + 4) == 2) irq0 = true;
    } else if (type == 4 && elen >= 6) {
      if (e[5] == 1) nmi_lint1++;
    }
    off += elen;
  }
  CHECK(!bad);
  gprintf("acpi: MADT: %u enabled local APIC(s) (the guest knows of %u CPU(s)), own APIC ID %u %s\n", enabled, want_cpus,
          my_id, mine ? "listed" : "MISSING");
  if (disabled) gprintf("acpi: MADT: %u more local APIC(s) not enabled (hot-pluggable)\n", disabled);
  CHECK_EQ(enabled, want_cpus);
  CHECK(mine);
  CHECK_EQ(ioapics, 1u);
  CHECK(ioapic_ok);
  CHECK(irq0);
  CHECK(nmi_lint1 >= 1);
  if (!bad && enabled == want_cpus && mine && ioapics == 1 && ioapic_ok && irq0 && nmi_lint1)
    gprintf("acpi: MADT: one enabled local APIC per CPU, own APIC ID listed, I/O APIC at 0xfec00000, IRQ0 -> GSI 2, LINT1 NMI: ok\n");
}

// The \_S5 package in the DSDT's AML: its first two values (SLP_TYPa, SLP_TYPb).
bool find_s5(uint32_t dsdt, uint32_t* a, uint32_t* b) {
  const uint8_t* d = ptr(dsdt);
  const uint32_t len = rd32(d + 4);
  for (uint32_t i = 36; i + 4 < len; i++) {
    if (!same(d + i, "_S5_", 4)) continue;
    const uint8_t* p = d + i + 4;
    if (*p++ != 0x12) continue;  // PackageOp
    p += 1 + ((*p >> 6) & 3);    // PkgLength: 1 to 4 bytes
    const uint8_t count = *p++;
    if (count < 2) continue;
    unsigned l;
    if (!aml_int(p, a, &l)) continue;
    p += l;
    if (!aml_int(p, b, &l)) continue;
    return true;
  }
  return false;
}

void check_fadt(uint32_t fadt) {
  const uint8_t* f = ptr(fadt);
  const uint32_t len = rd32(f + 4);
  const uint8_t rev = f[8];
  uint32_t dsdt = rd32(f + 40);
  if (len >= 148 && rd64(f + 140)) dsdt = static_cast<uint32_t>(rd64(f + 140));
  const uint16_t sci = rd16(f + 46);
  const uint32_t smi_cmd = rd32(f + 48);
  const uint8_t acpi_enable = f[52];
  const uint32_t pm1a_evt = rd32(f + 56), pm1a_cnt = rd32(f + 64), pm_tmr = rd32(f + 76);
  const uint32_t flags = len >= 116 ? rd32(f + 112) : 0;
  gprintf("acpi: FADT revision %u, %u bytes: SCI %u, SMI_CMD 0x%x, PM1a_EVT 0x%x, PM1a_CNT 0x%x, PM_TMR 0x%x, flags 0x%x\n",
          rev, len, sci, smi_cmd, pm1a_evt, pm1a_cnt, pm_tmr, flags);
  if (len >= 129 && (flags & (1u << 10)))
    gprintf("acpi: FADT: reset register space %u address 0x%llx value 0x%x\n", f[116], rd64(f + 120), f[128]);
  CHECK(pm1a_cnt != 0);
  CHECK(sci != 0);
  // The DSDT.
  CHECK(table_ok(dsdt));
  CHECK(same(ptr(dsdt), "DSDT", 4));
  uint32_t s5a = 0, s5b = 0;
  const bool s5 = table_ok(dsdt) && find_s5(dsdt, &s5a, &s5b);
  CHECK(s5);
  if (table_ok(dsdt)) gprintf("acpi: DSDT: checksum ok, %u bytes\n", rd32(ptr(dsdt) + 4));
  if (s5) {
    gprintf("acpi: DSDT: \\_S5 package found\n");
    gprintf("acpi: DSDT: \\_S5 SLP_TYPa %u SLP_TYPb %u\n", s5a, s5b);
    CHECK(s5a <= 7);
  }
  // ACPI mode: an OS without SMI_CMD finds SCI_EN set; with one, it asks the firmware.
  if (pm1a_cnt) {
    const uint16_t port = static_cast<uint16_t>(pm1a_cnt);
    if (!(inw(port) & 1) && smi_cmd && acpi_enable) {
      gprintf("acpi: SCI_EN clear: writing ACPI_ENABLE 0x%x to SMI_CMD 0x%x\n", acpi_enable, smi_cmd);
      outb(static_cast<uint16_t>(smi_cmd), acpi_enable);
      for (uint32_t i = 0; i < 1000000 && !(inw(port) & 1); i++) cpu_relax();
    } else {
      gprintf("acpi: SCI_EN set by the firmware\n");
    }
    const bool sci_en = inw(port) & 1;
    CHECK(sci_en);
    if (sci_en) gprintf("acpi: ACPI mode on (PM1a_CNT.SCI_EN = 1)\n");
  }
  // The PM timer: 24 bits, or 32 with TMR_VAL_EXT (flags bit 8).
  if (pm_tmr) {
    const uint32_t mask = (flags & (1u << 8)) ? 0xFFFFFFFFu : 0xFFFFFFu;
    gprintf("acpi: PM timer %u bits\n", mask == 0xFFFFFFFFu ? 32 : 24);
    const uint32_t first = inl(static_cast<uint16_t>(pm_tmr)) & mask;
    uint32_t prev = first;
    uint64_t total = 0;
    bool backwards = false;
    for (unsigned i = 0; i < 2000; i++) {
      const uint32_t v = inl(static_cast<uint16_t>(pm_tmr)) & mask;
      const uint32_t d = (v - prev) & mask;
      if (d > mask / 2) backwards = true;  // more than half the range: it went back
      total += d;
      prev = v;
    }
    CHECK(!backwards);
    CHECK(total > 0);
    if (!backwards && total > 0) gprintf("acpi: PM timer advances monotonically: ok\n");
  }
  g_pm1a_cnt = pm1a_cnt;
  if (s5) g_slp_typ = static_cast<uint16_t>(s5a);
  // Under hv only: a sleep state other than S5 (hv's DSDT offers none) is refused and the
  // guest goes on. Bare, QEMU would really suspend (SLP_TYP 1 is its S3).
  if (under_hv() && pm1a_cnt && s5 && s5a != 1) {
    const uint16_t port = static_cast<uint16_t>(pm1a_cnt);
    outw(port, static_cast<uint16_t>((1u << 10) | (1u << 13) | 1u));  // SLP_TYP 1, SLP_EN
    outw(port, static_cast<uint16_t>((3u << 10) | (1u << 13) | 1u));  // SLP_TYP 3, SLP_EN
    const uint16_t v = inw(port);
    CHECK_EQ(v & (1u << 13), 0u);  // SLP_EN is a strobe: it reads 0
    CHECK_EQ(v & 1u, 1u);          // still in ACPI mode
    gprintf("acpi: SLP_TYP 1 and 3 with SLP_EN: refused, the guest still runs (PM1a_CNT reads 0x%x)\n", v);
  }
}

void check_mp(unsigned want_cpus) {
  uint32_t fp = 0;
  const uint32_t ebda = static_cast<uint32_t>(rd16(ptr(0x40E))) << 4;
  if (ebda >= 0x80000 && ebda < 0xA0000) fp = scan(ebda, ebda + 1024, "_MP_", 4, 16);
  if (!fp) fp = scan(0x9FC00, 0xA0000, "_MP_", 4, 16);
  if (!fp) fp = scan(0xF0000, 0x100000, "_MP_", 4, 16);
  if (!fp) {
    gprintf("acpi: MP: no floating pointer\n");
    return;
  }
  const uint8_t* f = ptr(fp);
  gprintf("acpi: MP: floating pointer at 0x%x, spec 1.%u, table 0x%x, feature1 %u\n", fp, f[9], rd32(f + 4), f[11]);
  CHECK(f[8] == 1);
  const uint32_t t = rd32(f + 4);
  if (!t) return;  // a default configuration
  const uint8_t* h = ptr(t);
  const uint16_t len = rd16(h + 4);
  CHECK(same(h, "PCMP", 4));
  CHECK(len >= 44);
  CHECK_EQ(sum8(h, len), 0);
  unsigned cpus = 0, bsps = 0, ioapics = 0, entries = 0;
  bool bad = false;
  for (uint32_t off = 44; off < len;) {
    const uint8_t type = h[off];
    if (type == 0) {
      entries++;
      gprintf("acpi: MP: processor: local APIC ID %u, flags 0x%x\n", h[off + 1], h[off + 3]);
      if (h[off + 3] & 1) cpus++;
      if ((h[off + 3] & 3) == 3) bsps++;
      off += 20;
    } else if (type <= 4) {
      if (type == 2 && (h[off + 3] & 1)) ioapics++;
      off += 8;
    } else {
      bad = true;
      break;
    }
  }
  CHECK(!bad);
  CHECK_EQ(bsps, 1u);
  CHECK(ioapics >= 1);
  if (!bad && bsps == 1 && ioapics >= 1 && sum8(h, len) == 0)
    gprintf("acpi: MP: configuration table checksum ok, one BSP, an I/O APIC: ok\n");
  // hv lists every vCPU. SeaBIOS lists the CPUs it saw start (QEMU 7.2 TCG with -smp 2:
  // only the BSP; Linux's MADT path is what counts): printed, judged under hv only.
  gprintf("acpi: MP: %u enabled processor(s) of %u listed, the guest knows of %u CPU(s)\n", cpus, entries, want_cpus);
  if (under_hv()) CHECK_EQ(cpus, want_cpus);
}

}  // namespace

void guest_test() {
  const long arg = arg_number("expect-cpus");
  const unsigned want_cpus = arg > 0 ? static_cast<unsigned>(arg) : vcpu_count();

  // The RSDP: the EBDA's first KiB, then the BIOS area, on 16-byte boundaries.
  uint32_t rsdp = 0;
  const uint32_t ebda = static_cast<uint32_t>(rd16(ptr(0x40E))) << 4;
  if (ebda >= 0x80000 && ebda < 0xA0000) rsdp = scan(ebda, ebda + 1024, "RSD PTR ", 8, 20);
  if (!rsdp) rsdp = scan(0xE0000, 0x100000, "RSD PTR ", 8, 20);
  CHECK(rsdp != 0);
  if (!rsdp) return;
  const uint8_t* r = ptr(rsdp);
  const uint8_t rev = r[15];
  char oem[7];
  for (int i = 0; i < 6; i++) oem[i] = static_cast<char>(r[9 + i]);
  oem[6] = 0;
  gprintf("acpi: RSDP at 0x%x, revision %u, OEM \"%s\", RSDT 0x%x\n", rsdp, rev, oem, rd32(r + 16));
  uint32_t xsdt = 0;
  if (rev >= 2) {
    const uint32_t len = rd32(r + 20);
    CHECK_EQ(len, 36u);
    CHECK_EQ(sum8(r, len >= 36 && len < 4096 ? len : 36), 0);
    xsdt = static_cast<uint32_t>(rd64(r + 24));
    gprintf("acpi: RSDP: XSDT 0x%x, extended checksum %s\n", xsdt, sum8(r, 36) == 0 ? "ok" : "BAD");
  }
  gprintf("acpi: RSDP found in the BIOS area, checksum ok\n");

  // The root tables and every table they list.
  const uint32_t rsdt = rd32(r + 16);
  CHECK(table_ok(rsdt) && same(ptr(rsdt), "RSDT", 4));
  if (!table_ok(rsdt)) return;
  const unsigned n = (rd32(ptr(rsdt) + 4) - 36) / 4;
  uint32_t fadt = 0, madt = 0;
  bool all_ok = true;
  gprintf("acpi: RSDT lists %u table(s):", n);
  for (unsigned i = 0; i < n; i++) {
    const uint32_t t = rd32(ptr(rsdt) + 36 + 4 * i);
    char s[5];
    sig(ptr(t), s);
    gprintf(" %s", s);
    if (!table_ok(t)) all_ok = false;
    if (same(ptr(t), "FACP", 4)) fadt = t;
    if (same(ptr(t), "APIC", 4)) madt = t;
  }
  gprintf("\n");
  CHECK(all_ok);
  if (xsdt) {
    CHECK(table_ok(xsdt) && same(ptr(xsdt), "XSDT", 4));
    if (table_ok(xsdt)) {
      const unsigned nx = (rd32(ptr(xsdt) + 4) - 36) / 8;
      CHECK_EQ(nx, n);
      for (unsigned i = 0; i < nx && i < n; i++) CHECK_EQ(rd64(ptr(xsdt) + 36 + 8 * i), rd32(ptr(rsdt) + 36 + 4 * i));
    }
  }
  if (all_ok) gprintf("acpi: every listed table has a valid length and checksum\n");
  CHECK(madt != 0);
  CHECK(fadt != 0);
  if (madt) check_madt(madt, want_cpus);
  if (fadt) check_fadt(fadt);
  check_mp(want_cpus);
  gprintf("acpi: powering off through S5\n");
  guest_exit_hook = power_off;
}
