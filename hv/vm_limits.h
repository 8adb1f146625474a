// The fixed sizes of hv's VMs, in one place (every array of vCPUs or VMs is sized from here).
//
// Why fixed: the kernel has no heap, so a VM's vCPUs, its MMU's per-vCPU state and the runner's
// bookkeeping live in static arrays. kMaxVcpus is also part of the guest ABI
// (tests/guests/lib/hv_abi.h HV_MAX_VCPUS, checked in hv/vm.cpp) and of the VPID numbering
// (hv/vcpu.cpp: 1 + vm id * kMaxVcpus + vCPU index).
#pragma once

namespace hv {

inline constexpr unsigned kMaxVcpus = 4;  // vCPUs per VM
inline constexpr unsigned kMaxVms = 4;    // VMs running at once (hv/vm_runner.h), each on CPUs of its own

}  // namespace hv
