// Identity-map maintenance (see paging.h). The boot tables live in boot/entry.asm's .bss.
#include "arch/x86/paging.h"

#include "arch/x86/cpu.h"
#include "arch/x86/pmm.h"

extern "C" uint64_t boot_pml4[512];
extern "C" uint64_t boot_pdpt[512];
extern "C" uint64_t boot_pd[4 * 512];

namespace x86::paging {
namespace {

constexpr uint64_t kP = 1, kW = 2, kPwt = 1 << 3, kPcd = 1 << 4, kPs = 1 << 7;
constexpr uint64_t k1G = 1ull << 30, k2M = 2ull << 20;
constexpr uint64_t kMaxTop = 512 * k1G;

uint64_t g_limit = 4 * k1G;

}  // namespace

uint64_t extend_identity_map(uint64_t top) {
  // The local APIC (0xFEE00000) and IOAPIC (0xFEC00000) registers must be uncached, whatever
  // the MTRRs say: PCD|PWT selects UC in the default PAT.
  for (uint64_t pa = 0xFEC00000; pa < 0xFF000000; pa += k2M) {
    boot_pd[pa / k2M] |= kPcd | kPwt;
    x86::invlpg(pa);
  }

  if (top > kMaxTop) top = kMaxTop;
  const bool gb_pages = (x86::cpuid(0x80000000).eax >= 0x80000001) && (x86::cpuid(0x80000001).edx & (1u << 26));
  for (uint64_t gb = 4; gb * k1G < top; gb++) {
    if (boot_pdpt[gb] & kP) continue;
    if (gb_pages) {
      boot_pdpt[gb] = (gb * k1G) | kP | kW | kPs;
    } else {
      uint64_t pd_pa = pmm::alloc_4k(true);
      if (!pd_pa || pd_pa + 4096 > g_limit) break;  // keep what is mapped so far
      uint64_t* pd = reinterpret_cast<uint64_t*>(pd_pa);
      for (uint64_t i = 0; i < 512; i++) pd[i] = (gb * k1G + i * k2M) | kP | kW | kPs;
      boot_pdpt[gb] = pd_pa | kP | kW;
    }
    g_limit = (gb + 1) * k1G;
  }
  x86::write_cr3(x86::read_cr3());
  return g_limit;
}

bool protect_null_page() {
  const uint64_t pt_pa = pmm::alloc_4k(true);
  if (!pt_pa) return false;
  uint64_t* pt = reinterpret_cast<uint64_t*>(pt_pa);
  for (uint64_t i = 1; i < 512; i++) pt[i] = (i * 4096) | kP | kW;
  pt[0] = 0;
  // Release the filled table before the hardware walker can reach it; the CR3 reload after
  // the store orders the PDE update before any later translation (it flushes the old 2 MiB
  // TLB entry on this CPU; the APs are not running yet).
  __atomic_store_n(&boot_pd[0], pt_pa | kP | kW, __ATOMIC_RELEASE);
  x86::write_cr3(x86::read_cr3());
  return true;
}

uint64_t mapped_limit() { return g_limit; }

uint64_t kernel_cr3() { return reinterpret_cast<uint64_t>(boot_pml4); }

}  // namespace x86::paging
