// The guest's paging state as the current VMCS holds it, for hv's guest page walker
// (hv/guest_walk.h): what the emulator (hv/exit_ept.cpp) and string I/O (hv/exit_io.cpp) need
// to turn a guest-linear address into a guest-physical one as the guest's last instruction did.
#pragma once

#include <stdint.h>

#include "hv/guest_walk.h"

namespace hv {

class Vm;

// CR0, CR3, CR4 and EFER from the current VMCS, the VM's MAXPHYADDR, and, for PAE paging
// outside IA-32e mode, the four PDPTEs the CPU loaded with CR3 (with EPT, every VM exit saves
// them in the VMCS: guest PDPTE0-3), which is what the guest's own accesses used.
GuestPaging current_guest_paging(Vm& vm);

// A GuestRead for guest_walk(): a guest page-table entry read only from the VM's RAM slots,
// the whole entry inside one slot (GuestMmu::translate checks the bounds). `ctx` is the Vm.
bool read_guest_paging_entry(void* ctx, uint64_t gpa, unsigned size, uint64_t* value);

}  // namespace hv
