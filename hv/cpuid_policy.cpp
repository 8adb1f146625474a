// The CPUID policy (see cpuid_policy.h). Bit names and positions: SDM Vol. 2A, CPUID, tables
// 3-8 ff. Each mask below is one decision with its reason; docs/guest-platform.md section 1
// carries the same table.
#include "hv/cpuid_policy.h"

#include "hv/guest_abi.h"

namespace hv::cpuid {
namespace {

constexpr uint32_t bit(unsigned n) { return 1u << n; }

// ---- leaf 1 ECX -----------------------------------------------------------------------------
// Passed: instructions that run natively in VMX non-root operation and carry no state beyond
// the general and SSE registers (which hv never touches):
//   SSE3 0, PCLMULQDQ 1, SSSE3 9, CMPXCHG16B 13, SSE4.1 19, SSE4.2 20, MOVBE 22, POPCNT 23,
//   AES 25, RDRAND 30; PCID 17 (CR4.PCIDE is the guest's: with VPID the CPU tags its TLB
//   entries by VPID and PCID, nothing for hv to do).
constexpr uint32_t kL1EcxPass = bit(0) | bit(1) | bit(9) | bit(13) | bit(17) | bit(19) | bit(20) | bit(22) |
                                bit(23) | bit(25) | bit(30);
// Hidden: DTES64 2, DS-CPL 4 (debug store: no BTS/PEBS buffers), MONITOR 3 (hv makes
// MONITOR/MWAIT #UD: a guest must not park a physical CPU), VMX 5 (no nested VMX), SMX 6,
// EIST 7 and TM2 8 (no power/thermal MSRs), CNXT-ID 10, SDBG 11 (IA32_DEBUG_INTERFACE not
// offered), xTPR 14 (IA32_MISC_ENABLE bit not offered), PDCM 15 (IA32_PERF_CAPABILITIES not
// offered: no virtual PMU), DCA 18.
// Virtualized: FMA 12, AVX 28, F16C 29 only with XSAVE and YMM state in XCR0's mask; XSAVE 26
// per VcpuFeatures; OSXSAVE 27 = the guest's CR4.OSXSAVE; x2APIC 21, TSC-deadline 24 only with a
// virtual LAPIC; hypervisor 31 always set.
constexpr unsigned kL1EcxFma = 12, kL1EcxX2apic = 21, kL1EcxTscDeadline = 24, kL1EcxXsave = 26,
                   kL1EcxOsxsave = 27, kL1EcxAvx = 28, kL1EcxF16c = 29, kL1EcxHypervisor = 31;

// ---- leaf 1 EDX -----------------------------------------------------------------------------
// Passed: FPU 0, VME 1, DE 2, PSE 3, TSC 4 (offset, not scaled), MSR 5, PAE 6, CX8 8, SEP 11
// (SYSENTER MSRs in the VMCS), MTRR 12 (emulated MTRRs, hv/msr_policy.h), PGE 13, CMOV 15,
// PAT 16 (guest PAT in the VMCS), PSE-36 17, CLFSH 19, MMX 23, FXSR 24, SSE 25, SSE2 26, SS 27.
constexpr uint32_t kL1EdxPass = bit(0) | bit(1) | bit(2) | bit(3) | bit(4) | bit(5) | bit(6) | bit(8) | bit(11) |
                                bit(12) | bit(13) | bit(15) | bit(16) | bit(17) | bit(19) | bit(23) | bit(24) |
                                bit(25) | bit(26) | bit(27);
// Hidden: MCE 7, MCA 14 (no machine-check MSRs), PSN 18, DS 21, ACPI 22 (thermal MSRs), TM 29,
// PBE 31. Virtualized: APIC 9 with a virtual LAPIC only; HTT 28 = more than one vCPU.
constexpr unsigned kL1EdxApic = 9, kL1EdxHtt = 28;

// ---- leaf 7 subleaf 0 -----------------------------------------------------------------------
// EBX passed: FSGSBASE 0 (the bases are VMCS fields, KERNEL_GS_BASE is switched), BMI1 3,
// HLE 4, FDP_EXCPTN_ONLY 6, SMEP 7, BMI2 8, ERMS 9, RTM 11, FPU CS/DS deprecated 13, RDSEED 18,
// ADX 19, SMAP 20, CLFLUSHOPT 23, CLWB 24, SHA 29.
constexpr uint32_t kL7EbxPass = bit(0) | bit(3) | bit(4) | bit(6) | bit(7) | bit(8) | bit(9) | bit(11) | bit(13) |
                                bit(18) | bit(19) | bit(20) | bit(23) | bit(24) | bit(29);
// EBX virtualized: TSC_ADJUST 1 (emulated MSR, always), INVPCID 10 (VcpuFeatures), AVX2 5 (with
// AVX), AVX-512 F 16, DQ 17, IFMA 21, PF 26, ER 27, CD 28, BW 30, VL 31 (with opmask/ZMM state).
// Hidden: SGX 2, RDT-M 12, MPX 14 (BNDREGS state never offered), RDT-A 15, PT 25.
constexpr unsigned kL7EbxTscAdjust = 1, kL7EbxAvx2 = 5, kL7EbxInvpcid = 10;
constexpr uint32_t kL7EbxAvx512 = bit(16) | bit(17) | bit(21) | bit(26) | bit(27) | bit(28) | bit(30) | bit(31);
// ECX passed: PREFETCHWT1 0, UMIP 2, GFNI 8, CLDEMOTE 25, MOVDIRI 27, MOVDIR64B 28.
constexpr uint32_t kL7EcxPass = bit(0) | bit(2) | bit(8) | bit(25) | bit(27) | bit(28);
// ECX virtualized: RDPID 22 (reads IA32_TSC_AUX: needs "enable RDTSCP", else #UD in VMX
// non-root), VAES 9 and VPCLMULQDQ 10 (with AVX), AVX-512 VBMI 1, VBMI2 6, VNNI 11, BITALG 12,
// VPOPCNTDQ 14. Hidden: PKU 3 and OSPKE 4 (hv does not switch PKRU between guests), WAITPKG 5
// (UMWAIT/TPAUSE would park the CPU), CET_SS 7, TME 13, LA57 16 (hv's guest page walker is
// 4-level), MAWAU 17-21, KL 23, BUS_LOCK_DETECT 24, ENQCMD 29, SGX_LC 30, PKS 31.
constexpr unsigned kL7EcxRdpid = 22;
constexpr uint32_t kL7EcxAvx = bit(9) | bit(10);
constexpr uint32_t kL7EcxAvx512 = bit(1) | bit(6) | bit(11) | bit(12) | bit(14);
// EDX passed: FSRM 4, MD_CLEAR 10 (VERW clears buffers), RTM_ALWAYS_ABORT 11, SERIALIZE 14.
constexpr uint32_t kL7EdxPass = bit(4) | bit(10) | bit(11) | bit(14);
// EDX virtualized: IBRS/IBPB 26, STIBP 27, SSBD 31 (IA32_SPEC_CTRL switched and IA32_PRED_CMD
// forwarded, where the host has them), ARCH_CAPABILITIES 29 (policy value), AVX-512 4VNNIW 2,
// 4FMAPS 3, VP2INTERSECT 8, FP16 23. Hidden: UINTR 5, SRBDS_CTRL 9, TSX_FORCE_ABORT 13, HYBRID
// 15, TSXLDTRK 16, PCONFIG 18, ARCH_LBR 19, CET_IBT 20, AMX 22/24/25 (XFD not offered),
// L1D_FLUSH 28 (IA32_FLUSH_CMD not offered), CORE_CAPABILITIES 30.
constexpr uint32_t kL7EdxSpec = bit(26) | bit(27) | bit(31);
constexpr unsigned kL7EdxArchCaps = 29;
constexpr uint32_t kL7EdxAvx512 = bit(2) | bit(3) | bit(8) | bit(23);

// ---- leaf 0x80000001 ------------------------------------------------------------------------
// ECX passed: LAHF/SAHF 0, LZCNT 5, PREFETCHW 8. EDX passed: SYSCALL 11 (STAR/LSTAR/CSTAR/
// SFMASK switched), NX 20, 1 GiB pages 26, LM 29; RDTSCP 27 per VcpuFeatures.
constexpr uint32_t kE1EcxPass = bit(0) | bit(5) | bit(8);
constexpr uint32_t kE1EdxPass = bit(11) | bit(20) | bit(26) | bit(29);
constexpr unsigned kE1EdxRdtscp = 27;

// XCR0 components (SDM Vol. 1, 13.1).
constexpr uint64_t kXcr0Legacy = 0x3;     // x87 | SSE
constexpr uint64_t kXcr0Ymm = 0x4;        // AVX
constexpr uint64_t kXcr0Avx512 = 0xE0;    // opmask | ZMM_Hi256 | Hi16_ZMM
constexpr uint32_t kXsaveLegacyBytes = 512 + 64;  // legacy area + XSAVE header

bool has_avx(const VcpuFeatures& f) {
  return f.xsave && (f.xcr0_mask & (kXcr0Legacy | kXcr0Ymm)) == (kXcr0Legacy | kXcr0Ymm);
}
bool has_avx512(const VcpuFeatures& f) {
  return has_avx(f) && (f.xcr0_mask & kXcr0Avx512) == kXcr0Avx512;
}

unsigned pow2_ceil(unsigned n) {
  unsigned p = 1;
  while (p < n) p <<= 1;
  return p;
}
unsigned log2_ceil(unsigned n) {
  unsigned s = 0;
  while ((1u << s) < n) s++;
  return s;
}

// The host's leaf, or zero where the host does not have it (an Intel CPU answers a leaf above
// its maximum with its highest basic leaf: never let that through as if it were the leaf).
Regs host(const Inputs& in, uint32_t leaf, uint32_t sub) {
  const uint32_t range = leaf & 0x80000000u;
  const Regs top = in.host(in.host_ctx, range, 0);
  if (leaf > top.eax) return {};
  return in.host(in.host_ctx, leaf, sub);
}

uint32_t hv_signature(unsigned i) {
  // hv's signature (hv/guest_abi.h; tests/guests/lib under_hv() looks for it), 4 bytes per
  // register, little endian.
  const char* kSig = guest_abi::kSignature;
  return static_cast<uint32_t>(static_cast<uint8_t>(kSig[4 * i])) |
         static_cast<uint32_t>(static_cast<uint8_t>(kSig[4 * i + 1])) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(kSig[4 * i + 2])) << 16 |
         static_cast<uint32_t>(static_cast<uint8_t>(kSig[4 * i + 3])) << 24;
}

// Size of an XSAVE area holding the components in `xcr0`: standard format is the end of the
// highest component (leaf 0xD subleaf i: EAX size, EBX offset); compacted format packs them
// after the header, each 64-byte aligned where subleaf i ECX bit 1 says so.
uint32_t xsave_size(const Inputs& in, uint64_t xcr0, bool compacted) {
  uint32_t size = kXsaveLegacyBytes;
  for (unsigned i = 2; i < 63; i++) {
    if (!((xcr0 >> i) & 1)) continue;
    const Regs c = host(in, 0xD, i);
    if (compacted) {
      if (c.ecx & 2) size = (size + 63) & ~63u;
      size += c.eax;
    } else if (c.ebx + c.eax > size) {
      size = c.ebx + c.eax;
    }
  }
  return size;
}

Regs leaf_1(const Inputs& in) {
  const VcpuFeatures& f = in.features;
  Regs h = host(in, 1, 0);
  Regs r{};
  r.eax = h.eax;  // family, model, stepping: the host's
  // EBX: brand index 7:0 and CLFLUSH line size 15:8 are the host's; 23:16 the addressable
  // logical-processor IDs of the package (all vCPUs, rounded up to a power of two, as APIC IDs
  // are allocated); 31:24 the initial APIC ID = the vCPU index.
  r.ebx = (h.ebx & 0xFFFF) | (pow2_ceil(in.vcpu_count) & 0xFF) << 16 | (in.vcpu_index & 0xFF) << 24;
  r.ecx = h.ecx & kL1EcxPass;
  if (f.x2apic) r.ecx |= h.ecx & bit(kL1EcxX2apic);
  if (f.tsc_deadline) r.ecx |= h.ecx & bit(kL1EcxTscDeadline);
  if (f.xsave) {
    r.ecx |= h.ecx & bit(kL1EcxXsave);
    if (in.guest_cr4_osxsave) r.ecx |= bit(kL1EcxOsxsave);
  }
  if (has_avx(f)) r.ecx |= h.ecx & (bit(kL1EcxAvx) | bit(kL1EcxFma) | bit(kL1EcxF16c));
  r.ecx |= bit(kL1EcxHypervisor);
  r.edx = h.edx & kL1EdxPass;
  if (f.lapic) r.edx |= h.edx & bit(kL1EdxApic);
  if (in.vcpu_count > 1) r.edx |= bit(kL1EdxHtt);
  return r;
}

Regs leaf_4(const Inputs& in, uint32_t sub) {
  Regs r = host(in, 4, sub);
  if ((r.eax & 0x1F) == 0) return {};  // no more caches
  // EAX 31:26: addressable core IDs in the package - 1 (every vCPU a core). 25:14: addressable
  // IDs of logical processors sharing this cache - 1: per core for L1/L2, the package for L3+.
  const uint32_t ids = pow2_ceil(in.vcpu_count) - 1;
  const uint32_t level = (r.eax >> 5) & 7;
  r.eax &= 0x3FFF;
  r.eax |= (ids & 0x3F) << 26;
  if (level >= 3) r.eax |= (ids & 0xFFF) << 14;
  return r;
}

Regs leaf_7(const Inputs& in, uint32_t sub) {
  if (sub != 0) return {};  // subleaves 1 and up hidden (EAX of subleaf 0 says 0)
  const VcpuFeatures& f = in.features;
  const Regs h = host(in, 7, 0);
  Regs r{};
  r.ebx = (h.ebx & kL7EbxPass) | bit(kL7EbxTscAdjust);
  if (f.invpcid) r.ebx |= h.ebx & bit(kL7EbxInvpcid);
  if (has_avx(f)) r.ebx |= h.ebx & bit(kL7EbxAvx2);
  if (has_avx512(f)) r.ebx |= h.ebx & kL7EbxAvx512;
  r.ecx = h.ecx & kL7EcxPass;
  if (f.rdtscp) r.ecx |= h.ecx & bit(kL7EcxRdpid);
  if (has_avx(f)) r.ecx |= h.ecx & kL7EcxAvx;
  if (has_avx512(f)) r.ecx |= h.ecx & kL7EcxAvx512;
  r.edx = h.edx & (kL7EdxPass | bit(kL7EdxArchCaps));
  // SPEC_CTRL's bits only together with the MSR itself (IBRS/IBPB, bit 26).
  if (h.edx & bit(26)) r.edx |= h.edx & kL7EdxSpec;
  if (has_avx512(f)) r.edx |= h.edx & kL7EdxAvx512;
  return r;
}

Regs leaf_b(const Inputs& in, uint32_t sub) {
  // One package of vcpu_count cores, one thread each. x2APIC ID = vCPU index.
  Regs r{};
  r.edx = in.vcpu_index;
  if (sub == 0) {  // SMT level: 1 logical processor per core, no ID bits
    r.eax = 0;
    r.ebx = 1;
    r.ecx = (1u << 8) | sub;
  } else if (sub == 1) {  // core level: the whole package
    r.eax = log2_ceil(in.vcpu_count);
    r.ebx = in.vcpu_count;
    r.ecx = (2u << 8) | sub;
  } else {
    r.ecx = sub & 0xFF;  // level type 0: invalid
  }
  return r;
}

Regs leaf_d(const Inputs& in, uint32_t sub) {
  const VcpuFeatures& f = in.features;
  if (!f.xsave) return {};
  const Regs h0 = host(in, 0xD, 0);
  const uint64_t host_mask = (uint64_t{h0.edx} << 32) | h0.eax;
  const uint64_t mask = f.xcr0_mask & host_mask;
  if (sub == 0) {
    Regs r{};
    r.eax = static_cast<uint32_t>(mask);
    r.edx = static_cast<uint32_t>(mask >> 32);
    r.ebx = xsave_size(in, in.guest_xcr0 & mask, false);
    r.ecx = xsave_size(in, mask, false);
    return r;
  }
  if (sub == 1) {
    // XSAVEOPT 0, XSAVEC 1, XGETBV with ECX=1 2; XSAVES 3 and XFD 4 hidden (no IA32_XSS, no
    // "enable XSAVES"). EBX: compacted size of XCR0 | IA32_XSS (= XCR0: no supervisor state).
    Regs r{};
    r.eax = host(in, 0xD, 1).eax & 0x7;
    r.ebx = xsave_size(in, in.guest_xcr0 & mask, true);
    return r;
  }
  if (sub < 63 && ((mask >> sub) & 1)) {
    Regs r = host(in, 0xD, sub);
    r.ecx &= 0x2;  // bit 0 (supervisor state) cannot be set for an XCR0 component; keep alignment
    r.edx = 0;
    return r;
  }
  return {};
}

Regs leaf_15(const Inputs& in) {
  // TSC = crystal * EBX / EAX. The crystal is the LAPIC timer's clock (kLapicTimerKhz), so
  // EBX / EAX = tsc_khz / kLapicTimerKhz, reduced. Linux computes crystal_khz * EBX in 32
  // bits (native_calibrate_tsc): with the 1 GHz crystal, an EBX above 4294 wraps and the
  // guest takes a wrong TSC rate (a 49.997 MHz TSC, Bochs's, read as 2.752 MHz). Where the
  // exact ratio needs a larger EBX, EBX is the largest that fits and EAX is rounded to match
  // (relative error below 1 / (2 EAX): under 10 ppm for any TSC below 4 GHz).
  if (!in.tsc_khz || in.tsc_khz > 0xFFFFFFFFu) return {};
  uint64_t num = in.tsc_khz, den = kLapicTimerKhz;
  uint64_t a = num, b = den;
  while (b) {
    const uint64_t t = a % b;
    a = b;
    b = t;
  }
  num /= a;
  den /= a;
  constexpr uint64_t kMaxNum = 0xFFFFFFFFull / kLapicTimerKhz;
  if (num > kMaxNum) {
    den = (den * kMaxNum + num / 2) / num;
    num = kMaxNum;
    if (!den) return {};  // a TSC beyond 4294 * the crystal: no exact leaf possible, none given
  }
  return {static_cast<uint32_t>(den), static_cast<uint32_t>(num), kLapicTimerKhz * 1000u, 0};
}

Regs leaf_16(const Inputs& in) {
  if (!in.tsc_khz) return {};
  const uint32_t mhz = static_cast<uint32_t>(in.tsc_khz / 1000) & 0xFFFF;
  return {mhz, mhz, (kLapicTimerKhz / 1000) & 0xFFFF, 0};
}

Regs basic(const Inputs& in, uint32_t leaf, uint32_t sub) {
  switch (leaf) {
    case 0: {
      const Regs h = in.host(in.host_ctx, 0, 0);
      return {kMaxBasicLeaf, h.ebx, h.ecx, h.edx};  // the host's vendor
    }
    case 1: return leaf_1(in);
    case 2: return host(in, 2, 0);  // cache and TLB descriptors
    case 4: return leaf_4(in, sub);
    case 7: return leaf_7(in, sub);
    case 0xB: return leaf_b(in, sub);
    case 0xD: return leaf_d(in, sub);
    case 0x15: return leaf_15(in);
    case 0x16: return leaf_16(in);
    // 3 (serial number), 5 (MONITOR), 6 (thermal and power), 8, 9 (DCA), 0xA (no virtual PMU:
    // RDPMC gives #GP), 0xC, 0xE, 0xF/0x10 (RDT), 0x11, 0x12 (SGX), 0x13, 0x14 (PT): zero.
    default: return {};
  }
}

Regs extended(const Inputs& in, uint32_t leaf) {
  switch (leaf) {
    case 0x80000000: return {max_extended_leaf(in), 0, 0, 0};
    case 0x80000001: {
      const Regs h = host(in, leaf, 0);
      Regs r{h.eax, 0, h.ecx & kE1EcxPass, h.edx & kE1EdxPass};
      if (in.features.rdtscp) r.edx |= h.edx & bit(kE1EdxRdtscp);
      return r;
    }
    case 0x80000002:
    case 0x80000003:
    case 0x80000004:  // brand string
    case 0x80000006:  // L2 cache
      return host(in, leaf, 0);
    case 0x80000007:  // invariant TSC (EDX 8): the offset keeps it invariant; nothing else
      return {0, 0, 0, host(in, leaf, 0).edx & bit(8)};
    case 0x80000008: {
      // Physical-address bits = the guest's MAXPHYADDR; linear 48 (LA57 hidden).
      const uint32_t linear = (host(in, leaf, 0).eax >> 8) & 0xFF;
      return {(in.phys_bits & 0xFF) | (linear > 48 || linear == 0 ? 48u : linear) << 8, 0, 0, 0};
    }
    default: return {};  // 0x80000005: Intel reserved
  }
}

}  // namespace

uint32_t max_basic_leaf(const Inputs&) { return kMaxBasicLeaf; }

uint32_t max_extended_leaf(const Inputs& in) {
  const uint32_t h = in.host(in.host_ctx, 0x80000000u, 0).eax;
  if (h < 0x80000000u) return 0x80000000u;
  return h > kMaxExtendedLeaf ? kMaxExtendedLeaf : h;
}

Regs guest_cpuid(const Inputs& in, uint32_t leaf, uint32_t sub) {
  if (leaf < kHypervisorBase) return leaf <= kMaxBasicLeaf ? basic(in, leaf, sub) : Regs{};
  if (leaf < 0x80000000u) {
    if (leaf == kHypervisorBase) return {kTimingLeaf, hv_signature(0), hv_signature(1), hv_signature(2)};
    if (leaf == kTimingLeaf) return {static_cast<uint32_t>(in.tsc_khz), kLapicTimerKhz, 0, 0};
    return {};
  }
  return leaf <= max_extended_leaf(in) ? extended(in, leaf) : Regs{};
}

Allowed allowed_bits(const VcpuFeatures& f) {
  Allowed a{};
  a.l1_ecx = kL1EcxPass | bit(kL1EcxHypervisor);
  if (f.x2apic) a.l1_ecx |= bit(kL1EcxX2apic);
  if (f.tsc_deadline) a.l1_ecx |= bit(kL1EcxTscDeadline);
  if (f.xsave) a.l1_ecx |= bit(kL1EcxXsave) | bit(kL1EcxOsxsave);
  if (has_avx(f)) a.l1_ecx |= bit(kL1EcxAvx) | bit(kL1EcxFma) | bit(kL1EcxF16c);
  a.l1_edx = kL1EdxPass | bit(kL1EdxHtt);
  if (f.lapic) a.l1_edx |= bit(kL1EdxApic);
  a.l7_ebx = kL7EbxPass | bit(kL7EbxTscAdjust);
  if (f.invpcid) a.l7_ebx |= bit(kL7EbxInvpcid);
  if (has_avx(f)) a.l7_ebx |= bit(kL7EbxAvx2);
  if (has_avx512(f)) a.l7_ebx |= kL7EbxAvx512;
  a.l7_ecx = kL7EcxPass;
  if (f.rdtscp) a.l7_ecx |= bit(kL7EcxRdpid);
  if (has_avx(f)) a.l7_ecx |= kL7EcxAvx;
  if (has_avx512(f)) a.l7_ecx |= kL7EcxAvx512;
  a.l7_edx = kL7EdxPass | bit(kL7EdxArchCaps) | kL7EdxSpec;
  if (has_avx512(f)) a.l7_edx |= kL7EdxAvx512;
  a.e1_ecx = kE1EcxPass;
  a.e1_edx = kE1EdxPass;
  if (f.rdtscp) a.e1_edx |= bit(kE1EdxRdtscp);
  return a;
}

}  // namespace hv::cpuid
