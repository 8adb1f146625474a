// Dirty logging as hv offers it to guests: the per-machine choice of mechanism (hv.dirty=) and
// the hypercalls HV_CALL_DIRTY_LOG_START/STOP/HARVEST (docs/hypercalls.md "Dirty logging").
// The logging itself is the MMU's (mmu/dirty_log.h, docs/mmu.md §11).
#pragma once

#include <stdint.h>

#include "arch/x86/vmx/capabilities.h"
#include "mmu/dirty_log.h"

namespace hv {

class Vcpu;

// Decide the mechanism once, at boot, from hv.dirty=wp|ad|pml and the CPU: the default is the
// best the CPU offers among what hv implements (ad with EPT A/D bits, else wp); ad without
// EPT A/D falls back to wp, and pml without the CPU's PML (or without EPT A/D) to ad or wp.
// pml is never the default (ad costs no exits at all). Prints the choice and why. hv/pml.h runs PML.
void dirty_log_init(const x86::vmx::Capabilities& caps);
// The mechanism of every VM, and whether their EPTPs enable A/D (mmu::MmuConfig::ept_ad).
mmu::DirtyMode dirty_log_mode();
bool dirty_log_ept_ad();
// The HV_DIRTY_* value of a mechanism (hv_abi.h).
uint32_t dirty_log_abi_mode(mmu::DirtyMode m);

// The three hypercalls (registers already masked to the guest's mode). RBX results in *out.
int64_t dirty_log_hypercall(Vcpu& vcpu, uint64_t nr, uint64_t id, uint64_t gpa, uint64_t bytes,
                            uint64_t* out);

}  // namespace hv
