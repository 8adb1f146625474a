// VMCS field encodings (Intel SDM Vol. 3D, appendix B "Field Encoding in VMCS").
//
// An encoding is a 32-bit value with structure:
//   bit 0        access type (1 = the high 32 bits of a 64-bit field)
//   bits 9:1     index
//   bits 11:10   type: 0 control, 1 VM-exit information (read-only), 2 guest state, 3 host state
//   bits 14:13   width: 0 16-bit, 1 64-bit, 2 32-bit, 3 natural width
// Every field below is written as its literal encoding (easy to compare with the SDM table)
// and a static_assert recomputes it from (width, type, index), so a typo in either shows up at
// compile time. The width also tells the dump code how many digits to print.
#pragma once

#include <stdint.h>

namespace x86::vmx {

enum class Width : uint32_t { k16 = 0, k64 = 1, k32 = 2, kNatural = 3 };
enum class Kind : uint32_t { kControl = 0, kExitInfo = 1, kGuest = 2, kHost = 3 };

constexpr uint32_t encode(Width w, Kind k, uint32_t index) {
  return (static_cast<uint32_t>(w) << 13) | (static_cast<uint32_t>(k) << 10) | (index << 1);
}
constexpr Width width_of(uint32_t field) { return static_cast<Width>((field >> 13) & 3); }
constexpr Kind kind_of(uint32_t field) { return static_cast<Kind>((field >> 10) & 3); }

namespace field {

// ---- 16-bit ----------------------------------------------------------------------------
inline constexpr uint32_t kVpid = 0x0000;
inline constexpr uint32_t kPostedIntrNotificationVector = 0x0002;
inline constexpr uint32_t kGuestEsSel = 0x0800;
inline constexpr uint32_t kGuestCsSel = 0x0802;
inline constexpr uint32_t kGuestSsSel = 0x0804;
inline constexpr uint32_t kGuestDsSel = 0x0806;
inline constexpr uint32_t kGuestFsSel = 0x0808;
inline constexpr uint32_t kGuestGsSel = 0x080A;
inline constexpr uint32_t kGuestLdtrSel = 0x080C;
inline constexpr uint32_t kGuestTrSel = 0x080E;
inline constexpr uint32_t kGuestInterruptStatus = 0x0810;  // RVI 7:0, SVI 15:8
inline constexpr uint32_t kPmlIndex = 0x0812;  // next free entry of the PML page (511 down to 0)
inline constexpr uint32_t kHostEsSel = 0x0C00;
inline constexpr uint32_t kHostCsSel = 0x0C02;
inline constexpr uint32_t kHostSsSel = 0x0C04;
inline constexpr uint32_t kHostDsSel = 0x0C06;
inline constexpr uint32_t kHostFsSel = 0x0C08;
inline constexpr uint32_t kHostGsSel = 0x0C0A;
inline constexpr uint32_t kHostTrSel = 0x0C0C;

// ---- 64-bit ----------------------------------------------------------------------------
inline constexpr uint32_t kIoBitmapA = 0x2000;
inline constexpr uint32_t kIoBitmapB = 0x2002;
inline constexpr uint32_t kMsrBitmap = 0x2004;
inline constexpr uint32_t kExitMsrStoreAddr = 0x2006;
inline constexpr uint32_t kExitMsrLoadAddr = 0x2008;
inline constexpr uint32_t kEntryMsrLoadAddr = 0x200A;
inline constexpr uint32_t kPmlAddress = 0x200E;  // the 4 KiB page-modification log
inline constexpr uint32_t kTscOffset = 0x2010;
inline constexpr uint32_t kVirtualApicAddr = 0x2012;
inline constexpr uint32_t kApicAccessAddr = 0x2014;
inline constexpr uint32_t kPostedIntrDescAddr = 0x2016;
inline constexpr uint32_t kEptPointer = 0x201A;
inline constexpr uint32_t kEoiExitBitmap0 = 0x201C;  // 1..3 follow every 2
inline constexpr uint32_t kGuestPhysicalAddress = 0x2400;  // exit information
inline constexpr uint32_t kVmcsLinkPointer = 0x2800;
inline constexpr uint32_t kGuestDebugCtl = 0x2802;
inline constexpr uint32_t kGuestPat = 0x2804;
inline constexpr uint32_t kGuestEfer = 0x2806;
inline constexpr uint32_t kGuestPdpte0 = 0x280A;
inline constexpr uint32_t kHostPat = 0x2C00;
inline constexpr uint32_t kHostEfer = 0x2C02;

// ---- 32-bit ----------------------------------------------------------------------------
inline constexpr uint32_t kPinBasedControls = 0x4000;
inline constexpr uint32_t kProcBasedControls = 0x4002;
inline constexpr uint32_t kExceptionBitmap = 0x4004;
inline constexpr uint32_t kPageFaultErrorMask = 0x4006;
inline constexpr uint32_t kPageFaultErrorMatch = 0x4008;
inline constexpr uint32_t kCr3TargetCount = 0x400A;
inline constexpr uint32_t kExitControls = 0x400C;
inline constexpr uint32_t kExitMsrStoreCount = 0x400E;
inline constexpr uint32_t kExitMsrLoadCount = 0x4010;
inline constexpr uint32_t kEntryControls = 0x4012;
inline constexpr uint32_t kEntryMsrLoadCount = 0x4014;
inline constexpr uint32_t kEntryInterruptionInfo = 0x4016;
inline constexpr uint32_t kEntryExceptionErrorCode = 0x4018;
inline constexpr uint32_t kEntryInstructionLength = 0x401A;
inline constexpr uint32_t kTprThreshold = 0x401C;
inline constexpr uint32_t kSecondaryControls = 0x401E;
inline constexpr uint32_t kInstructionError = 0x4400;  // exit information from here on
inline constexpr uint32_t kExitReason = 0x4402;
inline constexpr uint32_t kExitInterruptionInfo = 0x4404;
inline constexpr uint32_t kExitInterruptionErrorCode = 0x4406;
inline constexpr uint32_t kIdtVectoringInfo = 0x4408;
inline constexpr uint32_t kIdtVectoringErrorCode = 0x440A;
inline constexpr uint32_t kExitInstructionLength = 0x440C;
inline constexpr uint32_t kExitInstructionInfo = 0x440E;
inline constexpr uint32_t kGuestEsLimit = 0x4800;
inline constexpr uint32_t kGuestCsLimit = 0x4802;
inline constexpr uint32_t kGuestSsLimit = 0x4804;
inline constexpr uint32_t kGuestDsLimit = 0x4806;
inline constexpr uint32_t kGuestFsLimit = 0x4808;
inline constexpr uint32_t kGuestGsLimit = 0x480A;
inline constexpr uint32_t kGuestLdtrLimit = 0x480C;
inline constexpr uint32_t kGuestTrLimit = 0x480E;
inline constexpr uint32_t kGuestGdtrLimit = 0x4810;
inline constexpr uint32_t kGuestIdtrLimit = 0x4812;
inline constexpr uint32_t kGuestEsAr = 0x4814;
inline constexpr uint32_t kGuestCsAr = 0x4816;
inline constexpr uint32_t kGuestSsAr = 0x4818;
inline constexpr uint32_t kGuestDsAr = 0x481A;
inline constexpr uint32_t kGuestFsAr = 0x481C;
inline constexpr uint32_t kGuestGsAr = 0x481E;
inline constexpr uint32_t kGuestLdtrAr = 0x4820;
inline constexpr uint32_t kGuestTrAr = 0x4822;
inline constexpr uint32_t kGuestInterruptibility = 0x4824;
inline constexpr uint32_t kGuestActivityState = 0x4826;
inline constexpr uint32_t kGuestSysenterCs = 0x482A;
inline constexpr uint32_t kGuestPreemptionTimer = 0x482E;
inline constexpr uint32_t kHostSysenterCs = 0x4C00;

// ---- natural width -----------------------------------------------------------------------
inline constexpr uint32_t kCr0GuestHostMask = 0x6000;
inline constexpr uint32_t kCr4GuestHostMask = 0x6002;
inline constexpr uint32_t kCr0ReadShadow = 0x6004;
inline constexpr uint32_t kCr4ReadShadow = 0x6006;
inline constexpr uint32_t kExitQualification = 0x6400;  // exit information
inline constexpr uint32_t kGuestLinearAddress = 0x640A;
inline constexpr uint32_t kGuestCr0 = 0x6800;
inline constexpr uint32_t kGuestCr3 = 0x6802;
inline constexpr uint32_t kGuestCr4 = 0x6804;
inline constexpr uint32_t kGuestEsBase = 0x6806;
inline constexpr uint32_t kGuestCsBase = 0x6808;
inline constexpr uint32_t kGuestSsBase = 0x680A;
inline constexpr uint32_t kGuestDsBase = 0x680C;
inline constexpr uint32_t kGuestFsBase = 0x680E;
inline constexpr uint32_t kGuestGsBase = 0x6810;
inline constexpr uint32_t kGuestLdtrBase = 0x6812;
inline constexpr uint32_t kGuestTrBase = 0x6814;
inline constexpr uint32_t kGuestGdtrBase = 0x6816;
inline constexpr uint32_t kGuestIdtrBase = 0x6818;
inline constexpr uint32_t kGuestDr7 = 0x681A;
inline constexpr uint32_t kGuestRsp = 0x681C;
inline constexpr uint32_t kGuestRip = 0x681E;
inline constexpr uint32_t kGuestRflags = 0x6820;
inline constexpr uint32_t kGuestPendingDebug = 0x6822;
inline constexpr uint32_t kGuestSysenterEsp = 0x6824;
inline constexpr uint32_t kGuestSysenterEip = 0x6826;
inline constexpr uint32_t kHostCr0 = 0x6C00;
inline constexpr uint32_t kHostCr3 = 0x6C02;
inline constexpr uint32_t kHostCr4 = 0x6C04;
inline constexpr uint32_t kHostFsBase = 0x6C06;
inline constexpr uint32_t kHostGsBase = 0x6C08;
inline constexpr uint32_t kHostTrBase = 0x6C0A;
inline constexpr uint32_t kHostGdtrBase = 0x6C0C;
inline constexpr uint32_t kHostIdtrBase = 0x6C0E;
inline constexpr uint32_t kHostSysenterEsp = 0x6C10;
inline constexpr uint32_t kHostSysenterEip = 0x6C12;
inline constexpr uint32_t kHostRsp = 0x6C14;
inline constexpr uint32_t kHostRip = 0x6C16;

// ---- the literals above, recomputed from their structure ---------------------------------
using W = Width;
using K = Kind;
static_assert(kVpid == encode(W::k16, K::kControl, 0));
static_assert(kGuestEsSel == encode(W::k16, K::kGuest, 0) && kGuestTrSel == encode(W::k16, K::kGuest, 7));
static_assert(kHostEsSel == encode(W::k16, K::kHost, 0) && kHostTrSel == encode(W::k16, K::kHost, 6));
static_assert(kIoBitmapA == encode(W::k64, K::kControl, 0) && kMsrBitmap == encode(W::k64, K::kControl, 2));
static_assert(kPostedIntrNotificationVector == encode(W::k16, K::kControl, 1));
static_assert(kGuestInterruptStatus == encode(W::k16, K::kGuest, 8));
static_assert(kPmlIndex == encode(W::k16, K::kGuest, 9) && kPmlAddress == encode(W::k64, K::kControl, 7));
static_assert(kVirtualApicAddr == encode(W::k64, K::kControl, 9) && kPostedIntrDescAddr == encode(W::k64, K::kControl, 11));
static_assert(kEoiExitBitmap0 == encode(W::k64, K::kControl, 14));
static_assert(kTscOffset == encode(W::k64, K::kControl, 8) && kEptPointer == encode(W::k64, K::kControl, 13));
static_assert(kGuestPhysicalAddress == encode(W::k64, K::kExitInfo, 0));
static_assert(kVmcsLinkPointer == encode(W::k64, K::kGuest, 0) && kGuestEfer == encode(W::k64, K::kGuest, 3));
static_assert(kGuestPdpte0 == encode(W::k64, K::kGuest, 5));
static_assert(kHostPat == encode(W::k64, K::kHost, 0) && kHostEfer == encode(W::k64, K::kHost, 1));
static_assert(kPinBasedControls == encode(W::k32, K::kControl, 0));
static_assert(kExitControls == encode(W::k32, K::kControl, 6) && kEntryControls == encode(W::k32, K::kControl, 9));
static_assert(kSecondaryControls == encode(W::k32, K::kControl, 15));
static_assert(kInstructionError == encode(W::k32, K::kExitInfo, 0) && kExitReason == encode(W::k32, K::kExitInfo, 1));
static_assert(kExitInstructionInfo == encode(W::k32, K::kExitInfo, 7));
static_assert(kGuestEsLimit == encode(W::k32, K::kGuest, 0) && kGuestIdtrLimit == encode(W::k32, K::kGuest, 9));
static_assert(kGuestEsAr == encode(W::k32, K::kGuest, 10) && kGuestTrAr == encode(W::k32, K::kGuest, 17));
static_assert(kGuestInterruptibility == encode(W::k32, K::kGuest, 18));
static_assert(kGuestActivityState == encode(W::k32, K::kGuest, 19));
static_assert(kGuestSysenterCs == encode(W::k32, K::kGuest, 21));
static_assert(kGuestPreemptionTimer == encode(W::k32, K::kGuest, 23));
static_assert(kHostSysenterCs == encode(W::k32, K::kHost, 0));
static_assert(kCr0GuestHostMask == encode(W::kNatural, K::kControl, 0));
static_assert(kCr4ReadShadow == encode(W::kNatural, K::kControl, 3));
static_assert(kExitQualification == encode(W::kNatural, K::kExitInfo, 0));
static_assert(kGuestLinearAddress == encode(W::kNatural, K::kExitInfo, 5));
static_assert(kGuestCr0 == encode(W::kNatural, K::kGuest, 0) && kGuestRip == encode(W::kNatural, K::kGuest, 15));
static_assert(kGuestSysenterEip == encode(W::kNatural, K::kGuest, 19));
static_assert(kHostCr0 == encode(W::kNatural, K::kHost, 0) && kHostRip == encode(W::kNatural, K::kHost, 11));

}  // namespace field

// ---- control bits (SDM Vol. 3C, 25.6 "VM-execution control fields" and 25.7/25.8) --------
namespace pin {
inline constexpr uint32_t kExternalInterruptExiting = 1u << 0;
inline constexpr uint32_t kNmiExiting = 1u << 3;
inline constexpr uint32_t kVirtualNmis = 1u << 5;
inline constexpr uint32_t kPreemptionTimer = 1u << 6;
inline constexpr uint32_t kPostedInterrupts = 1u << 7;
}  // namespace pin

namespace proc {
inline constexpr uint32_t kInterruptWindowExiting = 1u << 2;
inline constexpr uint32_t kUseTscOffsetting = 1u << 3;
inline constexpr uint32_t kHltExiting = 1u << 7;
inline constexpr uint32_t kInvlpgExiting = 1u << 9;
inline constexpr uint32_t kMwaitExiting = 1u << 10;
inline constexpr uint32_t kRdpmcExiting = 1u << 11;
inline constexpr uint32_t kRdtscExiting = 1u << 12;
inline constexpr uint32_t kCr3LoadExiting = 1u << 15;
inline constexpr uint32_t kCr3StoreExiting = 1u << 16;
inline constexpr uint32_t kCr8LoadExiting = 1u << 19;
inline constexpr uint32_t kCr8StoreExiting = 1u << 20;
inline constexpr uint32_t kUseTprShadow = 1u << 21;
inline constexpr uint32_t kMovDrExiting = 1u << 23;
inline constexpr uint32_t kUnconditionalIoExiting = 1u << 24;
inline constexpr uint32_t kUseIoBitmaps = 1u << 25;
inline constexpr uint32_t kUseMsrBitmaps = 1u << 28;
inline constexpr uint32_t kMonitorExiting = 1u << 29;
inline constexpr uint32_t kPauseExiting = 1u << 30;
inline constexpr uint32_t kActivateSecondary = 1u << 31;
}  // namespace proc

namespace proc2 {
inline constexpr uint32_t kVirtualizeApicAccesses = 1u << 0;
inline constexpr uint32_t kEnableEpt = 1u << 1;
inline constexpr uint32_t kDescriptorTableExiting = 1u << 2;
inline constexpr uint32_t kEnableRdtscp = 1u << 3;
inline constexpr uint32_t kVirtualizeX2apic = 1u << 4;
inline constexpr uint32_t kEnableVpid = 1u << 5;
inline constexpr uint32_t kWbinvdExiting = 1u << 6;
inline constexpr uint32_t kUnrestrictedGuest = 1u << 7;
inline constexpr uint32_t kApicRegisterVirtualization = 1u << 8;
inline constexpr uint32_t kVirtualInterruptDelivery = 1u << 9;
inline constexpr uint32_t kEnableInvpcid = 1u << 12;
inline constexpr uint32_t kEnablePml = 1u << 17;  // page-modification logging (needs EPT A/D)
inline constexpr uint32_t kEnableXsaves = 1u << 20;
}  // namespace proc2

namespace exit_ctl {
inline constexpr uint32_t kSaveDebugControls = 1u << 2;
inline constexpr uint32_t kHostAddressSpaceSize = 1u << 9;
inline constexpr uint32_t kAckInterruptOnExit = 1u << 15;
inline constexpr uint32_t kSavePat = 1u << 18;
inline constexpr uint32_t kLoadPat = 1u << 19;
inline constexpr uint32_t kSaveEfer = 1u << 20;
inline constexpr uint32_t kLoadEfer = 1u << 21;
}  // namespace exit_ctl

namespace entry_ctl {
inline constexpr uint32_t kLoadDebugControls = 1u << 2;
inline constexpr uint32_t kIa32eModeGuest = 1u << 9;
inline constexpr uint32_t kLoadPat = 1u << 14;
inline constexpr uint32_t kLoadEfer = 1u << 15;
}  // namespace entry_ctl

// Segment access rights as the VMCS stores them (SDM 25.4.1): the descriptor's type/S/DPL/P
// byte in bits 7:0, AVL/L/D-B/G in bits 15:12, and bit 16 "unusable".
namespace ar {
inline constexpr uint32_t kAccessed = 1u << 0;
inline constexpr uint32_t kS = 1u << 4;  // code/data (not system)
inline constexpr uint32_t kP = 1u << 7;
inline constexpr uint32_t kL = 1u << 13;
inline constexpr uint32_t kDb = 1u << 14;
inline constexpr uint32_t kG = 1u << 15;
inline constexpr uint32_t kUnusable = 1u << 16;
inline constexpr uint32_t kTypeCodeExecRead = 0xA;
inline constexpr uint32_t kTypeDataReadWrite = 0x2;
inline constexpr uint32_t kTypeBusyTss32 = 0xB;  // also "busy 64-bit TSS" in IA-32e mode
}  // namespace ar

}  // namespace x86::vmx
