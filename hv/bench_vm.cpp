// Benchmark knobs of the multiboot guest's VM (see bench_vm.h).
#include "hv/bench_vm.h"

#include "arch/x86/log.h"
#include "arch/x86/string.h"
#include "hv/cmdline.h"
#include "hv/vm.h"
#include "mmu/spte.h"
#include "tests/guests/bench_memory_abi.h"

namespace hv {

namespace {

constexpr uint64_t kGiB = 1ull << 30;
constexpr unsigned kMaxZapGib = 16;
constexpr uint32_t kAliasSlotFirstId = 40;  // hv's own slots; the guest uses ids 1 and 2
constexpr uint64_t kAliasGpa = 4 * kGiB;    // above every guest slot (HV_GPA_LIMIT)

// Maps every GiB of hv's alias slots with the largest leaves the VM allows, as guest accesses
// would, but from hv before the vCPU starts: the guest is 32-bit with paging off and cannot
// reach guest-physical addresses above 4 GiB, and a fast zap only cares how much is mapped.
const char* map_alias_gibs(Vm& vm, unsigned gib) {
  if (vm.pool_bytes() < kGiB) return "hv.bench-zap-gib needs hv.pool-mib=1024 (a 1 GiB pool to alias)";
  for (unsigned i = 0; i < gib; i++) {
    mmu::Memslot s;
    s.id = kAliasSlotFirstId + i;
    s.as_id = 0;
    s.base_gfn = (kAliasGpa + i * kGiB) >> mmu::kPageShift;
    s.npages = kGiB >> mmu::kPageShift;
    s.backing_hpa = vm.pool_hpa();
    s.max_level = static_cast<uint8_t>(vm.max_level());
    if (vm.mmu().update_memslot(mmu::MemslotOp::create(s)) != mmu::MemslotError::ok)
      return "could not create the alias slots of hv.bench-zap-gib";
  }
  if (!vm.mmu().load_root(0)) return "out of memory for the EPT root";
  const unsigned shift = mmu::kPageShift + 9 * static_cast<unsigned>(vm.max_level() - 1);
  const uint64_t step = uint64_t{1} << shift;
  const unsigned rwx = mmu::spte::kAccRead | mmu::spte::kAccWrite | mmu::spte::kAccExec;
  for (uint64_t gpa = kAliasGpa; gpa < kAliasGpa + gib * kGiB; gpa += step) {
    const mmu::FaultOutcome r = vm.mmu().map(0, gpa >> mmu::kPageShift, rwx);
    if (r != mmu::FaultOutcome::fixed && r != mmu::FaultOutcome::spurious) return "pre-mapping the alias slots failed";
  }
  uint64_t leaves[4];
  vm.mmu().leaves(leaves);
  x86::log::info("vm%u: bench: %u GiB mapped before the start (alias slots of the pool at gpa 0x%lx): leaves 4K %lu 2M %lu "
            "1G %lu, ept table pages %lu",
            vm.id(), gib, kAliasGpa, leaves[1], leaves[2], leaves[3], vm.mmu().table_pages());
  return nullptr;
}

}  // namespace

BenchVmConfig bench_vm_config(uint64_t default_pool_bytes, int default_max_level) {
  BenchVmConfig c{default_pool_bytes, default_max_level, false};
  const uint64_t zap_gib = cmdline::get_number("hv.bench-zap-gib", 0);
  if (zap_gib && zap_gib <= kMaxZapGib) {
    c.hv_slot_bytes = zap_gib * kGiB;
    c.hv_slot_ranges = static_cast<unsigned>(zap_gib);
  }
  char v[8];
  if (cmdline::get("hv.backing", v, sizeof v)) {
    const int want = !strcmp(v, "4k") ? 1 : !strcmp(v, "2m") ? 2 : !strcmp(v, "1g") ? 3 : 0;
    if (!want) x86::log::warn("hv.backing=%s: expected 4k, 2m or 1g; ignored", v);
    else if (want > default_max_level) x86::log::warn("hv.backing=%s: the CPU's EPT has no such leaves; ignored", v);
    else c.max_level = want;
  }
  const uint64_t mib = cmdline::get_number("hv.pool-mib", 0);
  if (mib) {
    // 2 MiB multiples (the pool layout's rule); a whole GiB comes 1 GiB-aligned.
    c.pool_bytes = ((mib << 20) + (2ull << 20) - 1) & ~((2ull << 20) - 1);
    c.align_1g = c.pool_bytes == kGiB;
  }
  return c;
}

const char* bench_vm_prepare(Vm& vm) {
  const bool any = cmdline::has("hv.bench-mib") || cmdline::has("hv.bench-ept-mib") ||
                   cmdline::has("hv.bench-loops") || cmdline::has("hv.bench-zap-gib") || cmdline::has("hv.bench-zap-wait") ||
                   cmdline::has("hv.bench-prefault");
  if (!any) return nullptr;
  hv_bench_params p;
  p.magic = HV_BENCH_MAGIC;
  p.mib = static_cast<uint32_t>(cmdline::get_number("hv.bench-mib", HV_BENCH_DEFAULT_MIB));
  p.ept_mib = static_cast<uint32_t>(cmdline::get_number("hv.bench-ept-mib", 0));
  p.loops = static_cast<uint32_t>(cmdline::get_number("hv.bench-loops", 0));
  p.zap_gib = static_cast<uint32_t>(cmdline::get_number("hv.bench-zap-gib", 0));
  p.max_level = static_cast<uint32_t>(vm.max_level());
  p.zap_wait = cmdline::get_number("hv.bench-zap-wait", 0) ? 1 : 0;
  p.prefault = cmdline::get_number("hv.bench-prefault", 0) ? 1 : 0;
  if (p.zap_gib > kMaxZapGib) return "hv.bench-zap-gib is at most 16";
  void* dst = vm.gpa_to_host(HV_BENCH_GPA, sizeof p);
  if (!dst) return "the benchmark parameter block is outside the boot RAM";
  memcpy(dst, &p, sizeof p);
  x86::log::info("vm%u: bench: parameters mib %u ept-mib %u loops %u zap-gib %u zap-wait %u prefault %u, max leaf level %u, pool %lu "
            "MiB at 0x%lx",
            vm.id(), p.mib, p.ept_mib, p.loops, p.zap_gib, p.zap_wait, p.prefault, p.max_level, vm.pool_bytes() >> 20, vm.pool_hpa());
  if (p.zap_gib) return map_alias_gibs(vm, p.zap_gib);
  return nullptr;
}

}  // namespace hv
