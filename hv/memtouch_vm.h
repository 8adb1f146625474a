// The memtouch guest's VM (tests/guests/memtouch.cpp): hv's own long-mode test guest, one vCPU
// per CPU (vCPU i on CPU i), at most kMaxVcpus, at most hv.vcpus=N; hv.guest=MODE makes it
// misbehave on purpose (hv/guest_abi.h). Describes the VM and hands it to the runner.
#pragma once

#include "arch/x86/multiboot2.h"
#include "arch/x86/vmx/capabilities.h"

namespace hv {

// Runs memtouch from GRUB module `mod`. nullptr when it passed (every vCPU reported a pass
// and every page came back).
const char* run_memtouch(const x86::mb2::Module& mod, const x86::vmx::Capabilities& caps);

}  // namespace hv
