/* fault_zap.pml -- the fault/zap invalidation sequence (mmu/fault.cpp map() and
 * invalidate_retry(), mmu/memslot_update.cpp update_memslot(), mmu/mmu.cpp
 * invalidate_begin()/invalidate_end(), mmu/zap.cpp zap_range()).
 *
 * Property: a fault that read a memslot translation before an invalidation never leaves a
 * stale leaf behind it. "Stale": a leaf whose host page is not what the published memslot set
 * maps the gfn to. A stale leaf may exist only while an update of its gfn is between its
 * publish and the end of its zap (the zap removes it); outside that window, in every reachable
 * state, no leaf is stale (checked by the Monitor in every state, and at the end of each
 * update). Against vacuity, the witness INSTALL below shows a run in which both faults
 * install their leaf.
 *
 * Actors:
 *   Fault(i), 2 of them: map() of one gfn each (gfn 0 and gfn 1), retried until it installs
 *     a leaf or gives up after 2 tries (each try re-reads everything, as a new EPT violation).
 *   Updater: update_memslot() of the slot holding gfn 0 (a move of its backing, so the
 *     translation of gfn 0 changes), twice; the range is [0, 1), so gfn 1 is outside it.
 *
 * How each step maps to hv's C++ (line numbers at the commit named in docs/model.md):
 *   fault: seq snapshot         fault.cpp:66   invalidate_seq_.load(acquire)
 *          memslot lookup       fault.cpp:68 -> memslot_update.cpp:21-31 (copy the slot)
 *          MMU lock shared      fault.cpp:80
 *          retry check          fault.cpp:84-85 -> invalidate_retry fault.cpp:104 (range
 *                               in progress overlaps the frame) and :105 (seq moved)
 *          install the leaf     fault.cpp:175  spte_cmpxchg (0 -> leaf); a leaf already
 *                               there for another page is stale: retry (:161)
 *   update: invalidate_begin    memslot_update.cpp:58 -> mmu.cpp:89-98 (lock exclusive,
 *                               in_progress++, widen the range)
 *           publish             memslot_update.cpp:59 (release store of the new set)
 *           zap_range           memslot_update.cpp:60 -> zap.cpp:98-109 (lock exclusive, the
 *                               leaves of the range go; the flush follows)
 *           invalidate_end      memslot_update.cpp:61 -> mmu.cpp:103-111 (lock exclusive,
 *                               seq++ (release), in_progress--)
 *
 * What is abstracted away:
 *   - Roots: one root, always valid (root->invalid, the other half of the retry check at
 *     fault.cpp:84, is teardown.pml's business); the tree is one leaf per gfn; levels and huge
 *     frames are left out (the frame check is the same range test on a wider interval); TLBs
 *     and the flush of zap_range are left out (dirty_log.pml models a TLB; what zap_range's
 *     flush guarantees is stated in docs/mmu.md §4 and tested with the TLB model of
 *     tests/host/tlb_model.h).
 *   - Memory order: sequentially consistent. The pairings that give hv this order here are
 *     the acquire snapshot of the seq against the release increment in invalidate_end, and
 *     the release publish of the set against the acquire lookup (docs/mmu.md §9).
 *   - A region under the MMU lock held exclusively is one step (nothing else runs while it is
 *     held: faults hold it shared); the fault's shared region is two steps (check, install),
 *     as an exclusive holder cannot come between them.
 *   - Bounds: 2 faults x 2 tries, 2 updates. Every stale-leaf race needs one fault whose
 *     lookup precedes an update's publish and whose locked check comes after the update's
 *     begin: one update and one fault show each bug; the second update lets a fault that
 *     retried read a set that is again replaced under it, and the second fault (outside the
 *     range) shows that the range check does not simply make every fault retry.
 *
 * Deliberately broken variants (spin -DBUG_x; models/check.sh expects each to fail):
 * BUG NO_SEQ_CHECK: the fault does not compare invalidate_seq under the lock (only the range in progress)
 * BUG SEQ_AFTER_LOOKUP: the fault takes its seq snapshot after the memslot lookup instead of before it
 * BUG NO_RANGE_CHECK: the fault ignores an invalidation in progress (only the seq)
 * (Ending the invalidation before the zap is not a bug for this property: a fault that read
 * the old set still retries on its seq, and the zap that follows removes what a fault
 * installed before. That variant was tried: it verifies.)
 *
 * Witnesses (spin -DWITNESS_x must report an error: the run exists, so the model is not vacuous):
 * WITNESS INSTALL: a run in which both faults install their leaf
 */

#define NUPD   2
#define TRIES  2

byte published[2];           /* the memslot set: gfn -> host page (1, 2, 3, ...) */
byte leaf[2];                /* the EPT leaf of each gfn: 0 = none, else the host page */
bool writer = false;         /* MMU lock held exclusively */
byte readers = 0;            /* ... held shared */
byte in_progress = 0;        /* invalidate_in_progress_ */
byte inv_start = 0, inv_end = 0;   /* invalidate_start_/_end_ */
byte seq = 0;                /* invalidate_seq_ */
/* ghosts */
bool zapping[2];             /* an update of this gfn is between its publish and its zap's end */
byte installed[2];           /* leaves each fault installed */
byte faults_done = 0;
bool updates_done = false;

#define stale(g) (leaf[g] != 0 && leaf[g] != published[g])

/* In every reachable state: a stale leaf only inside an update's publish..zap window. */
active proctype Monitor() {
end:
  atomic {
    ((stale(0) && !zapping[0]) || (stale(1) && !zapping[1])) -> assert(false)
  }
}

proctype Fault(byte g) {
  byte s, page, tries = 0;
  bool retry;
  do
  :: tries < TRIES ->
#if !defined(BUG_SEQ_AFTER_LOOKUP)
     s = seq;                             /* fault.cpp:66 */
#endif
     page = published[g];                 /* fault.cpp:68, lookup_slot */
#if defined(BUG_SEQ_AFTER_LOOKUP)
     s = seq;
#endif
     atomic {
       !writer -> readers++;              /* fault.cpp:80 */
       retry = false;
#if !defined(BUG_NO_RANGE_CHECK)
       if                                 /* fault.cpp:104 */
       :: in_progress != 0 && g < inv_end && inv_start < g + 1 -> retry = true
       :: else -> skip
       fi;
#endif
#if !defined(BUG_NO_SEQ_CHECK)
       if                                 /* fault.cpp:105 */
       :: seq != s -> retry = true
       :: else -> skip
       fi
#endif
     };
     atomic {                             /* map_locked: fault.cpp:158-178 */
       if
       :: !retry && leaf[g] == 0 -> leaf[g] = page; installed[g]++   /* :175 the CAS */
       :: !retry && leaf[g] != 0 && leaf[g] != page -> retry = true  /* :161 stale: retry */
       :: else -> skip                    /* retry, or the same leaf: spurious */
       fi;
       readers--
     };
     tries++;
     if
     :: !retry -> break
     :: else -> skip
     fi;
     s = 0; page = 0
  :: else -> break
  od;
  faults_done++
}

active proctype Updater() {
  byte n = 0;
  do
  :: n < NUPD ->
     /* Memslot update of the slot of gfn 0: its range is [0, 1), its new backing n + 2. */
     atomic {                             /* invalidate_begin: mmu.cpp:89-98 */
       !writer && readers == 0 ->
       if
       :: in_progress == 0 -> inv_start = 0; inv_end = 1
       :: else -> skip                    /* (widen: one updater, never nested here) */
       fi;
       in_progress++
     };
     atomic {                             /* publish: memslot_update.cpp:59 */
       published[0] = n + 2;
       zapping[0] = true
     };
     atomic {                             /* zap_range: zap.cpp:98-106 */
       !writer && readers == 0 ->
       leaf[0] = 0;
       zapping[0] = false
     };
     atomic {                             /* invalidate_end: mmu.cpp:103-111 */
       !writer && readers == 0 ->
       seq++;                             /* release, pairs with fault.cpp:66 */
       in_progress--;
       if
       :: in_progress == 0 -> inv_start = 0; inv_end = 0
       :: else -> skip
       fi
     };
     /* The update has returned: no stale leaf may be left for its gfn. */
     assert(!stale(0));
     n++
  :: else -> break
  od;
  updates_done = true
}

/* At the end: no stale leaf. With -DWITNESS_INSTALL, also "no run has both faults install a
 * leaf", which spin must refute (models/check.sh: the witness check). */
active proctype Done() {
  atomic {
    faults_done == 2 && updates_done ->
    assert(!stale(0) && !stale(1));
#if defined(WITNESS_INSTALL)
    assert(!(installed[0] > 0 && installed[1] > 0))
#endif
  }
}

init {
  atomic {
    published[0] = 1;
    published[1] = 9;
    run Fault(0);
    run Fault(1)
  }
}
