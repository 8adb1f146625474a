// Basic VM-exit reasons (SDM Vol. 3D, appendix C) and the names the logs print.
//
// The exit-reason field holds the basic reason in bits 15:0; bit 31 says the exit is really a
// failed VM entry (then the reason is 33, 34 or 41 and the guest never ran).
#pragma once

#include <stdint.h>

namespace x86::vmx {

enum ExitReason : uint16_t {
  kExitExceptionOrNmi = 0,
  kExitExternalInterrupt = 1,
  kExitTripleFault = 2,
  kExitInit = 3,
  kExitSipi = 4,
  kExitIoSmi = 5,
  kExitOtherSmi = 6,
  kExitInterruptWindow = 7,
  kExitNmiWindow = 8,
  kExitTaskSwitch = 9,
  kExitCpuid = 10,
  kExitGetsec = 11,
  kExitHlt = 12,
  kExitInvd = 13,
  kExitInvlpg = 14,
  kExitRdpmc = 15,
  kExitRdtsc = 16,
  kExitRsm = 17,
  kExitVmcall = 18,
  kExitVmclear = 19,
  kExitVmlaunch = 20,
  kExitVmptrld = 21,
  kExitVmptrst = 22,
  kExitVmread = 23,
  kExitVmresume = 24,
  kExitVmwrite = 25,
  kExitVmxoff = 26,
  kExitVmxon = 27,
  kExitCrAccess = 28,
  kExitMovDr = 29,
  kExitIoInstruction = 30,
  kExitRdmsr = 31,
  kExitWrmsr = 32,
  kExitEntryFailGuestState = 33,
  kExitEntryFailMsrLoading = 34,
  kExitMwait = 36,
  kExitMonitorTrapFlag = 37,
  kExitMonitor = 39,
  kExitPause = 40,
  kExitEntryFailMachineCheck = 41,
  kExitTprBelowThreshold = 43,
  kExitApicAccess = 44,
  kExitVirtualizedEoi = 45,
  kExitGdtrIdtrAccess = 46,
  kExitLdtrTrAccess = 47,
  kExitEptViolation = 48,
  kExitEptMisconfig = 49,
  kExitInvept = 50,
  kExitRdtscp = 51,
  kExitPreemptionTimer = 52,
  kExitInvvpid = 53,
  kExitWbinvd = 54,
  kExitXsetbv = 55,
  kExitApicWrite = 56,
  kExitRdrand = 57,
  kExitInvpcid = 58,
  kExitVmfunc = 59,
  kExitEncls = 60,
  kExitRdseed = 61,
  kExitPmlFull = 62,
  kExitXsaves = 63,
  kExitXrstors = 64,
};

// One more than the largest basic exit reason this build knows (tables are sized by it).
inline constexpr unsigned kExitReasonCount = 80;
inline constexpr uint32_t kExitReasonEntryFailure = 1u << 31;

// "cpuid", "ept violation", ...; "reason 77" style names are made by the caller for unknown ones.
const char* exit_reason_name(unsigned basic_reason);

// EPT-violation exit qualification (SDM 28.2.1, table "Exit Qualification for EPT Violations").
namespace ept_qual {
inline constexpr uint64_t kRead = 1u << 0;
inline constexpr uint64_t kWrite = 1u << 1;
inline constexpr uint64_t kFetch = 1u << 2;
inline constexpr uint64_t kWasReadable = 1u << 3;
inline constexpr uint64_t kWasWritable = 1u << 4;
inline constexpr uint64_t kWasExecutable = 1u << 5;
inline constexpr uint64_t kLinearValid = 1u << 7;
// With kLinearValid: 1 = the access was to the final translated address, 0 = to a guest
// paging-structure entry during the guest's own page walk.
inline constexpr uint64_t kFinalTranslation = 1u << 8;
inline constexpr uint64_t kNmiUnblocking = 1u << 12;
}  // namespace ept_qual

// I/O-instruction exit qualification (SDM table "Exit Qualification for I/O Instructions").
namespace io_qual {
inline constexpr unsigned size(uint64_t q) { return static_cast<unsigned>(q & 7) + 1; }  // 1, 2 or 4
inline constexpr bool is_in(uint64_t q) { return (q & (1u << 3)) != 0; }
inline constexpr bool is_string(uint64_t q) { return (q & (1u << 4)) != 0; }
inline constexpr bool is_rep(uint64_t q) { return (q & (1u << 5)) != 0; }
inline constexpr uint16_t port(uint64_t q) { return static_cast<uint16_t>(q >> 16); }
}  // namespace io_qual

}  // namespace x86::vmx
