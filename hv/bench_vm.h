// The benchmark knobs of a multiboot guest's VM (tools/hv bench --guest; the guest is
// tests/guests/bench_memory.cpp):
//   hv.backing=4k|2m|1g   the largest EPT leaf the VM may use (default: 1g if the CPU has it)
//   hv.pool-mib=N         the VM's RAM pool (default 64); 1024 makes it one 1 GiB-aligned GiB,
//                         so guest slots at 1 GiB-aligned addresses can get 1 GiB leaves
//   hv.bench-mib=N, hv.bench-ept-mib=N, hv.bench-loops=N, hv.bench-zap-gib=N, hv.bench-zap-wait=0|1,
//   hv.bench-prefault=0|1
//                         written for the guest into its parameter block (bench_memory_abi.h);
//                         with zap-gib, hv also maps N GiB before the guest starts (see
//                         bench_vm_prepare)
#pragma once

#include <stdint.h>

namespace hv {

class Vm;

struct BenchVmConfig {
  uint64_t pool_bytes;
  int max_level;
  bool align_1g;  // pool from a 1 GiB-aligned run
  // hv.bench-zap-gib's alias slots (created by bench_vm_prepare after the VM's init): their
  // guest-physical size and count, for the VM's default page-table limit (hv/pt_limit.h).
  uint64_t hv_slot_bytes = 0;
  unsigned hv_slot_ranges = 0;
};

// The pool and leaf limit for the multiboot guest's VM, from the command line and the defaults.
BenchVmConfig bench_vm_config(uint64_t default_pool_bytes, int default_max_level);

// After the image is loaded, before the vCPU starts: the parameter block, and for
// hv.bench-zap-gib the pre-mapped GiBs. nullptr or why it failed.
const char* bench_vm_prepare(Vm& vm);

}  // namespace hv
