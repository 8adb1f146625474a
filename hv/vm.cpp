// VM construction and guest RAM (see vm.h).
#include "hv/vm.h"

#include "arch/x86/cpu.h"
#include "arch/x86/pmm.h"
#include "hv/guest_ports.h"
#include "tests/guests/lib/hv_abi.h"

namespace hv {

// One vCPU limit for hv and its guests (the guest library sizes its per-vCPU state by it).
static_assert(kMaxVcpus == HV_MAX_VCPUS, "hv/vm_limits.h and tests/guests/lib/hv_abi.h disagree");

namespace {

constexpr uint64_t k4K = x86::pmm::k4K;
constexpr uint64_t k2M = x86::pmm::k2M;

// `frames` contiguous frames whose first one is 2 MiB-aligned (misalign = false) or exactly
// 4 KiB past a 2 MiB boundary (misalign = true). The PMM has no aligned multi-frame allocator,
// so take 512 frames more than needed and give back what is outside the window. Returns the
// window's first frame; *base/*count describe what stays allocated.
uint64_t alloc_window(uint64_t frames, bool misalign, uint64_t* base, uint64_t* count) {
  const uint64_t extra = 512;
  const uint64_t got = x86::pmm::alloc_pages(static_cast<unsigned>(frames + extra), false);
  if (!got) return 0;
  uint64_t start = (got + k2M - 1) & ~(k2M - 1);
  if (misalign) start += k4K;
  if (start + frames * k4K > got + (frames + extra) * k4K) start -= k2M;  // can't happen; keep safe
  for (uint64_t pa = got; pa < start; pa += k4K) x86::pmm::free_4k(pa);
  for (uint64_t pa = start + frames * k4K; pa < got + (frames + extra) * k4K; pa += k4K) x86::pmm::free_4k(pa);
  *base = start;
  *count = frames;
  return start;
}

}  // namespace

const char* Vm::init(unsigned id, const SlotSpec* specs, unsigned count, int max_level, unsigned guest_phys_bits) {
  id_ = id;
  stats_.reset();
  report_result_reset();
  io.clear();
  if (const char* err = claim_guest_abi_ports(*this)) return err;
  if (count > kMaxSlots) return "too many memory slots";
  for (unsigned i = 0; i < count; i++) {
    const SlotSpec& s = specs[i];
    if ((s.gpa | s.bytes) & (k4K - 1) || !s.bytes) return "memory slot not page aligned";
    const uint64_t frames = s.bytes / k4K;
    uint64_t base = 0, n = 0;
    // A 1 GiB-aligned slot comes straight from the PMM's aligned allocator, zeroed there with
    // REP STOSB (a word loop over a whole GiB is slow under emulation).
    const uint64_t hpa = s.align_1g ? x86::pmm::alloc_aligned(frames, 1ull << 30, true)
                                    : alloc_window(frames, s.misalign_4k, &base, &n);
    if (s.align_1g && hpa) {
      base = hpa;
      n = frames;
    }
    if (!hpa) {
      slot_count_ = i;
      destroy();
      return "out of host memory for guest RAM";
    }
    // Guest RAM starts zeroed, like RAM after reset (and no host data leaks into the guest).
    if (!s.align_1g)
      for (uint64_t* p = reinterpret_cast<uint64_t*>(hpa); p < reinterpret_cast<uint64_t*>(hpa + s.bytes); p++) *p = 0;
    alloc_base_[i] = base;
    alloc_frames_[i] = n;
    slots_[i] = RamSlot{s.name, s.gpa / k4K, frames, hpa};
    ram_bytes_ += s.bytes;
    if (s.gpa + s.bytes > ram_top_) ram_top_ = s.gpa + s.bytes;
  }
  slot_count_ = count;
  tsc_origin = x86::rdtsc();  // the VM exists from here (its RAM is zeroed): guest TSC 0
  // The memslots are fixed (no hypercalls change them): the default page limit covers them
  // and hv's own extra slots.
  return mmu_.init(id, slots_, count, max_level, guest_phys_bits, ram_bytes_ + hv_slot_bytes_, count + hv_slot_ranges_);
}

const char* Vm::init_pool(unsigned id, uint64_t pool_bytes, uint64_t boot_bytes, int max_level, unsigned guest_phys_bits,
                          bool align_1g, bool zeroed) {
  id_ = id;
  stats_.reset();
  report_result_reset();
  io.clear();
  if (const char* err = claim_guest_abi_ports(*this)) return err;
  if ((pool_bytes | boot_bytes) & (k2M - 1) || !boot_bytes || boot_bytes > pool_bytes) return "bad RAM pool layout";
  uint64_t base = 0, n = 0;
  // The aligned allocator zeroes with REP STOSB itself (a word loop over a GiB is slow under
  // emulation).
  const uint64_t hpa = align_1g ? x86::pmm::alloc_aligned(pool_bytes / k4K, 1ull << 30, true)
                                : alloc_window(pool_bytes / k4K, false, &base, &n);
  if (!hpa) return align_1g ? "out of host memory for a 1 GiB-aligned RAM pool" : "out of host memory for the RAM pool";
  if (align_1g) {
    base = hpa;
    n = pool_bytes / k4K;
  }
  // Zeroed like RAM after reset, and so that no host data leaks into the guest.
  if (!align_1g && zeroed)
    for (uint64_t* p = reinterpret_cast<uint64_t*>(hpa); p < reinterpret_cast<uint64_t*>(hpa + pool_bytes); p++) *p = 0;
  alloc_base_[0] = base;
  alloc_frames_[0] = n;
  slots_[0] = RamSlot{"ram", 0, boot_bytes / k4K, hpa};
  slot_count_ = 1;
  pool_hpa_ = hpa;
  pool_bytes_ = pool_bytes;
  max_level_ = max_level;
  ram_bytes_ = ram_top_ = boot_bytes;
  {
    x86::SpinLockGuard g(slot_lock);  // no vCPU runs yet; the lock only states the contract
    guest_slots = 0;
  }
  // The most the guest can map (docs/hypercalls.md): the boot RAM plus HV_MAX_GUEST_SLOTS slots,
  // each at most the pool (slots may alias it) and all below HV_GPA_LIMIT, plus hv's own extra
  // slots. The default page limit covers a full 4 KiB mapping of that (hv/pt_limit.h).
  uint64_t mappable = boot_bytes + uint64_t{HV_MAX_GUEST_SLOTS} * pool_bytes;
  if (mappable > HV_GPA_LIMIT) mappable = HV_GPA_LIMIT;
  // GuestMmu::init numbers slots by index: the boot RAM is slot id 0.
  tsc_origin = x86::rdtsc();  // the VM exists from here (its pool is zeroed): guest TSC 0
  return mmu_.init(id, slots_, 1, max_level, guest_phys_bits, mappable + hv_slot_bytes_,
                   1 + HV_MAX_GUEST_SLOTS + hv_slot_ranges_);
}

void Vm::destroy() {
  mmu_.destroy();
  for (unsigned i = 0; i < slot_count_; i++) {
    for (uint64_t f = 0; f < alloc_frames_[i]; f++) x86::pmm::free_4k(alloc_base_[i] + f * k4K);
    alloc_frames_[i] = 0;
  }
  slot_count_ = 0;
}

void* Vm::gpa_to_host(uint64_t gpa, uint64_t len) {
  for (unsigned i = 0; i < slot_count_; i++) {
    const uint64_t start = slots_[i].base_gfn * k4K;
    const uint64_t end = start + slots_[i].npages * k4K;
    if (gpa >= start && gpa + len >= gpa && gpa + len <= end)
      return reinterpret_cast<void*>(slots_[i].backing_hpa + (gpa - start));
  }
  return nullptr;
}

}  // namespace hv
