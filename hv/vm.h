// A virtual machine: its guest RAM (memory slots backed by host memory from the PMM), its EPT
// MMU, its vCPUs and its statistics. Guest RAM is *not* mapped in advance: every EPT entry
// comes from an EPT-violation exit through GuestMmu::map.
#pragma once

#include <stdint.h>

#include "arch/x86/spinlock.h"
#include "arch/x86/vmx/exit_reason.h"
#include "hv/counter.h"
#include "hv/devices/chipset.h"
#include "hv/devices/acpi_pm.h"
#include "hv/devices/fw_cfg.h"
#include "hv/devices/nmi_button.h"
#include "hv/devices/vlapic.h"
#include "hv/devices/vlapic_mmio.h"
#include "hv/guest_mmu.h"
#include "hv/mmio_bus.h"
#include "hv/sipi_latch.h"
#include "hv/io_bus.h"
#include "hv/devices/uart.h"
#include "hv/vm_limits.h"
#include "hv/vm_stat_clock.h"
#include "hv/vm_stats.h"
#include "hv/vm_stress.h"
#include "mmu/atomic.h"

namespace hv {

class Vcpu;
class VmRunState;
struct Migration;

class Vm {
 public:
  static constexpr unsigned kMaxSlots = GuestMmu::kMaxSlots;

  // The page-table limit (hv/pt_limit.h), before init()/init_pool(): hv.pt-limit=N overrides
  // the default (0: no limit). hv_slot_bytes/ranges: guest-physical memory that hv itself will
  // add in slots after init (hv.bench-zap-gib's alias slots), counted into the default.
  void set_page_limit_override(uint64_t pages) { mmu_.set_page_limit_override(pages); }
  // Fast-zap backpressure (hv.zap-backlog=N, before init; see GuestMmu).
  void set_teardown_backlog(uint64_t n) { mmu_.set_teardown_backlog(n); }
  // Fault-around (hv.fault-around=N, before init; see GuestMmu).
  void set_fault_around(uint64_t n) { mmu_.set_fault_around(n); }
  // Back to the defaults (no override, no extra slots, no result), before init.
  void reset_config() {
    mmu_.clear_page_limit_override();
    hv_slot_bytes_ = 0;
    hv_slot_ranges_ = 0;
    unbacked_policy = false;
    mmio.clear();
    vcpu_count = 1;
    acpi_rsdp_gpa = 0;
    report_guest_state = false;
    migration = nullptr;
    report_result_reset();
  }
  void add_hv_slots(uint64_t bytes, unsigned ranges) {
    hv_slot_bytes_ += bytes;
    hv_slot_ranges_ += ranges;
  }

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
  // The pool is zeroed unless `zeroed` is false: a migration target (hv/migrate.cpp) gets every
  // page of it copied before it runs, and zeroing it first cost the source's guest time.
  const char* init_pool(unsigned id, uint64_t pool_bytes, uint64_t boot_bytes, int max_level, unsigned guest_phys_bits,
                        bool align_1g = false, bool zeroed = true);
  uint64_t pool_hpa() const { return pool_hpa_; }
  uint64_t pool_bytes() const { return pool_bytes_; }
  int max_level() const { return max_level_; }
  // Serializes the hypercall memslot changes of this VM and guards guest_slots.
  x86::SpinLock slot_lock;
  uint64_t guest_slots GUARDED_BY(slot_lock) = 0;  // bit i: the guest created slot i and has not deleted it
  // The VM's port-I/O bus (hv/io_bus.h): init()/init_pool() start it with hv's console and
  // result ports (hv/guest_ports.h); whoever builds the VM claims its devices on it before
  // any vCPU runs. The devices of a multiboot guest follow (hv/guest_run.cpp claims them).
  IoBus io;
  Uart uart;
  // The VM's MMIO devices (hv/mmio_bus.h), reached through the instruction emulator.
  MmioBus mmio;
  // Accesses to unbacked or read-only guest-physical memory are emulated and completed as
  // docs/hypercalls.md ("Unbacked and read-only memory") says. Off (hv's memtouch VM, whose
  // guest never makes one on purpose): such an access stops the vCPU with a report.
  bool unbacked_policy = false;
  FwCfg fw_cfg;

  // --- local APICs (hv/devices/vlapic.h, apic_bus.cpp; the lapic part of issue 11) ---
  // One per vCPU, indexed by vCPU = APIC ID; reset by the runner before any vCPU starts.
  Vlapic lapic[kMaxVcpus];
  LapicMmio lapic_mmio;  // the xAPIC page at the APIC base (kApicBaseDefault)
  // The VM's run state, for the wake-ups of apic_deliver (set by the runner before the start).
  VmRunState* run_state = nullptr;
  // When the VM prints its live counters (hv.stat-ms; hv/vm_stat.h), started by the runner.
  VmStatClock stat_clock;
  // hv.stress-zap-ms / hv.stress-slot-ms (hv/vm_stress.h), started by the runner.
  VmStress stress;
  // hv.nmi-ms (hv/devices/nmi_button.h): the chipset NMI line to every LINT1, started by the runner.
  NmiButton nmi_button;
  // hv.migrate-ms (hv/migrate.h): this VM's live migration, armed by the runner; nullptr: none.
  Migration* migration = nullptr;
  mmu::Atomic<uint32_t> lowest_priority_next{0};  // round-robin of lowest-priority delivery
  mmu::Atomic<uint32_t> apic_dropped{0};          // INIT/STARTUP messages without effect (no target, ignored)
  // INIT/SIPI per vCPU (hv/sipi_latch.h): what the APIC bus latched, whether it waits for SIPI.
  // Reset by the runner before any vCPU starts.
  SipiLatch sipi[kMaxVcpus];

  // The PC chipset (hv/devices/chipset.h): 8259 pair, PIT, RTC/NVRAM, IOAPIC, PCI host bridge,
  // reset controls; claimed on the buses by add_chipset (multiboot guests).
  Chipset chipset;

  // --- ACPI (hv/devices/acpi.h; multiboot guests) ---
  // The PM1a registers and PM timer on the I/O bus, and where the RSDP is (guest-physical, 0:
  // no tables), for loaders that hand it to the guest (Linux's boot protocols).
  AcpiPm acpi_pm;
  uint64_t acpi_rsdp_gpa = 0;
  // A vCPU that stops abnormally prints its registers, its last exit and the guest's last
  // console lines (hv/guest_stop_report.h): guests hv did not write (Linux).
  bool report_guest_state = false;
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
  // The host TSC when the VM was created (set at the end of init/init_pool, once its RAM is
  // zeroed): every vCPU's TSC offset starts at minus this value, so
  // the guest's TSC starts near 0 and all its vCPUs agree (hv/msr_policy.h, IA32_TSC).
  uint64_t tsc_origin = 0;
  // The guest's result: the result port and the exit port (hv/exit_io.cpp), HV_CALL_RESULT and
  // HV_CALL_EXIT (hv/hypercall.cpp). Any vCPU may report, at the same time as another: both
  // words are atomics. Relaxed: the runner reads them only after every vCPU has finished
  // (VmRunState::finished, acquire), which orders the reports before the read.
  void report_result(uint32_t value) {
    result_.store(value, mmu::Order::relaxed);
    result_valid_.store(1, mmu::Order::relaxed);
  }
  bool result_valid() const { return result_valid_.load(mmu::Order::relaxed) != 0; }
  uint32_t result() const { return result_.load(mmu::Order::relaxed); }
  void report_result_reset() {
    result_.store(0, mmu::Order::relaxed);
    result_valid_.store(0, mmu::Order::relaxed);
  }

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
  uint64_t hv_slot_bytes_ = 0;
  unsigned hv_slot_ranges_ = 0;
  mmu::Atomic<uint32_t> result_{0};
  mmu::Atomic<uint32_t> result_valid_{0};
  GuestMmu mmu_;
  VmStats stats_;
};

}  // namespace hv
