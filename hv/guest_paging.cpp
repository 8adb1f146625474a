// The guest's paging state from the current VMCS (see guest_paging.h).
#include "hv/guest_paging.h"

#include "arch/x86/vmx/instructions.h"
#include "arch/x86/vmx/vmcs_fields.h"
#include "hv/vm.h"

namespace hv {

using namespace x86::vmx;

GuestPaging current_guest_paging(Vm& vm) {
  GuestPaging p;
  p.cr0 = vmread(field::kGuestCr0);
  p.cr3 = vmread(field::kGuestCr3);
  p.cr4 = vmread(field::kGuestCr4);
  p.efer = vmread(field::kGuestEfer);
  p.maxphyaddr = vm.mmu().guest_phys_bits();
  constexpr uint64_t kPg = 1ull << 31, kPae = 1ull << 5, kLma = 1ull << 10;
  if ((p.cr0 & kPg) && (p.cr4 & kPae) && !(p.efer & kLma)) {
    for (unsigned i = 0; i < 4; i++) p.pdpte[i] = vmread(field::kGuestPdpte0 + 2 * i);
    p.pdptes_valid = true;
  }
  return p;
}

bool read_guest_paging_entry(void* ctx, uint64_t gpa, unsigned size, uint64_t* value) {
  const uint64_t hpa = static_cast<Vm*>(ctx)->mmu().translate(gpa, size, false);
  if (!hpa) return false;
  *value = size == 8 ? *reinterpret_cast<const volatile uint64_t*>(hpa) : *reinterpret_cast<const volatile uint32_t*>(hpa);
  return true;
}

}  // namespace hv
