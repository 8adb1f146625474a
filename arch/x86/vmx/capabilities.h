// What this CPU's VMX can do, read once from CPUID and the IA32_VMX_* capability MSRs, and the
// checks that decide whether hv can run guests at all.
//
// hv needs: VMX (CPUID.1:ECX[5]) not locked off by the firmware (IA32_FEATURE_CONTROL), the
// secondary processor-based controls with "enable EPT" and "unrestricted guest", and EPT with
// a 4-level walk, write-back paging structures, 2 MiB pages and INVEPT (single-context or
// all-context). 1 GiB pages, EPT A/D bits and VPID are used when present.
#pragma once

#include <stdint.h>

namespace x86::vmx {

namespace msr {
inline constexpr uint32_t kFeatureControl = 0x3A;
inline constexpr uint32_t kBasic = 0x480;
inline constexpr uint32_t kPinbasedCtls = 0x481;
inline constexpr uint32_t kProcbasedCtls = 0x482;
inline constexpr uint32_t kExitCtls = 0x483;
inline constexpr uint32_t kEntryCtls = 0x484;
inline constexpr uint32_t kMisc = 0x485;
inline constexpr uint32_t kCr0Fixed0 = 0x486;
inline constexpr uint32_t kCr0Fixed1 = 0x487;
inline constexpr uint32_t kCr4Fixed0 = 0x488;
inline constexpr uint32_t kCr4Fixed1 = 0x489;
inline constexpr uint32_t kProcbasedCtls2 = 0x48B;
inline constexpr uint32_t kEptVpidCap = 0x48C;
inline constexpr uint32_t kTruePinbasedCtls = 0x48D;
inline constexpr uint32_t kTrueProcbasedCtls = 0x48E;
inline constexpr uint32_t kTrueExitCtls = 0x48F;
inline constexpr uint32_t kTrueEntryCtls = 0x490;
inline constexpr uint32_t kEfer = 0xC0000080;
inline constexpr uint32_t kPat = 0x277;
inline constexpr uint32_t kDebugCtl = 0x1D9;
}  // namespace msr

namespace feature_control {
inline constexpr uint64_t kLock = 1u << 0;
inline constexpr uint64_t kVmxInsideSmx = 1u << 1;
inline constexpr uint64_t kVmxOutsideSmx = 1u << 2;
}  // namespace feature_control

// IA32_VMX_EPT_VPID_CAP bits (SDM Vol. 3D, A.10).
namespace ept_cap {
inline constexpr uint64_t kExecuteOnly = 1ull << 0;
inline constexpr uint64_t kWalkLength4 = 1ull << 6;
inline constexpr uint64_t kWalkLength5 = 1ull << 7;
inline constexpr uint64_t kMemTypeUc = 1ull << 8;
inline constexpr uint64_t kMemTypeWb = 1ull << 14;
inline constexpr uint64_t kPage2M = 1ull << 16;
inline constexpr uint64_t kPage1G = 1ull << 17;
inline constexpr uint64_t kInvept = 1ull << 20;
inline constexpr uint64_t kAccessedDirty = 1ull << 21;
inline constexpr uint64_t kInveptSingle = 1ull << 25;
inline constexpr uint64_t kInveptGlobal = 1ull << 26;
inline constexpr uint64_t kInvvpid = 1ull << 32;
inline constexpr uint64_t kInvvpidAddress = 1ull << 40;
inline constexpr uint64_t kInvvpidSingle = 1ull << 41;
inline constexpr uint64_t kInvvpidAll = 1ull << 42;
inline constexpr uint64_t kInvvpidSingleKeepGlobals = 1ull << 43;
}  // namespace ept_cap

struct Capabilities {
  uint64_t basic = 0;
  uint32_t revision_id = 0;   // IA32_VMX_BASIC[30:0], written at the head of VMXON region/VMCS
  uint32_t region_size = 0;   // IA32_VMX_BASIC[44:32]
  bool true_controls = false; // IA32_VMX_BASIC[55]: the TRUE_* MSRs exist and are authoritative

  // The capability MSR of each control field, already the TRUE_* one when true_controls:
  // low 32 bits = allowed 0-settings (a 1 means "must be 1"), high 32 = allowed 1-settings.
  uint64_t pin = 0, proc = 0, proc2 = 0, exit = 0, entry = 0;
  uint64_t misc = 0;
  uint64_t cr0_fixed0 = 0, cr0_fixed1 = 0, cr4_fixed0 = 0, cr4_fixed1 = 0;
  uint64_t ept_vpid = 0;
  uint64_t feature_control = 0;

  // Derived facts.
  bool ept_1g = false;
  bool ept_ad = false;
  bool pml = false;              // secondary control "enable PML" (page-modification logging)
  bool vpid = false;             // secondary control "enable VPID" and INVVPID usable
  bool invept_single = false;    // else all-context (global) INVEPT is used
  bool invvpid_single = false;   // else all-context INVVPID is used
  bool preemption_timer = false; // pin-based control available
  unsigned preemption_timer_shift = 0;  // timer ticks every 2^shift TSC cycles (MISC[4:0])

  // APIC virtualization (SDM Vol. 3C chapter 30), each control as the capability MSRs allow it:
  // "use TPR shadow" (IA32_VMX_PROCBASED_CTLS), "virtualize APIC accesses", "virtualize x2APIC
  // mode", "APIC-register virtualization", "virtual-interrupt delivery" (PROCBASED_CTLS2),
  // "process posted interrupts" (PINBASED_CTLS), "acknowledge interrupt on exit" (EXIT_CTLS).
  bool tpr_shadow = false;
  bool virtualize_apic_accesses = false;
  bool virtualize_x2apic = false;
  bool apic_register_virtualization = false;
  bool virtual_interrupt_delivery = false;
  bool posted_interrupts = false;
  bool ack_interrupt_on_exit = false;
  // What hv's hardware path needs (hv/apicv.h): TPR shadow, APIC-register virtualization,
  // virtual-interrupt delivery, virtualize x2APIC mode. Posted interrupts (with acknowledge
  // interrupt on exit) are used on top where offered (apicv_posted()).
  bool apicv() const {
    return tpr_shadow && virtualize_x2apic && apic_register_virtualization && virtual_interrupt_delivery;
  }
  bool apicv_posted() const { return apicv() && posted_interrupts && ack_interrupt_on_exit; }
};

// Reads the capabilities of the calling CPU into `out`. Returns nullptr when hv can run guests
// here, else a sentence saying what is missing ("CPUID.1:ECX.VMX[bit 5] is 0: ...").
const char* probe(Capabilities& out);

// Prints the capability summary (one "hv: vmx: ..." line per group) at info level.
void log_capabilities(const Capabilities& caps);

// Bits that may be 1 / must be 1 in a control field, from its capability MSR value.
inline uint32_t allowed1(uint64_t cap_msr) { return static_cast<uint32_t>(cap_msr >> 32); }
inline uint32_t required1(uint64_t cap_msr) { return static_cast<uint32_t>(cap_msr); }

}  // namespace x86::vmx
