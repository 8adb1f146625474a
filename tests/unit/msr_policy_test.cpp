// The MSR policy (hv/msr_policy.h): every table entry reads and round-trips a valid value,
// reserved bits and unknown MSRs give #GP, the host-dependent entries exist only where the host
// has them, TSC/TSC_ADJUST follow the SDM's coupling, EFER's LME/LMA rules, and the MSR-bitmap
// flags are consistent with where each MSR lives.
#include <catch2/catch.hpp>

#include <cstring>

#include "hv/msr_policy.h"

namespace {

using namespace hv::msr;

struct FakeVmcs {
  uint64_t f[10] = {};
  uint64_t pred_cmds = 0, last_pred_cmd = 0;
  static uint64_t get(void* c, Field x) { return static_cast<FakeVmcs*>(c)->f[static_cast<int>(x)]; }
  static void set(void* c, Field x, uint64_t v) { static_cast<FakeVmcs*>(c)->f[static_cast<int>(x)] = v; }
  static void pred(void* c, uint64_t v) {
    static_cast<FakeVmcs*>(c)->pred_cmds++;
    static_cast<FakeVmcs*>(c)->last_pred_cmd = v;
  }
  Backend backend() { return {this, get, set, pred}; }
  uint64_t& operator[](Field x) { return f[static_cast<int>(x)]; }
};

Config full_config() {
  Config c;
  c.phys_bits = 39;
  c.rdtscp = true;
  c.spec_ctrl = c.stibp = c.ssbd = true;
  c.arch_capabilities = true;
  c.arch_capabilities_value = ~0ull;
  return c;
}

struct Fixture {
  Config c = full_config();
  State s;
  FakeVmcs v;
  Backend b = v.backend();
  Fixture() {
    reset(s, c, 0 - 1000ull);
    v[Field::kPat] = kPatReset;
    v[Field::kTscOffset] = s.tsc_offset;
  }
  bool rd(uint32_t i, uint64_t& x, uint64_t tsc = 5000) { return read(c, s, b, i, tsc, x); }
  bool wr(uint32_t i, uint64_t x, uint64_t tsc = 5000) { return write(c, s, b, i, x, tsc); }
};

}  // namespace

TEST_CASE("msr policy: every entry is readable (but PRED_CMD) and round-trips a valid value", "[msr]") {
  Fixture t;
  unsigned n = 0;
  const Info* tab = table(n);
  REQUIRE(n > 20);
  for (unsigned i = 0; i < n; i++) {
    for (uint32_t idx = tab[i].index; idx < tab[i].index + tab[i].count; idx++) {
      CAPTURE(tab[i].name, idx);
      REQUIRE(find(t.c, idx) == &tab[i]);
      uint64_t x = 0;
      if (idx == kPredCmd) {
        CHECK_FALSE(t.rd(idx, x));
        continue;
      }
      REQUIRE(t.rd(idx, x));
      // Writing back what was read is accepted, except the read-only ones.
      const bool read_only = idx == kFeatureControl || idx == kMtrrCap || idx == kArchCapabilities;
      CHECK(t.wr(idx, x) == !read_only);
    }
  }
}

TEST_CASE("msr policy: unknown MSRs, host-dependent entries and the x2APIC range give #GP", "[msr]") {
  Fixture t;
  uint64_t x = 0;
  for (uint32_t idx : {0x0u, 0x11u, 0x1Au, 0xCEu /*PLATFORM_INFO*/, 0x345u /*PERF_CAPABILITIES*/, 0x179u /*MCG_CAP*/,
                       0x6E0u /*TSC_DEADLINE*/, 0x800u, 0x802u, 0x830u, 0x8FFu, 0x480u /*VMX_BASIC*/, 0xC0000104u,
                       0x40000000u, 0xFFFFFFFFu, 0x1DBu, 0x10Bu /*FLUSH_CMD*/, 0xDA0u /*XSS*/}) {
    CAPTURE(idx);
    CHECK(find(t.c, idx) == nullptr);
    CHECK_FALSE(t.rd(idx, x));
    CHECK_FALSE(t.wr(idx, 0));
  }
  Config bare;  // a host without SPEC_CTRL, ARCH_CAPABILITIES, RDTSCP
  State s;
  reset(s, bare, 0);
  FakeVmcs v;
  for (uint32_t idx : {kSpecCtrl, kPredCmd, kArchCapabilities, kTscAux}) {
    CAPTURE(idx);
    CHECK(find(bare, idx) == nullptr);
    CHECK_FALSE(read(bare, s, v.backend(), idx, 0, x));
    CHECK_FALSE(write(bare, s, v.backend(), idx, 0, 0));
  }
}

TEST_CASE("msr policy: TSC and TSC_ADJUST (SDM 17.17.3)", "[msr]") {
  Fixture t;
  uint64_t x = 0;
  // Reset: the guest TSC started near 0 (host 1000 at VM creation): host 5000 reads 4000.
  REQUIRE(t.rd(kTsc, x, 5000));
  CHECK(x == 4000);
  REQUIRE(t.rd(kTscAdjust, x));
  CHECK(x == 0);
  // Writing the TSC moves it and adds the change to TSC_ADJUST.
  REQUIRE(t.wr(kTsc, 1000000, 5000));
  REQUIRE(t.rd(kTsc, x, 6000));
  CHECK(x == 1001000);
  REQUIRE(t.rd(kTscAdjust, x));
  CHECK(x == 1000000 - 4000);
  CHECK(t.v[Field::kTscOffset] == t.s.tsc_offset);
  // Writing TSC_ADJUST moves the TSC by the change.
  REQUIRE(t.wr(kTscAdjust, 1000000 - 4000 + 500));
  REQUIRE(t.rd(kTsc, x, 6000));
  CHECK(x == 1001500);
  CHECK(t.v[Field::kTscOffset] == t.s.tsc_offset);
  // Backwards, through zero: 64-bit wrap-around arithmetic.
  REQUIRE(t.wr(kTscAdjust, 0 - 7ull));
  REQUIRE(t.rd(kTscAdjust, x));
  CHECK(x == 0 - 7ull);
  REQUIRE(t.wr(kTsc, 10, 6000));
  REQUIRE(t.rd(kTsc, x, 6000));
  CHECK(x == 10);
}

TEST_CASE("msr policy: EFER (LMA read-only, LME fixed while paging, reserved bits)", "[msr]") {
  Fixture t;
  uint64_t x = 0;
  constexpr uint64_t kSce = 1, kLme = 1 << 8, kLma = 1 << 10, kNxe = 1 << 11;
  REQUIRE(t.wr(kEfer, kSce | kLme | kNxe));
  REQUIRE(t.rd(kEfer, x));
  CHECK(x == (kSce | kLme | kNxe));
  CHECK_FALSE(t.wr(kEfer, 1 << 1));   // reserved
  CHECK_FALSE(t.wr(kEfer, 1 << 12));  // SVME: AMD only
  CHECK_FALSE(t.wr(kEfer, 1ull << 63));
  // Paging on, long mode active.
  t.v[Field::kCr0] = 0x80000011;
  t.v[Field::kEfer] = kLme | kLma;
  CHECK_FALSE(t.wr(kEfer, 0));                 // clearing LME with paging on
  CHECK(t.wr(kEfer, kLme | kNxe));             // LMA as written is ignored: stays set
  CHECK(t.v[Field::kEfer] == (kLme | kLma | kNxe));
  CHECK(t.wr(kEfer, kLme | kLma | kSce));
  CHECK(t.v[Field::kEfer] == (kLme | kLma | kSce));
  t.v[Field::kEfer] = 0;
  CHECK_FALSE(t.wr(kEfer, kLme));              // setting LME with paging on
  t.v[Field::kCr0] = 0x11;
  CHECK(t.wr(kEfer, kLme | kLma));             // paging off: allowed; LMA not taken
  CHECK(t.v[Field::kEfer] == kLme);
}

TEST_CASE("msr policy: PAT and MTRR memory types and reserved bits", "[msr]") {
  Fixture t;
  uint64_t x = 0;
  CHECK(valid_pat(kPatReset));
  CHECK(t.wr(kPat, 0x0001040506070001ull));
  REQUIRE(t.rd(kPat, x));
  CHECK(x == 0x0001040506070001ull);
  for (uint64_t bad : {2ull, 3ull, 8ull, 0x0700000000000000ull | (2ull << 48), 0x80ull << 56}) {
    CAPTURE(bad);
    CHECK_FALSE(t.wr(kPat, bad));
  }
  CHECK(x == t.v[Field::kPat]);  // unchanged by the refused writes

  REQUIRE(t.rd(kMtrrCap, x));
  CHECK((x & 0xFF) == kVariableMtrrs);
  CHECK(x & (1 << 8));  // fixed ranges
  CHECK(x & (1 << 10)); // WC
  CHECK_FALSE(t.wr(kMtrrCap, x));

  CHECK(t.wr(kMtrrDefType, 0xC06));
  REQUIRE(t.rd(kMtrrDefType, x));
  CHECK(x == 0xC06);
  CHECK_FALSE(t.wr(kMtrrDefType, 0x802));   // type 2 reserved
  CHECK_FALSE(t.wr(kMtrrDefType, 0x1006));  // bit 12 reserved
  CHECK_FALSE(t.wr(kMtrrDefType, 0x106));   // bit 8 reserved

  // Variable: base 0x200+2n, mask 0x201+2n; MAXPHYADDR 39 here.
  CHECK(t.wr(0x200, 0x80000006));
  CHECK(t.wr(0x201, 0x7F80000800));
  CHECK(t.wr(0x20F, 0x7FFFFFF800));
  CHECK_FALSE(t.wr(0x210, 0));  // only 8 pairs
  CHECK_FALSE(t.wr(0x200, 0x80000106));  // bit 8 reserved
  CHECK_FALSE(t.wr(0x200, 0x80000007));  // type 7 is not an MTRR type
  CHECK_FALSE(t.wr(0x200, 1ull << 39));  // at MAXPHYADDR
  CHECK_FALSE(t.wr(0x201, 0x400));       // bit 10 reserved
  CHECK_FALSE(t.wr(0x201, 1ull << 39));
  REQUIRE(t.rd(0x201, x));
  CHECK(x == 0x7F80000800);

  // Fixed: one type per byte.
  for (uint32_t idx : {0x250u, 0x258u, 0x259u, 0x268u, 0x26Fu}) {
    CAPTURE(idx);
    CHECK(t.wr(idx, 0x0606060605050404ull));
    REQUIRE(t.rd(idx, x));
    CHECK(x == 0x0606060605050404ull);
    CHECK_FALSE(t.wr(idx, 0x0606060605050204ull));
    CHECK_FALSE(t.wr(idx, 0x0706060605050404ull));
  }
  CHECK_FALSE(t.wr(0x251, 0));
  CHECK_FALSE(t.wr(0x25A, 0));
  CHECK_FALSE(t.wr(0x270, 0));
}

TEST_CASE("msr policy: APIC base, MISC_ENABLE, FEATURE_CONTROL, microcode, ARCH_CAPABILITIES", "[msr]") {
  Fixture t;
  uint64_t x = 0;
  REQUIRE(t.rd(kApicBase, x));
  CHECK(x == 0xFEE00900);
  Config ap = t.c;
  ap.bsp = false;
  State s;
  reset(s, ap, 0);
  CHECK(s.apic_base == 0xFEE00800);
  CHECK(t.wr(kApicBase, 0xFEE00000));  // disable; BSP stays
  REQUIRE(t.rd(kApicBase, x));
  CHECK(x == 0xFEE00100);
  CHECK(t.wr(kApicBase, 0xFEC00800));  // relocate
  CHECK_FALSE(t.wr(kApicBase, 0xFEE00C00));  // x2APIC mode: hidden
  CHECK_FALSE(t.wr(kApicBase, 0xFEE00801));  // reserved
  CHECK_FALSE(t.wr(kApicBase, 0xFEE00A00));  // bit 9 reserved
  CHECK_FALSE(t.wr(kApicBase, (1ull << 39) | 0x800));
  t.c.x2apic = true;
  CHECK(t.wr(kApicBase, 0xFEE00C00));
  CHECK_FALSE(t.wr(kApicBase, 0xFEE00400));  // EXTD without EN

  REQUIRE(t.rd(kMiscEnable, x));
  CHECK(x == kMiscEnableValue);
  CHECK((x & (1 << 18)) == 0);  // MWAIT not enabled
  CHECK(t.wr(kMiscEnable, x));
  CHECK_FALSE(t.wr(kMiscEnable, x | (1 << 18)));

  REQUIRE(t.rd(kFeatureControl, x));
  CHECK(x == 1);  // locked, VMX off
  CHECK_FALSE(t.wr(kFeatureControl, 5));

  REQUIRE(t.rd(kBiosSignId, x));
  CHECK(t.wr(kBiosSignId, 0));

  REQUIRE(t.rd(kArchCapabilities, x));
  CHECK(x == kArchCapabilitiesMask);  // host all ones: only the safe bits pass
  CHECK_FALSE(t.wr(kArchCapabilities, 0));
}

TEST_CASE("msr policy: switched and VMCS-held MSRs, canonical checks, SPEC_CTRL and PRED_CMD", "[msr]") {
  Fixture t;
  uint64_t x = 0;
  const uint64_t canon = 0xFFFF800000001000ull, noncanon = 0x0000800000000000ull;
  for (uint32_t idx : {kLstar, kCstar, kKernelGsBase, kFsBase, kGsBase, kSysenterEsp, kSysenterEip}) {
    CAPTURE(idx);
    CHECK(t.wr(idx, canon));
    REQUIRE(t.rd(idx, x));
    CHECK(x == canon);
    CHECK_FALSE(t.wr(idx, noncanon));
    REQUIRE(t.rd(idx, x));
    CHECK(x == canon);
  }
  CHECK(t.v[Field::kFsBase] == canon);
  CHECK(t.s.lstar == canon);
  CHECK(t.wr(kStar, 0x0023001000000000ull));
  CHECK(t.s.star == 0x0023001000000000ull);
  CHECK(t.wr(kSfmask, 0x47700));
  CHECK_FALSE(t.wr(kSfmask, 1ull << 32));
  CHECK(t.wr(kTscAux, 3));
  CHECK(t.s.tsc_aux == 3);
  CHECK_FALSE(t.wr(kTscAux, 1ull << 32));
  CHECK(t.wr(kDebugCtl, 2));
  CHECK_FALSE(t.wr(kDebugCtl, 1));  // LBR: not honoured
  CHECK(t.v[Field::kDebugCtl] == 2);

  CHECK(t.wr(kSpecCtrl, 7));
  CHECK_FALSE(t.wr(kSpecCtrl, 8));
  t.c.ssbd = false;
  CHECK_FALSE(t.wr(kSpecCtrl, 4));
  CHECK(t.wr(kPredCmd, 1));
  CHECK(t.v.pred_cmds == 1);
  CHECK(t.wr(kPredCmd, 0));
  CHECK(t.v.pred_cmds == 1);
  CHECK_FALSE(t.wr(kPredCmd, 2));
  CHECK(t.v.pred_cmds == 1);

  // Reset values never carry anything but the architectural reset state.
  State s;
  Config c = full_config();
  reset(s, c, 0);
  CHECK(s.star == 0);
  CHECK(s.lstar == 0);
  CHECK(s.kernel_gs_base == 0);
  CHECK(s.tsc_aux == 0);
  CHECK(s.spec_ctrl == 0);
}

TEST_CASE("msr policy: the bitmap flags follow where each MSR lives", "[msr]") {
  unsigned n = 0;
  const Info* tab = table(n);
  for (unsigned i = 0; i < n; i++) {
    const Info& e = tab[i];
    CAPTURE(e.name);
    // An emulated MSR has no real register behind it that holds the guest's value (the TSC is
    // the exception: RDMSR with TSC offsetting returns the guest's TSC), nor does a command.
    if (e.home == Home::kEmulated && e.index != kTsc) CHECK_FALSE((e.read_direct || e.write_direct));
    if (e.home == Home::kCommand) CHECK_FALSE((e.read_direct || e.write_direct));
    if (e.index == kTsc) CHECK_FALSE(e.write_direct);
    // A write that goes to the CPU directly needs no check hv must make: only where the CPU
    // itself checks (canonical addresses) or anything goes.
    if (e.write_direct)
      CHECK((e.index == kFsBase || e.index == kGsBase || e.index == kKernelGsBase || e.index == kSysenterCs ||
             e.index == kSysenterEsp || e.index == kSysenterEip));
    // SPEC_CTRL's value must be known to hv at every exit.
    if (e.index == kSpecCtrl) CHECK_FALSE((e.read_direct || e.write_direct));
  }
}
