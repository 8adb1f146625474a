// The MSR policy (see msr_policy.h). Reserved bits and checks: SDM Vol. 3A (MTRRs 11.11, PAT
// 11.12, TSC 17.17, APIC base 10.4.4, SYSCALL 5.8.8, EFER 2.2.1) and Vol. 4 (the MSR tables).
#include "hv/msr_policy.h"

namespace hv::msr {
namespace {

// The table. `why` of each entry is in docs/guest-platform.md section 2; in short:
const Info kTable[] = {
    // The TSC: reads go to the CPU directly (with "use TSC offsetting" RDMSR returns TSC +
    // offset, as RDTSC does); writes exit and move the offset.
    {kTsc, 1, "IA32_TSC", Home::kEmulated, true, false},
    // The APIC base: no virtual LAPIC yet; the register is kept so kernels can read and
    // rewrite it (the interrupt issue hands it to the LAPIC model).
    {kApicBase, 1, "IA32_APIC_BASE", Home::kEmulated, false, false},
    {kFeatureControl, 1, "IA32_FEATURE_CONTROL", Home::kEmulated, false, false},
    {kTscAdjust, 1, "IA32_TSC_ADJUST", Home::kEmulated, false, false},
    // SPEC_CTRL: hv must know the guest's value to switch it, so both directions exit.
    {kSpecCtrl, 1, "IA32_SPEC_CTRL", Home::kSwitched, false, false},
    {kPredCmd, 1, "IA32_PRED_CMD", Home::kCommand, false, false},
    {kBiosSignId, 1, "IA32_BIOS_SIGN_ID", Home::kEmulated, false, false},
    {kMtrrCap, 1, "IA32_MTRRCAP", Home::kEmulated, false, false},
    {kArchCapabilities, 1, "IA32_ARCH_CAPABILITIES", Home::kEmulated, false, false},
    // SYSENTER: VMCS guest fields; a write can't break hv (the host fields are separate), any
    // value is architecturally allowed except a non-canonical ESP/EIP, which the CPU checks.
    {kSysenterCs, 1, "IA32_SYSENTER_CS", Home::kVmcs, true, true},
    {kSysenterEsp, 1, "IA32_SYSENTER_ESP", Home::kVmcs, true, true},
    {kSysenterEip, 1, "IA32_SYSENTER_EIP", Home::kVmcs, true, true},
    {kMiscEnable, 1, "IA32_MISC_ENABLE", Home::kEmulated, false, false},
    // DEBUGCTL: VMCS guest field; writes exit so only the bits hv can honour get in, and so do
    // reads: a CPU may drop bits it does not implement from the real register (Bochs keeps no
    // BTF), while the guest must read back what it was allowed to write.
    {kDebugCtl, 1, "IA32_DEBUGCTL", Home::kVmcs, false, false},
    {kMtrrPhysBase0, 2 * kVariableMtrrs, "IA32_MTRR_PHYSBASE/MASKn", Home::kEmulated, false, false},
    {kMtrrFix64k00000, 1, "IA32_MTRR_FIX64K_00000", Home::kEmulated, false, false},
    {kMtrrFix16k80000, 2, "IA32_MTRR_FIX16K_80000/A0000", Home::kEmulated, false, false},
    {kMtrrFix4kC0000, 8, "IA32_MTRR_FIX4K_C0000..F8000", Home::kEmulated, false, false},
    // PAT: VMCS guest field (load/save PAT controls); writes exit for the memory-type check.
    {kPat, 1, "IA32_PAT", Home::kVmcs, true, false},
    {kMtrrDefType, 1, "IA32_MTRR_DEF_TYPE", Home::kEmulated, false, false},
    // EFER: VMCS guest field; writes exit (LME with paging on, LMA read-only, reserved bits).
    {kEfer, 1, "IA32_EFER", Home::kVmcs, true, false},
    // SYSCALL MSRs: switched. Reads see the real MSR (the guest's value in guest mode); writes
    // exit, so hv always knows the value to load and never has to read it back.
    {kStar, 1, "IA32_STAR", Home::kSwitched, true, false},
    {kLstar, 1, "IA32_LSTAR", Home::kSwitched, true, false},
    {kCstar, 1, "IA32_CSTAR", Home::kSwitched, true, false},
    {kSfmask, 1, "IA32_FMASK", Home::kSwitched, true, false},
    // FS/GS base: VMCS guest fields; WRMSR (and WRFSBASE) natively, the CPU saves them at exit.
    {kFsBase, 1, "IA32_FS_BASE", Home::kVmcs, true, true},
    {kGsBase, 1, "IA32_GS_BASE", Home::kVmcs, true, true},
    // KERNEL_GS_BASE: switched, and SWAPGS changes it without an exit, so hv reads it back
    // after every exit anyway: WRMSR can go to the CPU directly too (which checks canonicality).
    {kKernelGsBase, 1, "IA32_KERNEL_GS_BASE", Home::kSwitched, true, true},
    // TSC_AUX: switched; reads direct, writes exit (hv keeps the value to load).
    {kTscAux, 1, "IA32_TSC_AUX", Home::kSwitched, true, false},
};

constexpr uint64_t kEferSce = 1u << 0, kEferLme = 1u << 8, kEferLma = 1u << 10, kEferNxe = 1u << 11;
constexpr uint64_t kCr0Pg = 1ull << 31;
constexpr uint64_t kDebugCtlBtf = 1u << 1;

uint64_t phys_mask(const Config& c) { return (c.phys_bits >= 64 ? ~0ull : (1ull << c.phys_bits) - 1) & ~0xFFFull; }

bool valid_fixed_mtrr(uint64_t v) {
  for (unsigned i = 0; i < 8; i++)
    if (!valid_mtrr_type((v >> (8 * i)) & 0xFF)) return false;
  return true;
}

uint64_t* fixed_slot(State& s, uint32_t index) {
  if (index == kMtrrFix64k00000) return &s.mtrr_fixed[0];
  if (index == kMtrrFix16k80000 || index == kMtrrFix16kA0000) return &s.mtrr_fixed[1 + (index - kMtrrFix16k80000)];
  if (index >= kMtrrFix4kC0000 && index < kMtrrFix4kC0000 + 8) return &s.mtrr_fixed[3 + (index - kMtrrFix4kC0000)];
  return nullptr;
}

uint64_t spec_ctrl_bits(const Config& c) {
  return (c.spec_ctrl ? 1u << 0 : 0u) | (c.stibp ? 1u << 1 : 0u) | (c.ssbd ? 1u << 2 : 0u);
}

}  // namespace

bool canonical(uint64_t v) {
  const int64_t s = static_cast<int64_t>(v << 16) >> 16;
  return static_cast<uint64_t>(s) == v;
}

bool valid_mtrr_type(uint64_t t) { return t == 0 || t == 1 || t == 4 || t == 5 || t == 6; }

bool valid_pat(uint64_t v) {
  // Each byte: a memory type in bits 2:0 (2 and 3 reserved), bits 7:3 reserved.
  for (unsigned i = 0; i < 8; i++) {
    const uint64_t e = (v >> (8 * i)) & 0xFF;
    if (e > 7 || e == 2 || e == 3) return false;
  }
  return true;
}

const Info* table(unsigned& count) {
  count = sizeof kTable / sizeof kTable[0];
  return kTable;
}

const Info* find(const Config& c, uint32_t index) {
  for (const Info& e : kTable) {
    if (index < e.index || index >= e.index + e.count) continue;
    switch (e.index) {
      case kSpecCtrl: return spec_ctrl_bits(c) ? &e : nullptr;
      case kPredCmd: return c.spec_ctrl ? &e : nullptr;
      case kArchCapabilities: return c.arch_capabilities ? &e : nullptr;
      case kTscAux: return c.rdtscp ? &e : nullptr;
      default: return &e;
    }
  }
  return nullptr;
}

void reset(State& s, const Config& c, uint64_t tsc_origin_offset) {
  s = State{};
  s.tsc_offset = tsc_origin_offset;
  s.apic_base = kApicBaseDefault | kApicBaseEnable | (c.bsp ? kApicBaseBsp : 0);
}

bool read(const Config& c, const State& s, const Backend& b, uint32_t index, uint64_t host_tsc, uint64_t& v) {
  const Info* e = find(c, index);
  if (!e) return false;
  switch (index) {
    case kTsc: v = host_tsc + s.tsc_offset; return true;
    case kTscAdjust: v = s.tsc_adjust; return true;
    case kApicBase: v = s.apic_base; return true;
    case kFeatureControl: v = kFeatureControlValue; return true;
    case kSpecCtrl: v = s.spec_ctrl; return true;
    case kPredCmd: return false;  // write-only
    case kBiosSignId: v = 0; return true;  // no microcode update loaded
    case kMtrrCap: v = kMtrrCapValue; return true;
    case kArchCapabilities: v = c.arch_capabilities_value & kArchCapabilitiesMask; return true;
    case kMiscEnable: v = kMiscEnableValue; return true;
    case kMtrrDefType: v = s.mtrr_def_type; return true;
    case kSysenterCs: v = b.get(b.ctx, Field::kSysenterCs); return true;
    case kSysenterEsp: v = b.get(b.ctx, Field::kSysenterEsp); return true;
    case kSysenterEip: v = b.get(b.ctx, Field::kSysenterEip); return true;
    case kDebugCtl: v = b.get(b.ctx, Field::kDebugCtl); return true;
    case kPat: v = b.get(b.ctx, Field::kPat); return true;
    case kEfer: v = b.get(b.ctx, Field::kEfer); return true;
    case kFsBase: v = b.get(b.ctx, Field::kFsBase); return true;
    case kGsBase: v = b.get(b.ctx, Field::kGsBase); return true;
    case kStar: v = s.star; return true;
    case kLstar: v = s.lstar; return true;
    case kCstar: v = s.cstar; return true;
    case kSfmask: v = s.sfmask; return true;
    case kKernelGsBase: v = s.kernel_gs_base; return true;
    case kTscAux: v = s.tsc_aux; return true;
    default: break;
  }
  if (index >= kMtrrPhysBase0 && index < kMtrrPhysBase0 + 2 * kVariableMtrrs) {
    v = s.mtrr_var[index - kMtrrPhysBase0];
    return true;
  }
  if (const uint64_t* f = fixed_slot(const_cast<State&>(s), index)) {
    v = *f;
    return true;
  }
  return false;
}

bool write(const Config& c, State& s, const Backend& b, uint32_t index, uint64_t v, uint64_t host_tsc) {
  const Info* e = find(c, index);
  if (!e) return false;
  switch (index) {
    case kTsc: {
      // SDM 17.17.3: a write to the TSC adds the same change to TSC_ADJUST.
      const uint64_t delta = v - (host_tsc + s.tsc_offset);
      s.tsc_offset += delta;
      s.tsc_adjust += delta;
      b.set(b.ctx, Field::kTscOffset, s.tsc_offset);
      return true;
    }
    case kTscAdjust: {
      // ... and a write to TSC_ADJUST moves the TSC by the change of TSC_ADJUST.
      s.tsc_offset += v - s.tsc_adjust;
      s.tsc_adjust = v;
      b.set(b.ctx, Field::kTscOffset, s.tsc_offset);
      return true;
    }
    case kApicBase: {
      // Bits 7:0, 9 and those at or above MAXPHYADDR are reserved; EXTD (10) only with x2APIC,
      // and x2APIC mode needs the APIC enabled. BSP (8) is the CPU's: a write leaves it as is.
      const uint64_t allowed = phys_mask(c) | kApicBaseBsp | kApicBaseEnable | (c.x2apic ? kApicBaseExtd : 0);
      if (v & ~allowed) return false;
      if ((v & kApicBaseExtd) && !(v & kApicBaseEnable)) return false;
      // Mode transitions (SDM 11.12.5): x2APIC -> xAPIC must go through disabled, and
      // disabled -> x2APIC must go through xAPIC; both are #GP.
      const bool was_x2 = (s.apic_base & kApicBaseExtd) != 0, was_on = (s.apic_base & kApicBaseEnable) != 0;
      const bool to_x2 = (v & kApicBaseExtd) != 0, to_on = (v & kApicBaseEnable) != 0;
      if (was_x2 && to_on && !to_x2) return false;
      if (!was_on && to_x2) return false;
      s.apic_base = (v & ~kApicBaseBsp) | (s.apic_base & kApicBaseBsp);
      return true;
    }
    case kFeatureControl: return false;  // locked
    case kSpecCtrl:
      if (v & ~spec_ctrl_bits(c)) return false;
      s.spec_ctrl = v;
      return true;
    case kPredCmd:
      if (v & ~1ull) return false;  // IBPB is the only command
      if (v) b.pred_cmd(b.ctx, v);
      return true;
    case kBiosSignId: return true;  // "load microcode" trigger: accepted, nothing to load
    case kMtrrCap: return false;     // read-only
    case kArchCapabilities: return false;  // read-only
    case kMiscEnable: return v == kMiscEnableValue;
    case kMtrrDefType:
      // Type 7:0 (a valid MTRR type), FE 10, E 11; the rest reserved.
      if ((v & ~0xCFFull) || !valid_mtrr_type(v & 0xFF)) return false;
      s.mtrr_def_type = v;
      return true;
    case kSysenterCs: b.set(b.ctx, Field::kSysenterCs, v & 0xFFFFFFFF); return true;  // a 32-bit VMCS field
    case kSysenterEsp:
    case kSysenterEip:
    case kFsBase:
    case kGsBase:
    case kKernelGsBase:
    case kLstar:
    case kCstar: {
      if (!canonical(v)) return false;
      switch (index) {
        case kSysenterEsp: b.set(b.ctx, Field::kSysenterEsp, v); break;
        case kSysenterEip: b.set(b.ctx, Field::kSysenterEip, v); break;
        case kFsBase: b.set(b.ctx, Field::kFsBase, v); break;
        case kGsBase: b.set(b.ctx, Field::kGsBase, v); break;
        case kKernelGsBase: s.kernel_gs_base = v; break;
        case kLstar: s.lstar = v; break;
        default: s.cstar = v; break;
      }
      return true;
    }
    case kStar: s.star = v; return true;  // all 64 bits are selectors and the legacy EIP
    case kSfmask:
      if (v >> 32) return false;  // bits 63:32 reserved
      s.sfmask = v;
      return true;
    case kTscAux:
      if (v >> 32) return false;  // bits 63:32 reserved
      s.tsc_aux = v;
      return true;
    case kDebugCtl:
      // Only BTF (single-step on branches) is honoured: it works through the VMCS field.
      // LBR and the rest would need MSRs and a PMU hv does not offer.
      if (v & ~kDebugCtlBtf) return false;
      b.set(b.ctx, Field::kDebugCtl, v);
      return true;
    case kPat:
      if (!valid_pat(v)) return false;
      b.set(b.ctx, Field::kPat, v);
      return true;
    case kEfer: {
      // SCE, LME, NXE writable; LMA is the CPU's (a written value is ignored); the rest reserved.
      // LME can't change while paging is on (SDM 9.8.5: #GP).
      const uint64_t cur = b.get(b.ctx, Field::kEfer);
      if (v & ~(kEferSce | kEferLme | kEferLma | kEferNxe)) return false;
      if ((b.get(b.ctx, Field::kCr0) & kCr0Pg) && ((v ^ cur) & kEferLme)) return false;
      b.set(b.ctx, Field::kEfer, (v & (kEferSce | kEferLme | kEferNxe)) | (cur & kEferLma));
      return true;
    }
    default: break;
  }
  if (index >= kMtrrPhysBase0 && index < kMtrrPhysBase0 + 2 * kVariableMtrrs) {
    const bool is_mask = (index - kMtrrPhysBase0) & 1;
    if (is_mask) {
      // PHYSMASK: valid (11), mask bits [MAXPHYADDR-1:12]; 10:0 reserved.
      if (v & ~(phys_mask(c) | (1u << 11))) return false;
    } else {
      // PHYSBASE: type 7:0, base [MAXPHYADDR-1:12]; 11:8 reserved.
      if ((v & ~(phys_mask(c) | 0xFF)) || !valid_mtrr_type(v & 0xFF)) return false;
    }
    s.mtrr_var[index - kMtrrPhysBase0] = v;
    return true;
  }
  if (uint64_t* f = fixed_slot(s, index)) {
    if (!valid_fixed_mtrr(v)) return false;
    *f = v;
    return true;
  }
  return false;
}

}  // namespace hv::msr
