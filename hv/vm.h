// A virtual machine: its guest RAM (memory slots backed by host memory from the PMM), its EPT
// MMU, its vCPUs and its statistics. Guest RAM is *not* mapped in advance: every EPT entry
// comes from an EPT-violation exit through GuestMmu::map.
#pragma once

#include <stdint.h>

#include "arch/x86/spinlock.h"
#include "arch/x86/vmx/exit_reason.h"
#include "hv/guest_mmu.h"
#include "hv/uart.h"

namespace hv {

class Vcpu;

// A statistics counter that the vCPUs of a VM bump from their own CPUs at the same time:
// relaxed atomic increments (nothing is ordered by a counter; it only must not lose counts).
// Reads convert implicitly, so code that sums or copies counters is unchanged; pass get()
// to printf-style functions.
class StatCounter {
 public:
  constexpr StatCounter(uint64_t v = 0) : v_(v) {}
  void operator++(int) { __atomic_fetch_add(&v_, 1, __ATOMIC_RELAXED); }
  void operator++() { __atomic_fetch_add(&v_, 1, __ATOMIC_RELAXED); }
  StatCounter& operator+=(uint64_t d) {
    __atomic_fetch_add(&v_, d, __ATOMIC_RELAXED);
    return *this;
  }
  uint64_t get() const { return __atomic_load_n(&v_, __ATOMIC_RELAXED); }
  operator uint64_t() const { return get(); }

 private:
  uint64_t v_;
};

struct VmStats {
  StatCounter exits[x86::vmx::kExitReasonCount] = {};
  StatCounter exits_other = 0;  // reasons beyond the table
  StatCounter ept_violations = 0;
  StatCounter map_results[kMapResultCount] = {};  // by MapResult
  StatCounter guest_tsc = 0;        // TSC cycles between entry and exit, summed
  StatCounter host_exit_tsc = 0;    // TSC cycles spent handling exits
  // Guest memory accesses that hv emulated instead of mapping (hv/exit_ept.cpp).
  StatCounter unbacked_reads = 0;   // loads from a gpa without a slot: all ones
  StatCounter unbacked_writes = 0;  // stores there: dropped
  StatCounter readonly_writes = 0;  // stores to a read-only slot: dropped
  StatCounter hypercalls = 0;
  StatCounter hypercall_errors = 0;
};

class Vm {
 public:
  static constexpr unsigned kMaxVcpus = 4;
  static constexpr unsigned kMaxSlots = GuestMmu::kMaxSlots;

  // Allocates guest RAM as described by `layout` (base and size of each slot; a slot whose
  // `misalign_4k` is set gets backing that is deliberately not 2 MiB-aligned, so the fault path
  // can only map it with 4 KiB leaves). Returns nullptr or why not.
  struct SlotSpec {
    const char* name;
    uint64_t gpa;
    uint64_t bytes;
    bool misalign_4k;
    bool align_1g = false;  // backing 1 GiB-aligned (1 GiB leaves fit); 0 if no such block is free
  };
  const char* init(unsigned id, const SlotSpec* specs, unsigned count, int max_level, unsigned guest_phys_bits);
  // A VM that manages its own memslots by hypercall (docs/hypercalls.md): one RAM pool of
  // `pool_bytes`, 2 MiB-aligned; slot 0 (owned by hv) maps its first `boot_bytes` at
  // guest-physical 0; the guest may back further slots by offsets into the pool.
  // With `align_1g`, the pool comes from a 1 GiB-aligned run (1 GiB leaves fit where a slot's
  // guest address is 1 GiB-aligned too; hv.pool-mib=1024, hv/bench_vm.h).
  const char* init_pool(unsigned id, uint64_t pool_bytes, uint64_t boot_bytes, int max_level, unsigned guest_phys_bits,
                        bool align_1g = false);
  uint64_t pool_hpa() const { return pool_hpa_; }
  uint64_t pool_bytes() const { return pool_bytes_; }
  int max_level() const { return max_level_; }
  // Serializes the hypercall memslot changes of this VM and guards guest_slots.
  x86::SpinLock slot_lock;
  uint64_t guest_slots GUARDED_BY(slot_lock) = 0;  // bit i: the guest created slot i and has not deleted it
  // Device models of a multiboot guest (hv/exit_io.cpp). `devices` off: the memtouch ports only.
  bool devices = false;
  Uart uart;
  // Frees the EPT tables and the guest RAM. The vCPUs must be stopped and their VMCSs cleared.
  void destroy();

  // Host address of guest-physical [gpa, gpa + len) when it lies inside one slot, else nullptr.
  void* gpa_to_host(uint64_t gpa, uint64_t len);

  unsigned id() const { return id_; }
  GuestMmu& mmu() { return mmu_; }
  VmStats& stats() { return stats_; }
  uint64_t ram_bytes() const { return ram_bytes_; }
  uint64_t ram_top() const { return ram_top_; }
  const RamSlot& slot(unsigned i) const { return slots_[i]; }
  unsigned slot_count() const { return slot_count_; }

  // vCPUs the VM runs (HV_CALL_VCPU_INFO); set before any of them starts.
  unsigned vcpu_count = 1;
  // Set by the guest's result port (hv/exit_io.cpp); `result_valid` once it reported.
  bool result_valid = false;
  uint32_t result = 0;

 private:
  unsigned id_ = 0;
  RamSlot slots_[kMaxSlots] = {};
  uint64_t alloc_base_[kMaxSlots] = {};   // first frame the PMM gave for slot i
  uint64_t alloc_frames_[kMaxSlots] = {}; // frames still held for slot i (from alloc_base_)
  unsigned slot_count_ = 0;
  uint64_t pool_hpa_ = 0;
  uint64_t pool_bytes_ = 0;
  int max_level_ = 1;
  uint64_t ram_bytes_ = 0;
  uint64_t ram_top_ = 0;
  GuestMmu mmu_;
  VmStats stats_;
};

}  // namespace hv
