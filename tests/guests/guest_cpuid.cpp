// CPUID conformance (issue 10 item 1; hv/cpuid_policy.h, docs/guest-platform.md section 1).
// Architectural groups run bare under QEMU TCG and under hv and must reach the same verdict:
//   leaves     the maximum basic and extended leaves, the vendor, address sizes;
//   topology   leaf 1 (initial APIC ID, HTT, addressable IDs), leaf 4 (cores per package) and
//              leaf 0xB (x2APIC topology) agree with each other and with the number of CPUs
//              the guest was started with; every vCPU has its own APIC ID;
//   monitor    MONITOR raises #UD exactly when CPUID does not advertise it;
//   xsave      XSETBV raises #UD exactly when XSAVE is not advertised; where it is, leaf 0xD
//              agrees with XCR0;
//   rdtscp     RDTSCP raises #UD exactly when not advertised, else returns IA32_TSC_AUX.
// hv's own policy (what the SDM leaves to the platform) only under hv ("SKIP: not under hv"
// bare): hidden features (VMX, SMX, PDCM, MONITOR, DS; the APIC shown), the PMU leaf
// 0xA zero, the hypervisor leaves (signature, 0x40000010 frequencies) and leaf 0x15/0x16
// consistent with them.
#include "tests/guests/lib/guest.h"

const char guest_name[] = "cpuid";

namespace {

uint32_t g_max_basic = 0, g_max_ext = 0;

void leaves() {
  CheckGroup g("leaves: maximum basic and extended leaf, vendor, address sizes");
  const Cpuid l0 = cpuid(0);
  g_max_basic = l0.a;
  g_max_ext = cpuid(0x80000000u).a;
  char vendor[13];
  memcpy(vendor, &l0.b, 4);
  memcpy(vendor + 4, &l0.d, 4);
  memcpy(vendor + 8, &l0.c, 4);
  vendor[12] = 0;
  gprintf("cpuid: vendor %s, max basic leaf 0x%x, max extended leaf 0x%x\n", vendor, g_max_basic, g_max_ext);
  CHECK(g_max_basic >= 1);
  CHECK(g_max_ext >= 0x80000001u && g_max_ext < 0x80000100u);
  for (int i = 0; i < 12; i++) CHECK(vendor[i] >= 0x20 && vendor[i] < 0x7F);
  if (g_max_ext >= 0x80000008u) {
    const Cpuid a = cpuid(0x80000008u);
    const unsigned phys = a.a & 0xFF, linear = (a.a >> 8) & 0xFF;
    CHECK(phys >= 36 && phys <= 52);
    CHECK(linear == 48 || linear == 57);
  }
  // Leaf 1 family: a 64-bit CPU (the test guests need long mode elsewhere).
  CHECK((cpuid(0x80000001u).d >> 29) & 1);
}

uint32_t g_apic_ids[HV_MAX_VCPUS];

uint32_t apic_id_leaf1() { return cpuid(1).b >> 24; }

// The vCPUs' TSCs agree (hv gives every vCPU of a VM the same TSC offset): a TSC read after
// another vCPU's read, in the order a release/acquire flag makes certain, is never smaller -
// both ways between vCPU 0 and vCPU 1.
uint32_t g_tsc_flag = 0;
uint64_t g_tsc1 = 0, g_tsc2 = 0;

void report_apic_id(unsigned index) {
  g_apic_ids[index] = apic_id_leaf1();
  if (index != 1) return;
  while (__atomic_load_n(&g_tsc_flag, __ATOMIC_ACQUIRE) != 1) cpu_relax();
  g_tsc1 = rdtsc();
  g_tsc2 = rdtsc();
  __atomic_store_n(&g_tsc_flag, 2, __ATOMIC_RELEASE);
}

void tsc_agreement() {
  CheckGroup g("tsc: the CPUs' TSCs agree (causality both ways between cpu 0 and cpu 1)");
  const uint64_t t0 = rdtsc();
  __atomic_store_n(&g_tsc_flag, 1, __ATOMIC_RELEASE);
  while (__atomic_load_n(&g_tsc_flag, __ATOMIC_ACQUIRE) != 2) cpu_relax();
  const uint64_t t3 = rdtsc();
  if (g_tsc1 < t0 || t3 < g_tsc2) gprintf("cpuid: tsc: cpu 0 0x%llx, cpu 1 0x%llx 0x%llx, cpu 0 0x%llx\n", t0, g_tsc1, g_tsc2, t3);
  CHECK(g_tsc1 >= t0);
  CHECK(t3 >= g_tsc2);
}

void topology() {
  CheckGroup g("topology: leaf 1, leaf 4 and leaf 0xB agree with the CPU count");
  const unsigned n = vcpu_count();
  gprintf("cpuid: %u cpu(s)\n", n);
  const Cpuid l1 = cpuid(1);
  const bool htt = (l1.d >> 28) & 1;
  const unsigned ids = (l1.b >> 16) & 0xFF;
  // HTT: CPUID.1:EBX[23:16] is valid; without it there is one logical processor per package.
  if (n > 1) CHECK(htt);
  if (htt) CHECK(ids >= n);
  if (g_max_basic >= 4 && (cpuid(4, 0).a & 0x1F)) {
    const unsigned cores = (cpuid(4, 0).a >> 26) + 1;
    // Addressable core IDs cover all n CPUs of the package (one thread per core here, and
    // the test starts at most one CPU per core).
    CHECK(cores >= n);
    if (!htt) CHECK_EQ(cores, 1);
  }
  if (g_max_basic >= 0xB && ((cpuid(0xB, 0).c >> 8) & 0xFF) != 0) {
    unsigned total = 0, shift = 0;
    for (uint32_t sub = 0; sub < 8; sub++) {
      const Cpuid t = cpuid(0xB, sub);
      const unsigned type = (t.c >> 8) & 0xFF;
      CHECK_EQ(t.d & 0xFF, l1.b >> 24);  // x2APIC ID agrees with the initial APIC ID
      if (!type) break;
      CHECK_EQ(t.c & 0xFF, sub);
      total = t.b & 0xFFFF;
      shift = t.a & 0x1F;
    }
    CHECK_EQ(total, n);                 // logical processors in the package
    CHECK((1u << shift) >= n);          // the package's ID bits cover every CPU
  }
  // Every CPU its own APIC ID, and vCPU 0 first.
  g_apic_ids[0] = l1.b >> 24;
  if (n > 1) {
    smp_start(report_apic_id);
    tsc_agreement();
    smp_wait_done();
    for (unsigned i = 0; i < n; i++)
      for (unsigned j = i + 1; j < n; j++) CHECK(g_apic_ids[i] != g_apic_ids[j]);
    for (unsigned i = 0; i < n; i++) gprintf("cpuid: cpu %u: APIC ID %u\n", i, g_apic_ids[i]);
  }
}

alignas(64) volatile uint8_t g_monitor_line[64];

void monitor() {
  CheckGroup g("monitor: MONITOR raises #UD exactly when not advertised");
  const bool adv = (cpuid(1).c >> 3) & 1;
  const Fault f = probe([] {
    asm volatile("monitor" ::"a"(reinterpret_cast<uint32_t>(&g_monitor_line[0])), "c"(0), "d"(0) : "memory");
  });
  if (adv) CHECK(!f.raised);
  else CHECK(f.raised && f.vector == 6);
}

void xsave() {
  CheckGroup g("xsave: XSETBV raises #UD exactly when XSAVE is not advertised; leaf 0xD agrees with XCR0");
  const bool adv = (cpuid(1).c >> 26) & 1;
  uint32_t cr4;
  asm volatile("mov %%cr4, %0" : "=r"(cr4));
  CHECK((cr4 & (1u << 18)) == 0);       // OSXSAVE is clear at start
  CHECK(((cpuid(1).c >> 27) & 1) == 0); // and CPUID.1:ECX.OSXSAVE says so
  // With CR4.OSXSAVE clear XSETBV is #UD whatever the CPU has.
  Fault f = probe([] { asm volatile("xsetbv" ::"a"(1), "d"(0), "c"(0) : "memory"); });
  CHECK(f.raised && f.vector == 6);
  if (!adv) return;
  CHECK(g_max_basic >= 0xD);
  asm volatile("mov %0, %%cr4" ::"r"(cr4 | (1u << 18)) : "memory");
  CHECK((cpuid(1).c >> 27) & 1);  // OSXSAVE now reflected
  uint32_t lo = 0, hi = 0;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  CHECK(lo & 1);
  const Cpuid d0 = cpuid(0xD, 0);
  CHECK((d0.a & 3) == 3);
  CHECK((lo & ~d0.a) == 0);
  CHECK(d0.b >= 576 && d0.b <= d0.c);
  for (unsigned i = 2; i < 32; i++) {
    if (!((d0.a >> i) & 1)) continue;
    const Cpuid s = cpuid(0xD, i);
    CHECK(s.a != 0);
    CHECK(s.a + s.b <= d0.c);
    if ((lo >> i) & 1) CHECK(s.a + s.b <= d0.b);
  }
  // XSETBV with XCR0 as it is: accepted; with x87 cleared: #GP.
  f = probe([&] { asm volatile("xsetbv" ::"a"(lo), "d"(hi), "c"(0) : "memory"); });
  CHECK(!f.raised);
  f = probe([&] { asm volatile("xsetbv" ::"a"(lo & ~1u), "d"(hi), "c"(0) : "memory"); });
  CHECK(f.raised && f.vector == 13);
  asm volatile("mov %0, %%cr4" ::"r"(cr4) : "memory");
}

void rdtscp() {
  CheckGroup g("rdtscp: #UD exactly when not advertised, else returns IA32_TSC_AUX");
  const bool adv = g_max_ext >= 0x80000001u && ((cpuid(0x80000001u).d >> 27) & 1);
  uint32_t aux = 0;
  const Fault f = probe([&] { asm volatile("rdtscp" : "=c"(aux)::"eax", "edx", "memory"); });
  if (!adv) {
    CHECK(f.raised && f.vector == 6);
    return;
  }
  CHECK(!f.raised);
  Fault w = probe([] { asm volatile("wrmsr" ::"c"(0xC0000103u), "a"(7), "d"(0) : "memory"); });
  CHECK(!w.raised);
  asm volatile("rdtscp" : "=c"(aux)::"eax", "edx", "memory");
  CHECK_EQ(aux, 7);
  w = probe([] { asm volatile("wrmsr" ::"c"(0xC0000103u), "a"(0), "d"(0) : "memory"); });
  CHECK(!w.raised);
}

bool hypervisor_bit() { return (cpuid(1).c >> 31) & 1; }

void hv_policy() {
  if (!under_hv()) {
    gprintf("cpuid: hv policy: SKIP: not under hv\n");
    return;
  }
  CheckGroup g("hv policy: hidden features, no PMU, hypervisor and frequency leaves");
  const Cpuid l1 = cpuid(1);
  CHECK(hypervisor_bit());
  // Hidden: MONITOR 3, VMX 5, SMX 6, PDCM 15 (ECX); MCE 7, MCA 14, DS 21 (EDX): no PMU or
  // machine-check MSRs. Shown: APIC 9 (EDX): hv's virtual LAPIC (hv/devices/vlapic.h);
  // x2APIC 21 and TSC-deadline 24 (ECX) follow the host, since hv emulates both.
  CHECK((l1.c & ((1u << 3) | (1u << 5) | (1u << 6) | (1u << 15))) == 0);
  CHECK((l1.d & ((1u << 7) | (1u << 14) | (1u << 21))) == 0);
  CHECK((l1.d >> 9) & 1);
  CHECK_EQ(g_max_basic, 0x16);
  const Cpuid a = cpuid(0xA);
  CHECK(a.a == 0 && a.b == 0 && a.c == 0 && a.d == 0);
  CHECK((cpuid(7).b >> 1) & 1);  // TSC_ADJUST
  const Cpuid h = cpuid(0x40000000u);
  CHECK_EQ(h.a, 0x40000010u);
  for (uint32_t l = 0x40000001u; l < 0x40000010u; l++) {
    const Cpuid z = cpuid(l);
    CHECK(z.a == 0 && z.b == 0 && z.c == 0 && z.d == 0);
  }
  const Cpuid t = cpuid(0x40000010u);
  gprintf("cpuid: TSC %u kHz, LAPIC timer %u kHz (leaf 0x40000010)\n", t.a, t.b);
  CHECK(t.a != 0 && t.b != 0);
  const Cpuid c15 = cpuid(0x15), c16 = cpuid(0x16);
  CHECK(c15.a != 0 && c15.b != 0);
  // TSC = crystal * EBX / EAX, within 10 ppm (EAX is rounded where the exact ratio needs an
  // EBX so large that crystal kHz * EBX would wrap 32 bits, as Linux computes it).
  const uint64_t tsc_hz = div64(uint64_t{c15.c} * c15.b, c15.a), want_hz = uint64_t{t.a} * 1000;
  CHECK((tsc_hz > want_hz ? tsc_hz - want_hz : want_hz - tsc_hz) <= div64(want_hz, 100000));
  CHECK(uint64_t{c15.c / 1000} * c15.b <= 0xFFFFFFFFull);
  CHECK_EQ(c15.c, uint64_t{t.b} * 1000);
  CHECK_EQ(c16.a, t.a / 1000);
  CHECK_EQ(c16.c, t.b / 1000);
}

}  // namespace

void guest_test() {
  leaves();
  topology();
  monitor();
  xsave();
  rdtscp();
  hv_policy();
}
