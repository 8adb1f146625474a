// The VM runner: runs the vCPUs of one or more VMs to a verdict. Every way hv runs guests goes
// through it (hv/memtouch_vm.cpp: the memtouch guest; hv/guest_run.cpp: multiboot guests, one
// VM or several side by side); the callers only describe their VMs (memory layout, image,
// start state), the runner does the rest:
//   - placement: the VMs' vCPUs on CPUs, VM after VM, vCPU i of a VM on the VM's first CPU + i,
//     CPU 0 (the runner's own) first;
//   - start: every vCPU's job (VMCS setup, optional parking, the run loop, VMCLEAR) posted to its
//     CPU through cpu_work, the runner's own vCPU run in place; a vCPU may start parked and be
//     woken later (wake_vcpu: the start of a secondary vCPU now, INIT/SIPI and HLT later);
//   - the per-VM stop/finish protocol (hv/vm_run_state.h): a failing vCPU stops its VM, a VM
//     whose vCPU 0 ends is over (when the VM says so), and the VM's time limit
//     (hv.time-limit-ms, default kDefaultTimeLimitMs, 0 = none) stops every vCPU of every VM,
//     running or parked;
//   - waiting: the runner's CPU idles like an AP (requests, deferred MMU work of every live VM)
//     until every vCPU finished, with a margin beyond the time limit for a CPU that stopped
//     answering (then the VMs are left in place: nothing is freed under a running vCPU);
//   - the verdict of each VM, per-vCPU and per-VM summaries (the lines the boot tests read),
//     destroy, and the check that every page the VMs took came back.
//
// One run at a time, driven from one CPU (the BSP): that CPU is the only one that posts work
// to the others (cpu_work::post's contract).
#pragma once

#include <stdint.h>

#include "arch/x86/vmx/capabilities.h"
#include "hv/vcpu.h"
#include "hv/vm.h"
#include "hv/vm_limits.h"
#include "hv/vm_run_state.h"

namespace hv {

inline constexpr uint64_t kDefaultTimeLimitMs = 120'000;  // hv.time-limit-ms (hv/cmdline.h)

// How a vCPU starts.
enum class VcpuLaunch : uint8_t {
  kRun,             // its run loop starts as soon as it is set up on its CPU
  kWithVcpu0,       // set up and parked; woken by vCPU 0 once vCPU 0 is set up (as a boot CPU
                    // starts the others)
  kParked,          // set up and parked until someone calls wake_vcpu
  kWaitForSipi,     // set up, never entered until the guest starts it with INIT-SIPI(-SIPI)
                    // through its LAPIC: it waits in the INIT state (hv/sipi_latch.h,
                    // hv/vcpu_sipi.cpp) and starts in real mode at the SIPI vector
};

// One VM of a run: what the caller describes, and the runner's bookkeeping.
struct RunVm {
  // --- the caller's description (after VmRunner::add, before VmRunner::ready) ---
  unsigned id = 0;                       // the VM's number in every line ("vmN: ..."); Vm::init gets it too
  Vm vm;                                 // the caller creates its memory and loads its image
  const char* name = nullptr;            // "vmN: guest NAME: PASS|FAIL" when a run has several VMs
  unsigned vcpus = 1;
  VcpuStart start[kMaxVcpus] = {};
  VcpuLaunch launch[kMaxVcpus] = {};
  bool vcpu0_ends_vm = false;            // when vCPU 0 stops, the others finish (as passed)

  // --- the runner's ---
  Vcpu vcpu[kMaxVcpus];
  VmRunState state;
  struct Job {
    RunVm* vm = nullptr;
    unsigned index = 0;
    const char* init_failure = nullptr;
    uint64_t t0 = 0, t1 = 0;  // µs: job start and end on its CPU
  } job[kMaxVcpus];
  bool ready = false;                    // described completely: it runs and gets a summary
  uint64_t t0 = 0, t1 = 0;               // µs: run start, last vCPU finished
  const char* failure = nullptr;
  char why[240] = {};
};

// A RunVm made ready for a new VM: id, name, vCPU count (clamped to 1..kMaxVcpus), start
// descriptions and jobs cleared, no verdict, the VM's config reset with the per-VM options of the
// command line applied (hv.pt-limit, hv.zap-backlog, hv.fault-around). VmRunner::add starts every
// VM from it, and so does the target of a live migration (hv/guest_run.cpp), so a moved VM keeps
// the options it was created with.
void run_vm_reset(RunVm& rv, unsigned id, const char* name, unsigned vcpus);

class VmRunner {
 public:
  // Remembers the free memory for the page check at the end.
  explicit VmRunner(const x86::vmx::Capabilities& caps);
  VmRunner(const VmRunner&) = delete;
  VmRunner& operator=(const VmRunner&) = delete;

  // A fresh VM with id `id` and `vcpus` vCPUs (run_vm_reset). nullptr when the
  // run has kMaxVms VMs already. The caller then creates the VM's memory (Vm::init or
  // init_pool), loads its image, fills start[]/launch[] and calls ready(), or fail() with why
  // it could not. Every VM added is destroyed by run(), ready or not.
  RunVm* add(unsigned id, const char* name, unsigned vcpus);
  void ready(RunVm& rv) { rv.ready = true; }
  // Creation failed: reported ("vmN: why"), and run() starts no VM; returns `why`.
  const char* fail(RunVm& rv, const char* why);

  // Runs every VM (unless one failed to be created), waits for all, prints the verdicts and
  // summaries, destroys every VM added and checks that their pages came back. nullptr when
  // every VM passed, else the first failure.
  const char* run();

 private:
  bool start_and_wait();
  const char* verdict(RunVm& rv);
  void destroy_all(const char*& failure);

  RunVm* vms_[kMaxVms] = {};
  unsigned count_ = 0;
  const char* create_failure_ = nullptr;
  uint64_t free_before_ = 0;
  uint64_t platform_pages_before_ = 0;
  uint64_t flush0_[4] = {};
};

// How the secondary vCPUs (1..N-1) of a VM start is the caller's choice: hv's own protocol
// (kWithVcpu0 at the image entry, EAX = HV_AP_MAGIC: the multiboot test guests,
// docs/hypercalls.md), or waiting for INIT/SIPI as on a PC (hv.ap-start=sipi, and the Linux
// loaders), which this sets up.
// Puts the secondary vCPUs of `rv` (after VmRunner::add, before ready) into wait-for-SIPI:
// launch[i] = kWaitForSipi for i >= 1; start[i] is then unused (the SIPI defines the state).
// Needs "unrestricted guest" (the vCPUs start in real mode); nullptr, or why not (a sentence
// naming the missing control, also written to rv.why). vCPU 0 is left as the caller set it.
const char* set_ap_start_sipi(RunVm& rv, const x86::vmx::Capabilities& caps);

// Make every vCPU of the VM but `except` look at its VM's requests soon (an IPI to its CPU: a
// guest there exits, a parked vCPU wakes). kMaxVcpus for "all".
void kick_vcpus(const VmRunState& state, unsigned except);
// Wake parked vCPU `vcpu` (VmRunState::post_wake, then the IPI).
void wake_vcpu(VmRunState& state, unsigned vcpu);

}  // namespace hv
