/* The hypercall ABI of hv, shared by the hypervisor (hv/hypercall.cpp) and the test guests
 * (tests/guests/lib/). Freestanding C and C++: no hv header may be included here, so the guest
 * side builds without the hypervisor's sources. The prose version is docs/hypercalls.md.
 *
 * Calling convention: VMCALL with the call number in EAX/RAX and up to five arguments in
 * RBX, RCX, RDX, RSI, RDI (the same registers in 32-bit and 64-bit guests: a 32-bit guest has
 * no R8-R15). RAX returns a status (0 or a negative HV_E* code); results come back in RBX and
 * RCX (a 64-bit result as RCX:RBX so that 32-bit guests get all of it). Registers that a call
 * does not document as results are preserved. When the guest is not in 64-bit mode, hv uses
 * only the low 32 bits of each argument register (the upper halves are not architecturally
 * the guest's business in 32-bit mode). */
#ifndef HV_ABI_H
#define HV_ABI_H

#include <stdint.h>

#define HV_ABI_VERSION 0x00010000u /* major 1, minor 0 */

/* Call numbers. */
#define HV_CALL_VERSION 0u          /* -> RBX version, RCX highest call number, RDX 'hvTD' */
#define HV_CALL_MEMSLOT_CREATE 1u   /* RBX id, RCX gpa, RDX bytes, RSI pool offset, RDI flags */
#define HV_CALL_MEMSLOT_DELETE 2u   /* RBX id */
#define HV_CALL_MEMSLOT_MOVE 3u     /* RBX id, RCX new gpa */
#define HV_CALL_MEMSLOT_FLAGS 4u    /* RBX id, RCX flags */
#define HV_CALL_INVALIDATE_ROOTS 5u /* RBX 1: also wait until the old roots are torn down */
#define HV_CALL_STAT 6u             /* RBX counter (HV_STAT_*) -> RCX:RBX value */
#define HV_CALL_STATS_COPY 7u       /* RBX gpa, RCX bytes -> struct hv_stats copied, RBX bytes */
#define HV_CALL_RESULT 8u           /* RBX result code (0 pass), RCX a value to print */
#define HV_CALL_EXIT 9u             /* RBX exit status: the vCPU stops (like port 0xf4) */
#define HV_CALL_POOL_INFO 10u       /* -> RBX pool bytes, RCX bytes of the boot RAM slot */
#define HV_CALL_VCPU_INFO 11u       /* -> RBX this vCPU's index, RCX the VM's vCPU count */
/* Dirty logging of a guest slot (docs/hypercalls.md "Dirty logging"); the mechanism is hv's
 * per-VM choice (hv.dirty=wp|ad|pml), reported by START in RBX (HV_DIRTY_*). */
#define HV_CALL_DIRTY_LOG_START 12u   /* RBX id -> RBX mechanism (HV_DIRTY_*) */
#define HV_CALL_DIRTY_LOG_STOP 13u    /* RBX id */
#define HV_CALL_DIRTY_LOG_HARVEST 14u /* RBX id, RCX buffer gpa, RDX buffer bytes -> RBX pages */
#define HV_CALL_PREFAULT 15u        /* RBX gpa, RCX bytes (4 KiB aligned) -> RBX bytes done */
/* The dirty ring of a vCPU (hv.dirty-ring=N; docs/hypercalls.md "Dirty ring"): move up to
 * RDX / 16 of its oldest entries (struct hv_dirty_ring_entry, push order) to the buffer at RCX
 * (8-byte aligned, in one writable slot). One consumer at a time per VM. HV_ENOTSUP: no rings;
 * HV_EINVAL: no such vCPU, or it has no ring now (not started or stopped). */
#define HV_CALL_DIRTY_RING_REAP 16u /* RBX vCPU index, RCX buffer gpa, RDX bytes -> RBX entries */
#define HV_CALL_MAX 16u

/* Dirty-log mechanisms (HV_CALL_DIRTY_LOG_START's RBX). */
#define HV_DIRTY_WP 0u  /* write protection: a write faults once per page and harvest */
#define HV_DIRTY_AD 1u  /* EPT accessed/dirty bits */
#define HV_DIRTY_PML 2u /* page-modification logging (with the dirty bits) */

/* vCPUs 1..N-1 of a VM start at the multiboot entry point too, with EAX = HV_AP_MAGIC,
 * EBX = their index and ECX = N (vCPU 0 gets the multiboot state); see docs/hypercalls.md. */
#define HV_AP_MAGIC 0x68764150u /* "PAvh" */
#define HV_MAX_VCPUS 4u

/* Status codes (RAX). */
#define HV_OK 0
#define HV_EUNKNOWN (-1)   /* no such call */
#define HV_EINVAL (-2)     /* bad argument (unknown flag, id out of range, zero size...) */
#define HV_EPERM (-3)      /* not allowed: CPL > 0, an hv-owned slot, the other address space */
#define HV_ENOSLOT (-4)    /* no slot with that id */
#define HV_EOVERLAP (-5)   /* the range intersects another slot */
#define HV_EALIGN (-6)     /* gpa, size or pool offset not 4 KiB aligned */
#define HV_ETOOLARGE (-7)  /* beyond the VM's guest-physical limit or its RAM pool */
#define HV_ETOOMANY (-8)   /* the VM has as many guest slots as hv allows */
#define HV_ENOMEM (-9)     /* hv ran out of memory for the change */
#define HV_EBUSY (-10)     /* another change is in progress (reserved) */
#define HV_EEXIST (-11)    /* a slot with that id exists already */
#define HV_EFAULT (-12)    /* a buffer gpa is not inside one writable slot */
#define HV_ENOTSUP (-13)   /* a feature hv or the CPU lacks */
#define HV_ESMALL (-14)    /* a buffer is too small (the dirty bitmap of a slot) */

/* Memslot flags. */
#define HV_SLOT_READONLY 1u  /* reads work, writes are dropped and counted */
#define HV_SLOT_DIRTY_LOG 2u /* created logged (MEMSLOT_CREATE only; not with READONLY) */

/* Limits that hv sets for every VM: fixed, part of the ABI (no call reports them). */
#define HV_SLOT_ID_FIRST 1u      /* slot 0 is the boot RAM, owned by hv */
#define HV_SLOT_ID_LAST 63u
#define HV_MAX_GUEST_SLOTS 8u    /* slots a VM may have created at a time */
#define HV_GPA_LIMIT 0x100000000ull /* guest slots end at or below 4 GiB */

/* The scratch MMIO device (hv/devices/mmio_scratch.h, docs/guest-platform.md section 5): every
 * multiboot guest VM has 8 KiB at this guest-physical address, outside its RAM and below the
 * LAPIC/IOAPIC range, that behaves like RAM but is emulated MMIO (each access is an EPT
 * violation that hv's instruction emulator completes); its two pages make page-crossing
 * accesses testable. A memslot the guest creates over it hides it. */
#define HV_SCRATCH_MMIO_GPA 0xFEB00000u
#define HV_SCRATCH_MMIO_BYTES 0x2000u

/* Counters for HV_CALL_STAT, and the order of struct hv_stats. */
enum hv_stat {
  HV_STAT_EXITS = 0,          /* all VM exits of the VM */
  HV_STAT_EXITS_VMCALL,
  HV_STAT_EXITS_IO,
  HV_STAT_EXITS_EPT,          /* EPT-violation exits */
  HV_STAT_EXITS_CPUID,
  HV_STAT_LEAVES_4K,          /* leaves now, by level, in all roots incl. invalid ones (docs/hypercalls.md) */
  HV_STAT_LEAVES_2M,
  HV_STAT_LEAVES_1G,
  HV_STAT_ZAPPED_LEAVES,      /* leaves removed by zaps, total */
  HV_STAT_ZAP_CALLS,
  HV_STAT_TLB_FLUSHES,
  HV_STAT_ROOTS_LIVE,
  HV_STAT_ROOTS_INVALID,
  HV_STAT_PAGES_AWAITING_RECLAIM,
  HV_STAT_TABLE_PAGES,
  HV_STAT_UNBACKED_READS,     /* loads from guest-physical addresses without a slot */
  HV_STAT_UNBACKED_WRITES,    /* stores there (dropped) */
  HV_STAT_READONLY_WRITES,    /* stores to read-only slots (dropped) */
  HV_STAT_HYPERCALLS,
  HV_STAT_HYPERCALL_ERRORS,
  HV_STAT_TABLE_PAGES_CHARGED, /* every page the VM's MMU holds (trees, caches, awaiting reclaim) */
  HV_STAT_TABLE_PAGES_LIMIT,   /* the most it may hold (0: no limit) */
  HV_STAT_COUNT
};

struct hv_stats {
  uint64_t value[HV_STAT_COUNT]; /* indexed by enum hv_stat */
};

/* One entry of a vCPU's dirty ring: page `offset` of slot `slot` (address space `as_id`) became
 * dirty through that vCPU (a write-protection fault, or a PML entry of its log). */
struct hv_dirty_ring_entry {
  uint32_t slot;
  uint32_t as_id;
  uint64_t offset;
};

#endif /* HV_ABI_H */
