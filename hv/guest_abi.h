// What hv offers a guest, as the test guests (tests/guests/) rely on it.
//   - port 0xE9, OUT byte: console; hv prints each completed line as "hv: guest: <line>";
//   - port 0x500, OUT dword: the guest's result (0 = pass, else a failure code); the vCPU
//     stops after it;
//   - CPUID leaf 0x40000000: EAX = highest hypervisor leaf, EBX/ECX/EDX = "hv-tdp-mmu  ";
//     CPUID.1:ECX has the hypervisor bit (31) set and VMX (5) cleared;
//   - VMCALL: the hypercall ABI of tests/guests/lib/hv_abi.h and docs/hypercalls.md (unknown
//     numbers return RAX = HV_EUNKNOWN = -1 = kHypercallUnknown, no fault).
// The multiboot v1 test guests (tests/guests/lib/, hv/guest_loader.h) get a different machine:
// multiboot entry state, a 16550 at 0x3F8 and the exit port 0xF4 (docs/hypercalls.md).
//   - at entry: 32-bit protected mode, paging off, flat segments, EBX = bytes of guest RAM,
//     ESI = the test mode (below; from hv's command line hv.guest=...), EDX = the vCPU's
//     index, ECX = the VM's vCPU count (every vCPU starts at the same entry point), EDI = the
//     guest-physical base of a 1 GiB slot (at 1 GiB, 1 GiB-aligned backing) or 0 when hv
//     could not give one.
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
inline constexpr uint64_t kModeSpin = 4;         // every vCPU but vCPU 0 spins forever

}  // namespace hv::guest_abi
