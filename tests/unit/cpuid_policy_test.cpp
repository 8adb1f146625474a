// The CPUID policy (hv/cpuid_policy.h) against fake hosts: a Skylake-X-like CPU, one that has
// every feature bit set (so every bit the policy lets through is visible), and an older CPU
// without XSAVE and with few leaves. Invariants: no bit outside the policy's allowed set ever
// reaches a guest, whatever the host has; the hidden features stay hidden; topology (leaf 1,
// 4, 0xB) agrees with the vCPU count and index; leaf 0xD agrees with the XCR0 mask; the
// hypervisor and frequency leaves agree with each other.
#include <catch2/catch.hpp>

#include <cmath>

#include <map>
#include <random>
#include <utility>

#include "hv/cpuid_cache.h"
#include "hv/cpuid_policy.h"

namespace {

using hv::VcpuFeatures;
using hv::cpuid::guest_cpuid;
using hv::cpuid::Inputs;
using hv::cpuid::Regs;

struct FakeHost {
  std::map<std::pair<uint32_t, uint32_t>, Regs> leaves;
  bool subleaf_indexed(uint32_t leaf) const { return leaf == 4 || leaf == 7 || leaf == 0xB || leaf == 0xD; }
  Regs get(uint32_t leaf, uint32_t sub) const {
    // An Intel CPU answers a leaf above its maximum with its highest basic leaf.
    const uint32_t max_basic = leaves.at({0, 0}).eax;
    const uint32_t max_ext = leaves.count({0x80000000u, 0}) ? leaves.at({0x80000000u, 0}).eax : 0;
    if ((leaf < 0x80000000u && leaf > max_basic) || (leaf >= 0x80000000u && leaf > max_ext)) {
      leaf = max_basic;
    }
    if (!subleaf_indexed(leaf)) sub = 0;
    auto it = leaves.find({leaf, sub});
    return it == leaves.end() ? Regs{} : it->second;
  }
  static Regs call(void* ctx, uint32_t leaf, uint32_t sub) { return static_cast<FakeHost*>(ctx)->get(leaf, sub); }
};

constexpr uint32_t kIntelB = 0x756e6547, kIntelD = 0x49656e69, kIntelC = 0x6c65746e;  // "GenuineIntel"

// Roughly what a Skylake-SP reports (values as the SDM tables describe them).
FakeHost skylake_x() {
  FakeHost h;
  h.leaves[{0, 0}] = {0x16, kIntelB, kIntelC, kIntelD};
  h.leaves[{1, 0}] = {0x50654, 0x00400800, 0x7FFEFBFF, 0xBFEBFBFF};  // VMX, PDCM, x2APIC, MONITOR ... all on
  h.leaves[{2, 0}] = {0x76036301, 0x00F0B5FF, 0, 0x00C30000};
  h.leaves[{4, 0}] = {0x7C004121, 0x01C0003F, 0x3F, 0};
  h.leaves[{4, 1}] = {0x7C004122, 0x01C0003F, 0x3F, 0};
  h.leaves[{4, 2}] = {0x7C004143, 0x03C0003F, 0x3FF, 0};
  h.leaves[{4, 3}] = {0x7C0FC163, 0x0280003F, 0xDFFF, 4};
  h.leaves[{5, 0}] = {0x40, 0x40, 3, 0x2020};
  h.leaves[{6, 0}] = {0x77, 2, 9, 0};
  h.leaves[{7, 0}] = {0, 0xD39FFFFB, 0x00000818, 0xBC000400};  // SGX off; MPX, PT, AVX-512 on
  h.leaves[{0xA, 0}] = {0x07300404, 0, 0, 0x603};
  h.leaves[{0xB, 0}] = {1, 2, 0x100, 0x21};
  h.leaves[{0xB, 1}] = {5, 0x20, 0x201, 0x21};
  h.leaves[{0xD, 0}] = {0x2FF, 0xA88, 0xA88, 0};  // x87 SSE AVX BNDREGS BNDCSR opmask ZMM_Hi256 Hi16_ZMM PKRU
  h.leaves[{0xD, 1}] = {0xF, 0xA08, 0x100, 0};
  h.leaves[{0xD, 2}] = {0x100, 0x240, 0, 0};
  h.leaves[{0xD, 3}] = {0x40, 0x3C0, 0, 0};
  h.leaves[{0xD, 4}] = {0x40, 0x400, 0, 0};
  h.leaves[{0xD, 5}] = {0x40, 0x440, 0, 0};
  h.leaves[{0xD, 6}] = {0x200, 0x480, 0, 0};
  h.leaves[{0xD, 7}] = {0x400, 0x680, 0, 0};
  h.leaves[{0xD, 9}] = {8, 0xA80, 0, 0};
  h.leaves[{0x14, 0}] = {1, 0xF, 7, 0};
  h.leaves[{0x15, 0}] = {2, 0xB0, 0, 0};
  h.leaves[{0x16, 0}] = {0x834, 0xE10, 0x64, 0};
  h.leaves[{0x80000000u, 0}] = {0x80000008u, 0, 0, 0};
  h.leaves[{0x80000001u, 0}] = {0, 0, 0x121, 0x2C100800};
  h.leaves[{0x80000002u, 0}] = {0x65746E49, 0x2952286C, 0x6F655820, 0x2952286E};
  h.leaves[{0x80000006u, 0}] = {0, 0, 0x04008040, 0};
  h.leaves[{0x80000007u, 0}] = {0, 0, 0, 0x100};
  h.leaves[{0x80000008u, 0}] = {0x302E, 0, 0, 0};
  return h;
}

// Every feature bit of every leaf set: shows exactly what the policy lets through.
FakeHost everything() {
  FakeHost h = skylake_x();
  h.leaves[{1, 0}].ecx = h.leaves[{1, 0}].edx = ~0u;
  h.leaves[{7, 0}] = {~0u, ~0u, ~0u, ~0u};
  h.leaves[{0x80000001u, 0}] = {~0u, ~0u, ~0u, ~0u};
  h.leaves[{0x80000007u, 0}] = {~0u, ~0u, ~0u, ~0u};
  h.leaves[{0x80000008u, 0}] = {~0u, ~0u, ~0u, ~0u};
  h.leaves[{6, 0}] = {~0u, ~0u, ~0u, ~0u};
  h.leaves[{0xA, 0}] = {~0u, ~0u, ~0u, ~0u};
  return h;
}

// An older CPU: basic leaves up to 0xB, no XSAVE, no leaf 0xD/0x15/0x16, extended up to 0x80000008.
FakeHost nehalem() {
  FakeHost h;
  h.leaves[{0, 0}] = {0xB, kIntelB, kIntelC, kIntelD};
  h.leaves[{1, 0}] = {0x106A5, 0x00100800, 0x009CE3BD, 0xBFEBFBFF};
  h.leaves[{4, 0}] = {0x1C004121, 0x01C0003F, 0x3F, 0};
  h.leaves[{4, 1}] = {0x1C004163, 0x03C0003F, 0x1FFF, 2};
  h.leaves[{7, 0}] = {0, 0, 0, 0};
  h.leaves[{0xB, 0}] = {1, 2, 0x100, 0};
  h.leaves[{0xB, 1}] = {4, 8, 0x201, 0};
  h.leaves[{0x80000000u, 0}] = {0x80000008u, 0, 0, 0};
  h.leaves[{0x80000001u, 0}] = {0, 0, 1, 0x28100800};
  h.leaves[{0x80000008u, 0}] = {0x3028, 0, 0, 0};
  return h;
}

Inputs inputs(FakeHost& h, VcpuFeatures f = {}, unsigned index = 0, unsigned count = 1) {
  Inputs in;
  in.host = FakeHost::call;
  in.host_ctx = &h;
  in.features = f;
  in.vcpu_index = index;
  in.vcpu_count = count;
  in.tsc_khz = 2100000;
  in.phys_bits = 46;
  return in;
}

VcpuFeatures with_xsave_avx() {
  VcpuFeatures f;
  f.xsave = true;
  f.xcr0_mask = 0x7;  // x87 SSE AVX
  return f;
}

VcpuFeatures with_avx512() {
  VcpuFeatures f;
  f.xsave = true;
  f.xcr0_mask = 0xE7;
  return f;
}

constexpr uint32_t bit(unsigned n) { return 1u << n; }

}  // namespace

TEST_CASE("cpuid policy: no bit outside the allowed set reaches the guest, whatever the host has", "[cpuid]") {
  FakeHost h = everything();
  VcpuFeatures variants[4];
  variants[1] = with_xsave_avx();
  variants[2] = with_avx512();
  variants[3] = with_avx512();
  variants[3].rdtscp = variants[3].invpcid = variants[3].x2apic = variants[3].tsc_deadline = variants[3].lapic = true;
  for (const VcpuFeatures& f : variants) {
    for (bool osxsave : {false, true}) {
      Inputs in = inputs(h, f);
      in.guest_cr4_osxsave = osxsave;
      const hv::cpuid::Allowed a = hv::cpuid::allowed_bits(f);
      const Regs l1 = guest_cpuid(in, 1, 0), l7 = guest_cpuid(in, 7, 0), e1 = guest_cpuid(in, 0x80000001u, 0);
      CHECK((l1.ecx & ~a.l1_ecx) == 0);
      CHECK((l1.edx & ~a.l1_edx) == 0);
      CHECK((l7.ebx & ~a.l7_ebx) == 0);
      CHECK((l7.ecx & ~a.l7_ecx) == 0);
      CHECK((l7.edx & ~a.l7_edx) == 0);
      CHECK((e1.ecx & ~a.e1_ecx) == 0);
      CHECK((e1.edx & ~a.e1_edx) == 0);
      // Hidden whatever VcpuFeatures says: VMX 5, SMX 6, PDCM 15, MONITOR 3, DS 21, MCE 7, MCA 14.
      CHECK((l1.ecx & (bit(3) | bit(5) | bit(6) | bit(15))) == 0);
      CHECK((l1.edx & (bit(7) | bit(14) | bit(21))) == 0);
      // SGX 2, MPX 14, PT 25; PKU 3, WAITPKG 5, LA57 16; AMX, CET.
      CHECK((l7.ebx & (bit(2) | bit(14) | bit(25))) == 0);
      CHECK((l7.ecx & (bit(3) | bit(5) | bit(7) | bit(16))) == 0);
      CHECK((l7.edx & (bit(20) | bit(22) | bit(24) | bit(25))) == 0);
      CHECK(l1.ecx & bit(31));  // hypervisor
      CHECK(l7.ebx & bit(1));   // TSC_ADJUST: emulated, always
      CHECK(((l1.ecx >> 27) & 1) == (f.xsave && osxsave ? 1u : 0u));
      // No PMU, no MONITOR leaf, no thermal leaf, no subleaves of 7 beyond 0.
      CHECK(guest_cpuid(in, 0xA, 0) == Regs{});
      CHECK(guest_cpuid(in, 5, 0) == Regs{});
      CHECK(guest_cpuid(in, 6, 0) == Regs{});
      CHECK(l7.eax == 0);
      CHECK(guest_cpuid(in, 7, 1) == Regs{});
      CHECK(guest_cpuid(in, 0x14, 0) == Regs{});
    }
  }
}

TEST_CASE("cpuid policy: features follow VcpuFeatures exactly where the host has them", "[cpuid]") {
  FakeHost h = skylake_x();
  SECTION("nothing virtualized: XSAVE, AVX, INVPCID, RDTSCP, x2APIC, TSC-deadline, APIC hidden") {
    Inputs in = inputs(h);
    const Regs l1 = guest_cpuid(in, 1, 0), l7 = guest_cpuid(in, 7, 0), e1 = guest_cpuid(in, 0x80000001u, 0);
    CHECK((l1.ecx & (bit(12) | bit(21) | bit(24) | bit(26) | bit(27) | bit(28) | bit(29))) == 0);
    CHECK((l1.edx & bit(9)) == 0);
    CHECK((l7.ebx & (bit(5) | bit(10) | bit(16) | bit(17) | bit(30) | bit(31))) == 0);
    CHECK((l7.ecx & bit(22)) == 0);  // RDPID
    CHECK((e1.edx & bit(27)) == 0);  // RDTSCP
    CHECK(guest_cpuid(in, 0xD, 0) == Regs{});
    CHECK(guest_cpuid(in, 0xD, 1) == Regs{});
    // Passed through: SSE4.2, POPCNT, AES; SEP, MTRR, PAT, FXSR; SMEP, BMI2; SYSCALL, NX, LM.
    CHECK((l1.ecx & (bit(20) | bit(23) | bit(25))) == (bit(20) | bit(23) | bit(25)));
    CHECK((l1.edx & (bit(11) | bit(12) | bit(16) | bit(24))) == (bit(11) | bit(12) | bit(16) | bit(24)));
    CHECK((l7.ebx & (bit(7) | bit(8))) == (bit(7) | bit(8)));
    CHECK((e1.edx & (bit(11) | bit(20) | bit(29))) == (bit(11) | bit(20) | bit(29)));
  }
  SECTION("rdtscp and invpcid on") {
    VcpuFeatures f;
    f.rdtscp = f.invpcid = true;
    Inputs in = inputs(h, f);
    CHECK(guest_cpuid(in, 0x80000001u, 0).edx & bit(27));
    CHECK(guest_cpuid(in, 7, 0).ebx & bit(10));
  }
  SECTION("the host lacks it: not advertised even when VcpuFeatures says so") {
    FakeHost n = nehalem();
    VcpuFeatures f = with_avx512();
    f.rdtscp = f.invpcid = true;
    Inputs in = inputs(n, f);
    CHECK((guest_cpuid(in, 1, 0).ecx & (bit(26) | bit(28))) == 0);
    CHECK((guest_cpuid(in, 7, 0).ebx & (bit(5) | bit(10) | bit(16))) == 0);
  }
}

TEST_CASE("cpuid policy: topology agrees with the vCPU count and index (leaf 1, 4, 0xB)", "[cpuid]") {
  for (unsigned count : {1u, 2u, 3u, 4u}) {
    for (unsigned index = 0; index < count; index++) {
      for (int host_kind = 0; host_kind < 2; host_kind++) {
        FakeHost h = host_kind ? nehalem() : skylake_x();
        Inputs in = inputs(h, {}, index, count);
        const Regs l1 = guest_cpuid(in, 1, 0);
        CAPTURE(count, index, host_kind);
        CHECK(l1.ebx >> 24 == index);
        const unsigned ids = (l1.ebx >> 16) & 0xFF;
        CHECK(ids >= count);
        CHECK((ids & (ids - 1)) == 0);  // a power of two
        CHECK(((l1.edx >> 28) & 1) == (count > 1 ? 1u : 0u));
        const Regs smt = guest_cpuid(in, 0xB, 0), core = guest_cpuid(in, 0xB, 1), none = guest_cpuid(in, 0xB, 2);
        CHECK(smt.edx == index);
        CHECK(core.edx == index);
        CHECK((smt.ecx >> 8 & 0xFF) == 1);
        CHECK((smt.ebx & 0xFFFF) == 1);
        CHECK((core.ecx >> 8 & 0xFF) == 2);
        CHECK((core.ebx & 0xFFFF) == count);
        CHECK((1u << (core.eax & 0x1F)) >= count);  // the core shift covers every APIC ID
        CHECK((1u << (core.eax & 0x1F)) == ids);
        CHECK((none.ecx >> 8 & 0xFF) == 0);
        CHECK(none.ebx == 0);
        // Leaf 4: cores per package and sharing agree with the same count.
        for (uint32_t sub = 0;; sub++) {
          const Regs c = guest_cpuid(in, 4, sub);
          if ((c.eax & 0x1F) == 0) break;
          CHECK((c.eax >> 26) + 1 == ids);
          const unsigned level = (c.eax >> 5) & 7;
          CHECK(((c.eax >> 14) & 0xFFF) + 1 == (level >= 3 ? ids : 1u));
          REQUIRE(sub < 8);
        }
      }
    }
  }
}

TEST_CASE("cpuid policy: leaf 0xD agrees with the XCR0 mask and the guest's XCR0", "[cpuid]") {
  FakeHost h = skylake_x();
  SECTION("AVX: x87 | SSE | AVX") {
    Inputs in = inputs(h, with_xsave_avx());
    in.guest_xcr0 = 0x3;
    const Regs d0 = guest_cpuid(in, 0xD, 0);
    CHECK(d0.eax == 0x7);
    CHECK(d0.edx == 0);
    CHECK(d0.ecx == 0x240 + 0x100);  // end of the AVX component
    CHECK(d0.ebx == 576);            // XCR0 = x87 | SSE: legacy area and header only
    in.guest_xcr0 = 0x7;
    CHECK(guest_cpuid(in, 0xD, 0).ebx == 0x340);
    CHECK(guest_cpuid(in, 0xD, 2) == Regs{0x100, 0x240, 0, 0});
    CHECK(guest_cpuid(in, 0xD, 3) == Regs{});  // MPX never offered
    CHECK(guest_cpuid(in, 0xD, 9) == Regs{});  // PKRU never offered
    const Regs d1 = guest_cpuid(in, 0xD, 1);
    CHECK((d1.eax & bit(3)) == 0);  // no XSAVES
    CHECK(d1.eax == 0x7);
    CHECK(d1.ecx == 0);
    CHECK(d1.edx == 0);
    const Regs l1 = guest_cpuid(in, 1, 0);
    CHECK(l1.ecx & bit(26));
    CHECK(l1.ecx & bit(28));
    CHECK(guest_cpuid(in, 7, 0).ebx & bit(5));      // AVX2
    CHECK((guest_cpuid(in, 7, 0).ebx & bit(16)) == 0);  // no AVX-512 without its state
  }
  SECTION("AVX-512") {
    Inputs in = inputs(h, with_avx512());
    in.guest_xcr0 = 0xE7;
    const Regs d0 = guest_cpuid(in, 0xD, 0);
    CHECK(d0.eax == 0xE7);
    CHECK(d0.ecx == 0x680 + 0x400);
    CHECK(d0.ebx == d0.ecx);
    CHECK(guest_cpuid(in, 7, 0).ebx & bit(16));
  }
  SECTION("every advertised component has its subleaf, no other does") {
    Inputs in = inputs(h, with_avx512());
    const Regs d0 = guest_cpuid(in, 0xD, 0);
    const uint64_t mask = (uint64_t{d0.edx} << 32) | d0.eax;
    for (unsigned i = 2; i < 64; i++) {
      const Regs s = guest_cpuid(in, 0xD, i);
      CAPTURE(i);
      CHECK(((mask >> i) & 1) == (s.eax != 0 ? 1u : 0u));
      if (s.eax) CHECK(s.ebx + s.eax <= d0.ecx);
    }
  }
  SECTION("the mask never exceeds the host's") {
    FakeHost n = skylake_x();
    n.leaves[{0xD, 0}].eax = 0x3;  // host without AVX state
    VcpuFeatures f = with_xsave_avx();
    Inputs in = inputs(n, f);
    CHECK(guest_cpuid(in, 0xD, 0).eax == 0x3);
  }
}

TEST_CASE("cpuid policy: hypervisor leaves and the frequencies agree", "[cpuid]") {
  FakeHost h = skylake_x();
  Inputs in = inputs(h);
  const Regs hv0 = guest_cpuid(in, 0x40000000u, 0);
  CHECK(hv0.eax == 0x40000010u);
  CHECK(hv0.ebx == 0x742D7668u);  // "hv-t" - what tests/guests/lib under_hv() looks for
  CHECK(hv0.ecx == 0x6D2D7064u);
  CHECK(hv0.edx == 0x2020756Du);
  const Regs t = guest_cpuid(in, 0x40000010u, 0);
  CHECK(t.eax == 2100000);
  CHECK(t.ebx == hv::cpuid::kLapicTimerKhz);
  for (uint32_t l = 0x40000001u; l < 0x40000010u; l++) CHECK(guest_cpuid(in, l, 0) == Regs{});
  CHECK(guest_cpuid(in, 0x40000011u, 0) == Regs{});
  CHECK(guest_cpuid(in, 0x4FFFFFFFu, 0) == Regs{});
  // Leaf 0x15: crystal * EBX / EAX = the TSC rate; the crystal is the LAPIC timer clock.
  const Regs l15 = guest_cpuid(in, 0x15, 0);
  REQUIRE(l15.eax != 0);
  CHECK(uint64_t{l15.ecx} * l15.ebx / l15.eax == 2100000ull * 1000);
  CHECK(l15.ecx == uint64_t{t.ebx} * 1000);
  const Regs l16 = guest_cpuid(in, 0x16, 0);
  CHECK(l16.eax == 2100);
  CHECK(l16.ecx == t.ebx / 1000);
  SECTION("a TSC rate whose exact ratio needs a large EBX (Bochs: 49.997 MHz)") {
    // Linux multiplies crystal_khz by EBX in 32 bits: the product must not wrap, and the
    // rate it gets must be within 10 ppm of the real one.
    in.tsc_khz = 49997;
    const Regs r = guest_cpuid(in, 0x15, 0);
    REQUIRE(r.eax != 0);
    const uint64_t crystal_khz = r.ecx / 1000;
    CHECK(crystal_khz * r.ebx <= 0xFFFFFFFFull);
    const double khz = double(crystal_khz) * r.ebx / r.eax;
    CHECK(std::abs(khz - 49997.0) / 49997.0 < 1e-5);
  }
  SECTION("an unknown TSC rate: the frequency leaves are zero") {
    in.tsc_khz = 0;
    CHECK(guest_cpuid(in, 0x15, 0) == Regs{});
    CHECK(guest_cpuid(in, 0x16, 0) == Regs{});
    CHECK(guest_cpuid(in, 0x40000010u, 0).eax == 0);
  }
}

TEST_CASE("cpuid policy: leaf ranges, unknown leaves and leaves the host lacks", "[cpuid]") {
  FakeHost h = nehalem();
  Inputs in = inputs(h);
  CHECK(guest_cpuid(in, 0, 0).eax == hv::cpuid::kMaxBasicLeaf);
  CHECK(guest_cpuid(in, 0, 0).ebx == kIntelB);
  CHECK(guest_cpuid(in, 0x80000000u, 0).eax == 0x80000008u);
  // The host has no leaf 0xD: its answer (the highest basic leaf's) must not show through.
  CHECK(guest_cpuid(in, 0xD, 0) == Regs{});
  CHECK(guest_cpuid(in, 0x10, 0) == Regs{});
  // Leaf 0x15/0x16 come from hv's TSC rate even where the host has neither.
  CHECK(guest_cpuid(in, 0x15, 0).ebx != 0);
  // Above the maximum: zero (0x1F, the V2 topology leaf, is hidden).
  CHECK(guest_cpuid(in, 0x17, 0) == Regs{});
  CHECK(guest_cpuid(in, 0x1F, 0) == Regs{});
  CHECK(guest_cpuid(in, 0x80000009u, 0) == Regs{});
  CHECK(guest_cpuid(in, 0xC0000000u, 0) == Regs{});
  // MAXPHYADDR is the guest's; linear bits 48.
  CHECK((guest_cpuid(in, 0x80000008u, 0).eax & 0xFF) == 46);
  CHECK(((guest_cpuid(in, 0x80000008u, 0).eax >> 8) & 0xFF) == 48);
}

// The CPUID exit's cache (hv/cpuid_cache.h): after any sequence of lookups, with the guest
// changing CR4.OSXSAVE and XCR0 in between, every answer is the policy's own for the same
// inputs; and repeated questions are answered from the cache.
TEST_CASE("cpuid cache: every answer is the policy's, whatever the order and the guest state", "[cpuid]") {
  FakeHost h = skylake_x();
  Inputs in = inputs(h, with_avx512(), 1, 4);
  hv::cpuid::Cache cache;
  std::mt19937 rng(20261201);
  const uint32_t leaves[] = {0, 1, 4, 7, 0xB, 0xD, 0x16, 0x17, 0x40000000u, 0x40000010u, 0x80000000u,
                             0x80000001u, 0x80000008u, 0x80000009u};
  const uint64_t xcr0s[] = {1, 3, 7, 0xE7};
  for (int i = 0; i < 20000; i++) {
    const uint32_t leaf = leaves[rng() % (sizeof leaves / sizeof leaves[0])];
    const uint32_t sub = rng() % 4;
    in.guest_cr4_osxsave = leaf == 1 && (rng() & 1);
    in.guest_xcr0 = xcr0s[rng() % 4];
    const Regs want = guest_cpuid(in, leaf, sub);
    const Regs got = cache.lookup(in, leaf, sub);
    INFO("leaf 0x" << std::hex << leaf << " sub " << sub << " xcr0 " << in.guest_xcr0 << " osxsave " << in.guest_cr4_osxsave);
    REQUIRE(got == want);
  }
  CHECK(cache.hits() > 0);
  CHECK(cache.hits() + cache.misses() == 20000);
  // The same question twice in a row is one miss, then hits.
  hv::cpuid::Cache c2;
  in.guest_cr4_osxsave = false;
  in.guest_xcr0 = 1;
  for (int i = 0; i < 10; i++) CHECK(c2.lookup(in, 0, 0) == guest_cpuid(in, 0, 0));
  CHECK(c2.misses() == 1);
  CHECK(c2.hits() == 9);
  // Leaf 1 with OSXSAVE flipped and leaf 0xD with another XCR0 are other keys, not stale hits.
  in.guest_cr4_osxsave = true;
  const Regs l1_on = c2.lookup(in, 1, 0);
  in.guest_cr4_osxsave = false;
  const Regs l1_off = c2.lookup(in, 1, 0);
  CHECK(l1_on != l1_off);
  in.guest_xcr0 = 0xE7;
  const Regs d_big = c2.lookup(in, 0xD, 0);
  in.guest_xcr0 = 1;
  CHECK(c2.lookup(in, 0xD, 0).ebx < d_big.ebx);
}
