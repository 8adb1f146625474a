// A virtual machine: its guest RAM (memory slots backed by host memory from the PMM), its EPT
// MMU, its vCPUs and its statistics. Guest RAM is *not* mapped in advance: every EPT entry
// comes from an EPT-violation exit through GuestMmu::map.
#pragma once

#include <stdint.h>

#include "arch/x86/vmx/exit_reason.h"
#include "hv/guest_mmu.h"

namespace hv {

class Vcpu;

struct VmStats {
  uint64_t exits[vmx::kExitReasonCount] = {};
  uint64_t exits_other = 0;  // reasons beyond the table
  uint64_t ept_violations = 0;
  uint64_t map_results[kMapResultCount] = {};  // by MapResult
  uint64_t guest_tsc = 0;        // TSC cycles between entry and exit, summed
  uint64_t host_exit_tsc = 0;    // TSC cycles spent handling exits
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
  };
  const char* init(unsigned id, const SlotSpec* specs, unsigned count, int max_level, unsigned guest_phys_bits);
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

  // Set by the guest's result port (hv/exit_io.cpp); `result_valid` once it reported.
  bool result_valid = false;
  uint32_t result = 0;

 private:
  unsigned id_ = 0;
  RamSlot slots_[kMaxSlots] = {};
  uint64_t alloc_base_[kMaxSlots] = {};   // first frame the PMM gave for slot i
  uint64_t alloc_frames_[kMaxSlots] = {}; // frames still held for slot i (from alloc_base_)
  unsigned slot_count_ = 0;
  uint64_t ram_bytes_ = 0;
  uint64_t ram_top_ = 0;
  GuestMmu mmu_;
  VmStats stats_;
};

}  // namespace hv
