/* The parameter block of the memory benchmark guest (tests/guests/bench_memory.cpp), written
 * by hv (hv/bench_vm.cpp) into guest RAM before the guest starts. Freestanding C and C++:
 * included by hv and by the guest.
 *
 * Why a block in memory: the guest library keeps neither the multiboot information pointer
 * nor any register from the entry, and the same image must also boot bare from GRUB, where
 * nobody writes the block: a guest that finds no valid magic (or no hv) uses the defaults. */
#ifndef HV_BENCH_MEMORY_ABI_H
#define HV_BENCH_MEMORY_ABI_H

#include <stdint.h>

#define HV_BENCH_GPA 0x7000u         /* inside the boot RAM, below the multiboot information */
#define HV_BENCH_MAGIC 0x4E425648u   /* "HVBN" */
#define HV_BENCH_DEFAULT_MIB 64u     /* what the bare run touches: keep tools/hv's default equal */

/* Guest-physical layout, the same bare and under hv (Bochs with 3 GiB of RAM when bare):
 *   workload: sequential region [WORK, WORK + mib MiB), random region right after it;
 *   under hv, WORK lies in a guest slot at 1 GiB and the EPT-count region in one at 2 GiB,
 *   both aliasing the VM's RAM pool from offset 0 (the pool is 1 GiB-aligned when it is 1 GiB,
 *   so 1 GiB leaves fit). */
#define HV_BENCH_SLOT_WORK_GPA 0x40000000u
#define HV_BENCH_SLOT_EPT_GPA 0x80000000u
#define HV_BENCH_WORK_OFFSET 0x02000000u /* past the 32 MiB boot RAM that the slots also alias */

struct hv_bench_params {
  uint32_t magic;    /* HV_BENCH_MAGIC */
  uint32_t mib;      /* workload: MiB touched sequentially, and as many at random (power of 2; 0: none) */
  uint32_t ept_mib;  /* EPT-violation count: MiB of first touch in the 2 GiB slot (0: none) */
  uint32_t loops;    /* exit-cost loops: iterations each of CPUID, OUT, VMCALL, HLT (0: none) */
  uint32_t zap_gib;  /* fast zap: GiB hv mapped before the start (0: no fast-zap phase) */
  uint32_t max_level;/* the VM's largest leaf (1 4K, 2 2M, 3 1G), for the guest's report */
  uint32_t zap_wait; /* fast zap: 1 = the call waits for the teardown (synchronous), 0 = deferred */
  uint32_t prefault; /* workload: 1 = pre-fault (HV_CALL_PREFAULT) both regions before the first touch */
};

#endif /* HV_BENCH_MEMORY_ABI_H */
