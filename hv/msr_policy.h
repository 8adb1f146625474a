// The MSR policy: every model-specific register a guest may touch, where its value lives, its
// reset value, which writes are refused with #GP, and why (the table is kTable in
// msr_policy.cpp; docs/guest-platform.md section 2 is the same table in prose). An MSR that is
// not in the table raises #GP on RDMSR and WRMSR, as a CPU does for an MSR it does not have.
//
// Pure code: the VMCS-held MSRs are reached through a small backend (hv/exit_msr.cpp implements
// it with VMREAD/VMWRITE, tests/unit/msr_policy_test.cpp with an array), so every rule runs in
// host unit tests.
//
// Where an MSR lives:
//   kVmcs      a guest-state field of the VMCS, loaded at entry and saved at exit by the CPU
//              (FS/GS base, SYSENTER_*, EFER, PAT, DEBUGCTL);
//   kSwitched  in the real MSR while the guest runs, hv's own value at all other times: hv
//              writes the guest's value before entry and puts its own back after every exit
//              (KERNEL_GS_BASE, STAR, LSTAR, CSTAR, SFMASK, TSC_AUX, SPEC_CTRL; see
//              hv/exit_msr.cpp load_guest_msrs/restore_host_msrs);
//   kEmulated  only in hv's per-vCPU State (TSC through the VMCS TSC offset, TSC_ADJUST,
//              APIC_BASE, MISC_ENABLE, MTRRs, FEATURE_CONTROL, BIOS_SIGN_ID, ARCH_CAPABILITIES);
//   kCommand   write-only, forwarded to the host CPU (PRED_CMD).
#pragma once

#include <stdint.h>

namespace hv::msr {

// Architectural MSR indices (SDM Vol. 4, table 2-2).
inline constexpr uint32_t kTsc = 0x10;
inline constexpr uint32_t kApicBase = 0x1B;
inline constexpr uint32_t kFeatureControl = 0x3A;
inline constexpr uint32_t kTscAdjust = 0x3B;
inline constexpr uint32_t kSpecCtrl = 0x48;
inline constexpr uint32_t kPredCmd = 0x49;
inline constexpr uint32_t kBiosSignId = 0x8B;
inline constexpr uint32_t kMtrrCap = 0xFE;
inline constexpr uint32_t kArchCapabilities = 0x10A;
inline constexpr uint32_t kSysenterCs = 0x174;
inline constexpr uint32_t kSysenterEsp = 0x175;
inline constexpr uint32_t kSysenterEip = 0x176;
inline constexpr uint32_t kMiscEnable = 0x1A0;
inline constexpr uint32_t kDebugCtl = 0x1D9;
inline constexpr uint32_t kMtrrPhysBase0 = 0x200;  // PHYSBASEn = 0x200 + 2n, PHYSMASKn = 0x201 + 2n
inline constexpr uint32_t kMtrrFix64k00000 = 0x250;
inline constexpr uint32_t kMtrrFix16k80000 = 0x258;
inline constexpr uint32_t kMtrrFix16kA0000 = 0x259;
inline constexpr uint32_t kMtrrFix4kC0000 = 0x268;  // .. 0x26F
inline constexpr uint32_t kPat = 0x277;
inline constexpr uint32_t kMtrrDefType = 0x2FF;
inline constexpr uint32_t kEfer = 0xC0000080;
inline constexpr uint32_t kStar = 0xC0000081;
inline constexpr uint32_t kLstar = 0xC0000082;
inline constexpr uint32_t kCstar = 0xC0000083;
inline constexpr uint32_t kSfmask = 0xC0000084;
inline constexpr uint32_t kFsBase = 0xC0000100;
inline constexpr uint32_t kGsBase = 0xC0000101;
inline constexpr uint32_t kKernelGsBase = 0xC0000102;
inline constexpr uint32_t kTscAux = 0xC0000103;

inline constexpr unsigned kVariableMtrrs = 8;  // MTRRCAP.VCNT
inline constexpr unsigned kFixedMtrrs = 11;
inline constexpr uint64_t kPatReset = 0x0007040600070406ull;
// MTRRCAP: VCNT = 8, FIX (8), WC (10); no SMRR (11).
inline constexpr uint64_t kMtrrCapValue = kVariableMtrrs | (1u << 8) | (1u << 10);
// MISC_ENABLE: fast strings (0), BTS unavailable (11), PEBS unavailable (12); MWAIT (18) clear:
// MONITOR/MWAIT are #UD. Not writable except to its own value.
inline constexpr uint64_t kMiscEnableValue = (1u << 0) | (1u << 11) | (1u << 12);
// FEATURE_CONTROL: locked (0), VMX off inside and outside SMX: no nested VMX.
inline constexpr uint64_t kFeatureControlValue = 1;
inline constexpr uint64_t kApicBaseDefault = 0xFEE00000ull;
inline constexpr uint64_t kApicBaseBsp = 1u << 8, kApicBaseExtd = 1u << 10, kApicBaseEnable = 1u << 11;
// ARCH_CAPABILITIES bits passed from the host (not-affected and mitigation-present facts that
// stay true under hv): RDCL_NO 0, IBRS_ALL 1, RSBA 2, SSB_NO 4, MDS_NO 5, PSCHANGE_MC_NO 6,
// TAA_NO 8. TSX_CTRL (7) and the rest name MSRs hv does not offer.
inline constexpr uint64_t kArchCapabilitiesMask = 0x177;

enum class Home : uint8_t { kVmcs, kSwitched, kEmulated, kCommand };

// The VMCS guest-state fields behind the kVmcs MSRs, plus what the checks need to read.
enum class Field : uint8_t { kFsBase, kGsBase, kSysenterCs, kSysenterEsp, kSysenterEip, kEfer, kPat, kDebugCtl, kCr0, kTscOffset };

// What differs between hosts and vCPUs (hv/exit_msr.cpp builds it from the host's CPUID and
// VcpuFeatures; the CPUID policy advertises from the same facts).
struct Config {
  unsigned phys_bits = 36;    // the guest's MAXPHYADDR: reserved bits of MTRR bases and masks, APIC base
  bool bsp = true;            // vCPU 0
  bool rdtscp = false;        // TSC_AUX exists (RDTSCP or RDPID advertised)
  bool x2apic = false;        // APIC_BASE.EXTD may be set
  bool spec_ctrl = false;     // host CPUID.7.EDX[26]: SPEC_CTRL.IBRS and PRED_CMD.IBPB
  bool stibp = false;         // host CPUID.7.EDX[27]: SPEC_CTRL.STIBP
  bool ssbd = false;          // host CPUID.7.EDX[31]: SPEC_CTRL.SSBD
  bool arch_capabilities = false;   // host CPUID.7.EDX[29]
  uint64_t arch_capabilities_value = 0;  // the host's value & kArchCapabilitiesMask
};

// The emulated and switched MSRs of one vCPU.
struct State {
  uint64_t tsc_offset = 0;  // guest TSC = host TSC + tsc_offset (mod 2^64); mirrored in the VMCS
  uint64_t tsc_adjust = 0;
  uint64_t apic_base = 0;
  uint64_t mtrr_def_type = 0;
  uint64_t mtrr_fixed[kFixedMtrrs] = {};
  uint64_t mtrr_var[2 * kVariableMtrrs] = {};  // base0, mask0, base1, mask1, ...
  // Switched (hv/exit_msr.cpp): the guest's values, loaded into the CPU around guest mode.
  uint64_t kernel_gs_base = 0, star = 0, lstar = 0, cstar = 0, sfmask = 0, tsc_aux = 0, spec_ctrl = 0;
};

// Reset values (SDM Vol. 3A, table 10-1 "IA-32 and Intel 64 Processor States Following
// Power-up, Reset, or INIT"): TSC starts at 0 - with `tsc_origin_offset` = -(host TSC when the
// VM was created), the same for all its vCPUs, so they agree - everything else 0 but APIC_BASE.
void reset(State& s, const Config& c, uint64_t tsc_origin_offset);

// The VMCS side, supplied by the caller.
struct Backend {
  void* ctx;
  uint64_t (*get)(void* ctx, Field f);
  void (*set)(void* ctx, Field f, uint64_t v);
  void (*pred_cmd)(void* ctx, uint64_t v);  // WRMSR(PRED_CMD, v) on the host CPU
};

struct Info {
  uint32_t index;  // first index of the entry
  uint32_t count;  // consecutive indices it covers (the MTRR arrays)
  const char* name;
  Home home;
  // MSR bitmap: the guest reads (writes) the real MSR without an exit. Correct only where the
  // real MSR holds the guest's value for all of guest mode and hv reads it back at exit where a
  // guest write can change it (kVmcs by the CPU, kSwitched by restore_host_msrs).
  bool read_direct, write_direct;
};

// The table entry for `index`, or nullptr (then: #GP). Entries that depend on the host
// (SPEC_CTRL, PRED_CMD, ARCH_CAPABILITIES, TSC_AUX) are left out when `c` says it lacks them.
const Info* find(const Config& c, uint32_t index);
// Every entry, for the MSR bitmap and the documentation.
const Info* table(unsigned& count);

// RDMSR / WRMSR as the policy defines them: false means #GP(0).
bool read(const Config& c, const State& s, const Backend& b, uint32_t index, uint64_t host_tsc, uint64_t& value);
bool write(const Config& c, State& s, const Backend& b, uint32_t index, uint64_t value, uint64_t host_tsc);

// Validators (exposed for the tests).
bool valid_pat(uint64_t v);
bool valid_mtrr_type(uint64_t t);  // UC 0, WC 1, WT 4, WP 5, WB 6
bool canonical(uint64_t v);        // 48-bit linear addresses

}  // namespace hv::msr
