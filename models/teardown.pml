/* teardown.pml -- fast zap and the exactly-once teardown marker (mmu/root.{h,cpp},
 * mmu/teardown.cpp, mmu/mmu.cpp vcpu_load_root/vcpu_release, mmu/fault.cpp map()).
 *
 * Properties:
 *   P1 exactly once: a root's teardown is queued at most once (asserted at every queueing), a
 *      teardown finishes at most once, and at the end every root that was published was torn
 *      down exactly once and freed exactly once.
 *   P2 never while in use: a teardown step runs only on an invalid root (one get() can no
 *      longer hand out) and never on a freed one; a root is freed only with no reference left,
 *      its teardown done and its tree empty (no fault installed a leaf into it after the
 *      teardown removed its leaves); a vCPU never faults into a freed root.
 *
 * Actors:
 *   Vcpu(i), NV = 2 of them: loads a root before entry (vcpu_load_root), faults a leaf into it
 *     (map), issues one fast zap (invalidate_all_roots), runs a teardown step of a queued root
 *     at its safe points (run_deferred_work), reloads when the generation moved, and finally
 *     drops its root (vcpu_release, the VM going away) and runs queued teardowns until none
 *     is left (wait_for_teardown runs them itself).
 *   Check: once everything has stopped, asserts P1 for every root.
 *
 * How each step maps to hv's C++ (line numbers at the commit named in docs/model.md):
 *   vcpu_load_root           mmu.cpp:60 (generation, acquire), :63 (keep the root if the
 *                            generation is the same and it is valid), :64 get, :69 put(old)
 *   Roots::get               root.cpp:22-28 (under lock_: a valid root of the role with a
 *                            reference from tryget), :32-44 (build outside the lock), :46-58
 *                            (look again under the lock, else publish with refcount 1)
 *   Roots::put               root.cpp:66-69 (fast path: CAS n -> n-1 while n > 1), :74-75
 *                            (lock_, fetch_sub), :77 (invalid), :78-82 (the last put schedules
 *                            the teardown itself: marker, free_when_done), :86-90 (or the job
 *                            is done: unlink), :93 schedule, :94 free_root
 *   Roots::invalidate_all    root.cpp:121 (lock_), :124 (invalid), :127 (marker set: skip,
 *                            rule 3), :132 (set the marker), :137-138 (the job's reference),
 *                            :143 (generation), :145 (schedule outside the lock)
 *   schedule_teardown        teardown.cpp:34-47 (append to a deferred queue)
 *   run_queue/teardown_step  run_queue (pop), teardown_fence (once per root: an empty section
 *                            with the MMU lock held exclusively), teardown_step (one step under
 *                            the MMU lock held *shared*: the leaves go; faults on other roots
 *                            run beside it), run_queue (not done: push back)
 *   finish_teardown          teardown.cpp:163-174 -> Roots::teardown_finished root.cpp:172
 *                            (teardown_done), :173-176 (job's reference dropped by put), :177-183
 *                            (free_when_done: unlink and free)
 *   Mmu::map                 fault.cpp:80 (MMU lock shared), :84 (root->invalid: retry),
 *                            :91 -> map_locked :175 (install the leaf)
 *
 * What is abstracted away:
 *   - A root's tree is a count of leaves (0 or 1: one gfn); a teardown is two steps (enough to
 *     let other CPUs act between the steps of one root); the TLB flush of finish_teardown and
 *     the epoch that finally frees the Root object are left out (tlb and epoch are checked by
 *     dirty_log.pml and epoch.pml). "Freed" here is Roots::free_root.
 *   - The per-CPU deferred queues are one shared queue: any CPU may run any queue (helping,
 *     wait_for_teardown, reclaim), so who pops a root does not matter, only that a popped root
 *     is stepped by one CPU at a time (pop under the queue's lock), as in the code.
 *   - One role (address space, level). Tickets, backpressure and wait_for_teardown only decide
 *     who runs the steps and when a caller returns, not what is queued.
 *   - Memory order: sequentially consistent; the code's acquire/release pairs (invalid,
 *     generation, teardown_done) are named at the code.
 *   - Bounds: 2 vCPUs, one fast zap each (each zaps before it may stop), one fault each, at
 *     most 4 roots (the first one, one per fast zap, and one when a vCPU's last put
 *     invalidates a valid root). Two fast zaps racing over the same roots, a last put racing
 *     with a fast zap, a vCPU still on an invalid root while its teardown runs, and two CPUs
 *     stepping teardowns (at safe points, and while the VM goes away) are all inside them.
 *
 * Deliberately broken variants (spin -DBUG_x; models/check.sh expects each to fail):
 * BUG MARKER_RACE: the fast zap tests teardown_scheduled under the list lock but sets it only after dropping the lock (a check-then-set without a CAS or a lock around both)
 * BUG NO_MARKER: the fast zap queues every invalid root, marker or not ("invalid" taken for "queued")
 * BUG NO_JOB_REF: the fast zap does not take the teardown job's reference
 * BUG NO_INVALID_CHECK: the fault does not check root->invalid under the MMU lock
 * BUG NO_FENCE: the shared-lock teardown steps start without the exclusive fence, so a fault that checked root->invalid before the fast zap installs its leaf after the teardown removed the tree
 */

#define NV    2      /* vCPUs */
#define MAXR  4      /* roots that can ever be published */
#define NF    1      /* faults per vCPU */
#define NONE  255

byte nroots = 0;             /* roots published so far: 0 .. nroots-1 */
bool list_lock = false;      /* Roots::lock_ */
byte mmu_readers = 0;        /* Mmu::mmu_lock_ held shared ... */
bool mmu_writer = false;     /* ... or exclusively */
byte generation = 0;         /* Roots::generation_ */

bool in_list[MAXR];
byte ref[MAXR];              /* refcount */
bool invalid[MAXR];
bool sched[MAXR];            /* teardown_scheduled: the exactly-once marker */
bool done[MAXR];             /* teardown_done */
bool fwd[MAXR];              /* free_when_done */
byte steps[MAXR];            /* the teardown cursor (td_pass) */
bool fenced[MAXR];           /* Root::td_fenced */
byte leaves[MAXR];           /* the root's tree */
/* ghosts */
bool freed[MAXR];
byte queued[MAXR];
byte torn[MAXR];
byte busy = 0;               /* CPUs inside a teardown step or its finish */
byte vcpus_done = 0;

chan tdq = [2 * MAXR] of { byte };   /* the deferred teardown queues */

/* A region under Roots::lock_ is one atomic step (see "abstracted away" above). */
#define lock_list()   atomic { !list_lock -> list_lock = true;
#define unlock_list() list_lock = false }

inline free_root(r) {
  atomic {
    assert(!freed[r]);                    /* freed once */
    assert(ref[r] == 0);                  /* nobody holds it */
    assert(done[r]);                      /* its teardown finished */
    assert(leaves[r] == 0);               /* and nothing was installed after it */
    assert(!in_list[r]);
    freed[r] = true
  }
}

inline schedule_teardown(r) {
  atomic {
    queued[r]++;
    assert(queued[r] == 1);               /* P1: queued exactly once */
    tdq!r
  }
}

/* Roots::put(r). Locals: fast, prev, sch, fre. */
inline put_root(r) {
  atomic {                                /* root.cpp:66-69, the CAS loop's success */
    if
    :: ref[r] > 1 -> ref[r]--; fast = true
    :: else -> fast = false
    fi
  };
  if
  :: fast -> skip
  :: else ->
     lock_list()                          /* root.cpp:74 */
     prev = ref[r]; ref[r]--;             /* root.cpp:75 */
     if
     :: prev != 1 -> skip
     :: else ->
        invalid[r] = true;                /* root.cpp:77 */
        if
        :: !sched[r] -> sched[r] = true; fwd[r] = true; sch = true   /* root.cpp:78-82 */
        :: else ->
           assert(done[r]);               /* root.cpp:86, the code's own MMU_ASSERT */
           in_list[r] = false; fre = true /* root.cpp:87-90 */
        fi
     fi;
     unlock_list();
     if
     :: sch -> schedule_teardown(r)       /* root.cpp:93 */
     :: else -> skip
     fi;
     if
     :: fre -> free_root(r)               /* root.cpp:94 */
     :: else -> skip
     fi
  fi;
  fast = false; prev = 0; sch = false; fre = false
}

/* Roots::get(): res = a valid root with a reference. Locals: j. */
inline get_root(res) {
  res = NONE;
  lock_list()                             /* root.cpp:22-28 */
  j = 0;
  do
  :: j < nroots ->
     if
     :: in_list[j] && !invalid[j] && ref[j] != 0 -> ref[j]++; res = j; break   /* tryget */
     :: else -> j++
     fi
  :: else -> break
  od;
  unlock_list();
  if
  :: res == NONE ->                       /* build one outside the lock: root.cpp:32-44 */
     lock_list()                          /* root.cpp:46-54: someone else's first? */
     j = 0;
     do
     :: j < nroots ->
        if
        :: in_list[j] && !invalid[j] && ref[j] != 0 -> ref[j]++; res = j; break
        :: else -> j++
        fi
     :: else -> break
     od;
     if
     :: res == NONE ->                    /* root.cpp:57-58: publish */
        assert(nroots < MAXR);
        res = nroots;
        in_list[res] = true;
        ref[res] = 1;
        nroots++
     :: else -> skip
     fi;
     unlock_list()
  :: else -> skip
  fi;
  j = 0
}

/* Roots::invalidate_all() (from Mmu::invalidate_all_roots). Locals: j, mask. */
inline invalidate_all() {
  lock_list()                             /* root.cpp:121 */
  j = 0;
  do
  :: j < nroots ->
     if
     :: in_list[j] ->
        invalid[j] = true;                /* root.cpp:124 */
#if defined(BUG_NO_MARKER)
        if
        :: true ->
#else
        if
        :: sched[j] -> skip               /* root.cpp:127: exactly once (rule 3) */
        :: else ->
#endif
#if !defined(BUG_MARKER_RACE)
           sched[j] = true;               /* root.cpp:132 */
#endif
#if !defined(BUG_NO_JOB_REF)
           assert(ref[j] != 0);           /* root.cpp:137-138: tryget must succeed */
           ref[j]++;
#endif
           mask = mask | (1 << j)
        fi
     :: else -> skip
     fi;
     j++
  :: else -> break
  od;
  generation++;                           /* root.cpp:143 */
  unlock_list();
  j = 0;
  do                                      /* root.cpp:145 */
  :: j < nroots ->
     if
     :: mask & (1 << j) ->
#if defined(BUG_MARKER_RACE)
        sched[j] = true;
#endif
        schedule_teardown(j)
     :: else -> skip
     fi;
     j++
  :: else -> break
  od;
  j = 0; mask = 0
}

/* Roots::teardown_finished(r). */
inline teardown_finished(r) {
  atomic {
    done[r] = true;                       /* root.cpp:172 */
    torn[r]++;
    assert(torn[r] == 1)                  /* P1: torn down once */
  };
  if
  :: !fwd[r] -> put_root(r)               /* root.cpp:173-176: the job's reference */
  :: else ->
     lock_list()                          /* root.cpp:177-182 */
     in_list[r] = false;
     unlock_list();
     free_root(r)                         /* root.cpp:183 */
  fi
}

/* One pass of run_queue: pop a root, one teardown step, finish or push it back. */
inline run_deferred_once() {
  atomic { tdq?r -> busy++ };             /* run_queue: pop_deferred */
#if !defined(BUG_NO_FENCE)
  if
  :: !fenced[r] ->                        /* teardown_fence: every shared hold that may have */
     atomic { !mmu_writer && mmu_readers == 0 -> mmu_writer = true };   /* seen r valid ends */
     mmu_writer = false;
     fenced[r] = true
  :: else -> skip
  fi;
#endif
  atomic {                                /* teardown_step: the MMU lock, shared */
    !mmu_writer -> mmu_readers++;
    assert(invalid[r] && !freed[r]);      /* P2: only an invalid, live root is torn down */
    leaves[r] = 0;                        /* the step's walk (faults may run meanwhile) */
    steps[r]++
  };
  mmu_readers--;
  if
  :: steps[r] < 2 -> atomic { tdq!r; busy-- }   /* teardown.cpp:188 push_deferred_front */
  :: else ->
     teardown_finished(r);                /* teardown.cpp:163-174 */
     busy--
  fi;
  r = 0
}

/* Mmu::map on the vCPU's root. */
inline fault(root) {
  atomic {
    !mmu_writer -> mmu_readers++;         /* fault.cpp:80 */
    assert(!freed[root]);                 /* P2: a vCPU's root is alive */
#if defined(BUG_NO_INVALID_CHECK)
    retry = false
#else
    retry = invalid[root]                 /* fault.cpp:84 */
#endif
  };
  atomic {
    if
    :: !retry -> leaves[root] = 1         /* fault.cpp:175: the leaf CAS */
    :: else -> skip
    fi;
    mmu_readers--;
    retry = false
  }
}

/* Mmu::vcpu_load_root. */
inline load_root() {
  g = generation;                         /* mmu.cpp:60 */
  if
  :: root != NONE && g == gen_seen && !invalid[root] -> skip   /* mmu.cpp:63 */
  :: else ->
     get_root(fresh);                     /* mmu.cpp:64 */
     old = root;
     root = fresh;
     gen_seen = g;
     if
     :: old != NONE -> put_root(old)      /* mmu.cpp:69 */
     :: else -> skip
     fi
  fi;
  g = 0; old = 0; fresh = 0
}

proctype Vcpu(byte me) {
  byte root = NONE, gen_seen, g, old, fresh, faults = 0, r, j, mask, prev;
  bool zapped = false, fast, sch, fre, retry;
  load_root();
  do
  :: faults < NF -> fault(root); faults++
  :: !zapped -> invalidate_all(); zapped = true
  :: generation != gen_seen || invalid[root] ->
     load_root()                          /* the safe point before the next entry (a no-op otherwise) */
  :: run_deferred_once()                 /* blocks unless a root is queued */
  :: zapped -> break
  od;
  put_root(root);                         /* vcpu_release: mmu.cpp:82 */
  root = NONE;
  do                                      /* the VM going away waits for its teardowns */
  :: run_deferred_once()                  /* (wait_for_teardown runs them itself) */
  :: empty(tdq) -> break
  od;
  vcpus_done++
}

active proctype Check() {
  byte j = 0;
  atomic {
    vcpus_done == NV && empty(tdq) && busy == 0 ->
    do
    :: j < nroots ->
       assert(torn[j] == 1 && queued[j] == 1 && freed[j]);
       j++
    :: else -> break
    od
  }
}

init {
  atomic {
    run Vcpu(0);
    run Vcpu(1)
  }
}
