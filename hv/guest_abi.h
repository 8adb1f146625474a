// What hv offers a guest, as the test guests (tests/guests/) rely on it.
//   - port 0xE9, OUT byte: console; hv prints each completed line as "hv: guest: <line>";
//   - port 0x500, OUT dword: the guest's result (0 = pass, else a failure code); the vCPU
//     stops after it;
//   - CPUID leaf 0x40000000: EAX = highest hypervisor leaf, EBX/ECX/EDX = "hv-tdp-mmu  ";
//     CPUID.1:ECX has the hypervisor bit (31) set and VMX (5) cleared;
//   - VMCALL: RAX = hypercall number; unknown numbers return RAX = ~0 (no fault).
//   - at entry: 32-bit protected mode, paging off, flat segments, EBX = bytes of guest RAM,
//     ESI = the test mode (below; from hv's command line hv.guest=...).
#pragma once

#include <stdint.h>

namespace hv::guest_abi {

inline constexpr uint16_t kConsolePort = 0xE9;
inline constexpr uint16_t kResultPort = 0x500;
inline constexpr uint32_t kHypervisorLeaf = 0x40000000;
inline constexpr char kSignature[13] = "hv-tdp-mmu  ";
inline constexpr uint64_t kHypercallUnknown = ~0ull;

// Test modes of the memtouch guest: after its normal checks it misbehaves on purpose.
inline constexpr uint64_t kModeNormal = 0;
inline constexpr uint64_t kModeUnbacked = 1;     // writes guest-physical memory beyond its RAM
inline constexpr uint64_t kModeTripleFault = 2;  // loads an empty IDT and raises #UD
inline constexpr uint64_t kModeBadMsr = 3;       // WRMSR to an MSR hv does not emulate (#GP expected)

}  // namespace hv::guest_abi
