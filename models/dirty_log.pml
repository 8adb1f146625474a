/* dirty_log.pml -- the dirty-log harvest against guest writes (issue 14, items 1-2: the
 * protocol of /work/notes/issue14.md that mmu/dirty_log.{h,cpp} implements; that code was
 * being written while this model was, so the steps below name the protocol's steps and the
 * existing MMU code they use, not lines of dirty_log.cpp: see docs/model.md, "what is
 * missing").
 *
 * Two configurations (models/check.sh checks both):
 *   -DMODE_WP    write protection: logging starts with every page dirty and W cleared in the
 *                leaves; a write to a write-protected page faults, the fault restores W (CAS
 *                on the leaf) and marks the page in the bitmap; a harvest takes each page's
 *                bit (get-and-clear), write-protects the pages it reports, then flushes the
 *                TLBs of every vCPU.
 *   -DMODE_DBIT  EPT A/D bits: leaves stay writable; the CPU sets D in the leaf (a locked RMW
 *                of its page walk) on the first write through a translation whose cached D is
 *                clear; a harvest takes the bitmap bit (the "all dirty at start" state) and the
 *                leaf's D with atomic exchanges, then flushes the TLBs.
 *
 * Property: every guest write is reported in the harvest during which it happened or in the
 * next one, never lost. Precisely: a harvest covers a write when it reports the page and ends
 * after the write (the migration copies a reported page after the harvest returns); let H be
 * the first harvest to end after the write, then H or H+1 covers it. Ghost `due` holds the
 * deadline (the index of H+1) of the oldest uncovered write; each harvest's end checks it.
 * The harvester runs two more harvests after the last write, so no deadline escapes the check.
 *
 * Actors:
 *   Vcpu(i), NV = 2 of them: NW = 2 writes each to the page (and, with D bits, reads that
 *     fill the TLB with D clear). The TLB is per vCPU: one entry for the page.
 *   Harvester: harvests while the vCPUs run, then twice more.
 *
 * How each step maps to hv (the protocol of issue14.md; existing code it builds on):
 *   vCPU write through the TLB   the CPU: a cached writable translation is used without a
 *                                walk until the TLB is flushed (SDM vol. 3C, 28.3.3)
 *   write that misses the TLB    the CPU's EPT walk: W clear -> EPT violation (WP); D clear
 *                                -> the walk sets D with a locked RMW (DBIT, SDM 28.3.5)
 *   write fault (WP)             hv/exit_ept.cpp -> Mmu::map -> map_locked: a leaf that lacks
 *                                W is upgraded with spte_cmpxchg (fault.cpp:164); for a logged
 *                                slot the fault also marks the page (dirty_log_mark)
 *   harvest: get-and-clear       dirty_log_harvest: an atomic exchange of the bitmap word
 *   harvest: write-protect       spte_cmpxchg clearing W (or D) in the reported leaves
 *   harvest: flush               Mmu::flush -> Platform::flush_remote_tlbs (zap.cpp:56-66)
 *
 * What is abstracted away:
 *   - One page (the races are per page: pages do not interact), one TLB entry per vCPU, no
 *     huge leaves (logging splits them first), no PML (a per-vCPU log drained on harvest: the
 *     third mechanism of issue 14, not modelled yet).
 *   - The flush is one step per vCPU (each vCPU's TLB is emptied at some point between the
 *     start and the end of flush_remote_tlbs, which returns when all are done).
 *   - Locks: the model lets a fault and a harvest interleave at every step (neither holds the
 *     MMU lock exclusively against the other); a real implementation that serializes them
 *     more only removes interleavings.
 *   - Memory order: sequentially consistent; the SPTE and bitmap updates are atomic RMWs.
 *   - Bounds: 2 vCPUs x 2 writes, 2 harvests while they run plus 2 after. Every lost-write
 *     race needs one write racing one harvest's clear/flush window and one more harvest to
 *     notice; the second vCPU lets one vCPU's fault (WP) or TLB fill race another's write.
 *
 * Deliberately broken variants (spin -DBUG_x; models/check.sh expects each to fail):
 * BUG FLUSH_BEFORE_CLEAR@wp: the harvest flushes the TLBs before it clears and write-protects
 * BUG MARK_BEFORE_RESTORE@wp: the write fault marks the page before it restores W (a harvest in between reports it, finds W already clear, and the CAS then restores W with no mark left)
 * BUG WP_BEFORE_CLEAR@wp: the harvest write-protects the page before it takes the bitmap bit
 * BUG FLUSH_BEFORE_CLEAR@dbit: the harvest flushes the TLBs before it clears D
 * BUG D_CLEAR_NOT_ATOMIC@dbit: the harvest reads D and then stores the leaf with D clear (a plain store, not an exchange)
 *
 * Witnesses (spin -DWITNESS_x must report an error: the run exists):
 * WITNESS TLB_WRITE_AFTER_CLEAR@wp: a write through a cached writable translation after the harvest cleared the page and before its flush
 * WITNESS TLB_WRITE_AFTER_CLEAR@dbit: the same with D bits
 */

#if !defined(MODE_WP) && !defined(MODE_DBIT)
#define MODE_WP
#endif

#define NV    2      /* vCPUs */
#define NW    2      /* writes per vCPU */
#define HRUN  2      /* harvests while the vCPUs run (then 2 more) */

/* TLB entry states */
#define T_NONE  0
#define T_CLEAN 1    /* writable, D clear cached (DBIT) */
#define T_W     2    /* writable (WP) / writable with D set cached (DBIT) */

bool dirty = true;             /* the slot's dirty bitmap: every page dirty at the start */
#if defined(MODE_WP)
bool leaf_w = false;         /* the leaf's W: cleared when logging started */
#else
bool leaf_d = false;         /* the leaf's D: cleared when logging started */
#endif
byte tlb[NV];                /* each vCPU's cached translation of the page */
/* ghosts */
byte hend = 0;               /* harvests ended */
byte due = 0;                /* deadline of the oldest uncovered write, 0: none */
bool cleared = false;        /* a harvest is between its clear and the end of its flush */
bool witnessed = false;
byte writers_done = 0;

/* A write completes (ghost bookkeeping, part of the step that performs it). */
inline wrote() {
  if
  :: due == 0 -> due = hend + 2
  :: else -> skip
  fi
}

proctype Vcpu(byte me) {
  byte n = 0;
  bool ok;
#if defined(MODE_WP)
  bool old;
#endif
  do
  :: n < NW ->
#if defined(MODE_WP)
     do
     :: atomic {
          if
          :: tlb[me] == T_W ->                 /* through the TLB, no walk */
             witnessed = witnessed || cleared;
             wrote(); ok = true
          :: tlb[me] != T_W && leaf_w ->       /* walk, fill, write */
             tlb[me] = T_W; wrote(); ok = true
          :: tlb[me] != T_W && !leaf_w -> ok = false   /* EPT violation */
          fi
        };
        if
        :: ok -> break
        :: else ->
           /* The write fault: Mmu::map on a logged slot. */
           old = leaf_w;                       /* the iterator's read of the leaf */
#if defined(BUG_MARK_BEFORE_RESTORE)
           dirty = true;
#endif
           atomic {                            /* spte_cmpxchg(old -> old | W) */
             if
             :: leaf_w == old -> leaf_w = true
             :: else -> skip                   /* lost: the retried write decides again */
             fi
           };
#if !defined(BUG_MARK_BEFORE_RESTORE)
           dirty = true;                         /* mark after the W is in place */
#endif
           old = false
        fi
     od;
#else
     atomic {
       if
       :: tlb[me] == T_W ->                    /* D cached set: no walk */
          witnessed = witnessed || cleared;
          wrote()
       :: else ->                              /* walk: the locked set of D */
          leaf_d = true; tlb[me] = T_W; wrote()
       fi
     };
#endif
     ok = false;
     n++
#if defined(MODE_DBIT)
  :: tlb[me] == T_NONE ->                      /* a read fills the TLB with D as it is */
     tlb[me] = (leaf_d -> T_W : T_CLEAN)
#endif
  :: else -> break
  od;
  writers_done++
}

inline flush() {
  i = 0;
  do
  :: i < NV -> tlb[i] = T_NONE; i++            /* each vCPU's INVEPT */
  :: else -> break
  od;
  i = 0
}

inline clear() {
#if defined(MODE_WP)
#if defined(BUG_WP_BEFORE_CLEAR)
  leaf_w = false;
  atomic { rep = dirty; dirty = false; cleared = true };
#else
  atomic { rep = dirty; dirty = false; cleared = true };  /* get-and-clear the bitmap */
  if
  :: rep -> leaf_w = false                     /* write-protect what is reported */
  :: else -> skip
  fi
#endif
#else
  atomic { rep = dirty; dirty = false; cleared = true };
#if defined(BUG_D_CLEAR_NOT_ATOMIC)
  rep = rep || leaf_d;
  leaf_d = false
#else
  atomic { rep = rep || leaf_d; leaf_d = false }  /* exchange: take D */
#endif
#endif
}

inline harvest() {
#if defined(BUG_FLUSH_BEFORE_CLEAR)
  flush();
  clear();
#else
  clear();
  flush();
#endif
  atomic {                                     /* the harvest returns */
    if
    :: rep -> due = 0                          /* covers every write before now */
    :: else -> skip
    fi;
    hend++;
    assert(due == 0 || due > hend);            /* no write missed its deadline */
    cleared = false;
    rep = false
  }
}

active proctype Harvester() {
  byte i;
  bool rep;
  do
  :: hend < HRUN && writers_done < NV -> harvest()
  :: writers_done == NV -> break
  od;
  harvest();
  harvest();
  assert(due == 0);
#if defined(WITNESS_TLB_WRITE_AFTER_CLEAR)
  assert(!witnessed)
#endif
}

init {
  atomic {
    run Vcpu(0);
    run Vcpu(1)
  }
}
