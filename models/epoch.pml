/* epoch.pml -- epoch-based reclamation (mmu/epoch.h, mmu/epoch.cpp).
 *
 * Property: no object is freed while a reader that could have seen it is inside a read-side
 * section. Checked at the free itself (free_obj: no reader's section holds the object) and at
 * every dereference (the reader asserts the object it loaded is not freed). Against vacuity,
 * the end of the run (a barrier() once every reader has finished) asserts that every retired
 * object was freed after all.
 *
 * Actors (each a Promela process; one process = one CPU):
 *   Reader(i), NR = 2 of them: SECTIONS (reader 0) and SECTIONS1 (reader 1) outermost sections. In a section it pins
 *     the global epoch (read_lock -> pin), loads the link (the parent SPTE or the published
 *     memslot set: condition C3 of epoch.cpp), dereferences what it loaded, and unpins.
 *     Between sections it may try to advance the epoch (what quiescent(), poll() and the
 *     waiters of other CPUs do).
 *   Writer: unlinks objects 1 .. NOBJ-1 one after the other (object 0 is linked at the start;
 *     each unlink replaces the linked object by the next one with an atomic exchange, as the
 *     MMU's SPTE exchange or the memslot publish), hands each old object to the epoch either
 *     as a callback (retire) or as a page in the open batch (retire_page), polls, and at the
 *     end runs barrier() and checks that everything retired was freed.
 *
 * How each step maps to hv's C++ (line numbers at the commit named in docs/model.md):
 *   read_lock: load G             epoch.cpp:131  pin(c, global_epoch_.load(acquire))
 *   pin: store the slot           epoch.cpp:150  c.reader.store((g << 1) | 1, release)
 *                                 epoch.cpp:155  seq_cst fence (F_R): see "memory model" below
 *   read_unlock: clear the slot   epoch.cpp:167  c.reader.store(0, release)
 *   stamp(): fence F_W + load G   epoch.cpp:187-188
 *   try_advance: load G, F_A,     epoch.cpp:193-206 (one slot load per step, then the CAS
 *     scan the slots, CAS G        g -> g+1, which fails if someone else advanced)
 *   retire -> enqueue_locked      epoch.cpp:239  cb->epoch = stamp()
 *   retire_page: open the batch   epoch.cpp:292  c.open_epoch = G (first page only)
 *                add the page     epoch.cpp:295  b->pages[b->count++] = page
 *   seal_batch_locked             epoch.cpp:263  enqueue_locked(c, &b->cb): stamped now
 *   poll: close the batch if G    epoch.cpp:443-453 (else batch_waits -> try_advance)
 *     moved since its first page
 *   run_ready(advance)            epoch.cpp:369-378 (at most two advances while the oldest is
 *                                 not ready), 391 (ready iff stamp + 2 <= G), 419 (fn: free)
 *   barrier                       epoch.cpp:496 (seal), 501 (target = stamp()),
 *                                 503-505 (advance until G >= target + 2), 511 (run all)
 *
 * What is abstracted away, and why the result still says something:
 *   - Memory model: Promela executes the steps in one interleaving (sequential consistency).
 *     hv gets that order for exactly these accesses from its seq_cst fences F_R, F_W and F_A
 *     (the five-step argument at the top of epoch.cpp, which also shows the acquire/release
 *     pairings). The model checks the algorithm, the C++ memory model argument stays in
 *     epoch.cpp. Each shared access is its own step, so every interleaving of the loads and
 *     stores the code issues is explored, including the stale pin (a reader loads G, G moves,
 *     the reader pins its old value: read_lock_pinned_for_test in the unit tests).
 *   - One list, one writer CPU: the per-CPU lists, list_lock/run_lock and the helping of
 *     offline CPUs only decide *who* runs a ready callback, not *when* it is ready (stamp and
 *     G alone decide that). Budgets, partial batches and tracking pages are left out (a
 *     partly freed batch frees a subset of pages that are all ready).
 *   - Nesting: only outermost sections publish anything (epoch.cpp:129-133); inner ones are
 *     counters the model does not need.
 *   - Bounds: 2 readers with one section each (-DSECTIONS=2 gives reader 0 a second one:
 *     same result, about 5x the states), 2 objects retired (3 in all), each retired either way
 *     (retire or retire_page, chosen by the writer). Every bug below needs one reader section
 *     overlapping one unlink and at most two epoch steps; two readers let one reader's pin
 *     (stale or current) coexist with a later reader's newer pin and let one advance the
 *     epoch between the other's load of G and its pin, and two retired objects let a batch
 *     hold pages unlinked in two different epochs. The epoch counter is unbounded in the code; here it moves at most a handful of
 *     times (advances need pending work or a reader's nudge, both bounded), and only
 *     differences between epochs matter to the protocol.
 *
 * Deliberately broken variants (spin -DBUG_x; models/check.sh expects each to fail):
 * BUG GRACE_ONE_STEP: a callback is run once G >= stamp + 1 instead of stamp + 2 (free before the grace period ends)
 * BUG STAMP_BEFORE_UNLINK: retire() reads the stamp before the object is unlinked (breaks condition C2)
 * BUG BATCH_FIRST_STAMP: a page batch is stamped with the epoch of its first page, not when it is sealed
 * BUG LOAD_BEFORE_PIN: the reader loads the link before its pin is published (breaks condition C3)
 */

#ifndef NR
#define NR        2   /* reader CPUs */
#endif
#ifndef SECTIONS1
#define SECTIONS1 1   /* ... of reader 1 */
#endif
#ifndef SECTIONS
#define SECTIONS  1   /* outermost sections per reader */
#endif
#define NOBJ      3   /* objects: 0 linked at the start, 1 .. NOBJ-1 replace it in turn */
#define NCB       4   /* room in the deferred list */

#if defined(BUG_GRACE_ONE_STEP)
#define GRACE 1
#else
#define GRACE 2
#endif

byte G = 2;                  /* global_epoch_ (starts at 2 as in epoch.h) */
byte slot[NR];               /* CpuState::reader: 0, or (epoch << 1) | 1 */
byte link = 0;               /* the location readers load the object from */
bool freed[NOBJ];
byte holds[NR];              /* ghost: object + 1 that reader i's open section loaded, or 0 */
byte readers_done = 0;

/* A free: the property. No reader's open section may have loaded the object. */
inline free_obj(o) {
  k = 0;
  do
  :: k < NR -> assert(holds[k] != o + 1); k++
  :: else -> break
  od;
  assert(!freed[o]);
  freed[o] = true
}

/* Epoch::try_advance(): ok = whether G moved from the value it loaded (a CAS lost to another
 * advancer reports false, as in the code). */
inline try_advance(ok) {
  g0 = G;                                 /* epoch.cpp:193 (F_A follows) */
  k = 0;
  ok = true;
  do
  :: k < NR ->
     r = slot[k];                         /* epoch.cpp:200, one load per step */
     if
     :: (r & 1) && (r >> 1) != g0 -> ok = false; break   /* epoch.cpp:201 */
     :: else -> k++
     fi
  :: else -> break
  od;
  if
  :: ok ->
     atomic {                             /* epoch.cpp:206, the CAS */
       if
       :: G == g0 -> G = g0 + 1
       :: else -> ok = false
       fi
     }
  :: else -> skip
  fi;
  g0 = 0; k = 0; r = 0                    /* dead temporaries: keep them out of the state */
}

/* enqueue_locked(): callback `m` with stamp `s` at the tail. */
inline enqueue(s, m) {
  assert(cb_tail < NCB);
  cb_stamp[cb_tail] = s;
  cb_mask[cb_tail] = m;
  cb_tail++
}

/* seal_batch_locked(): close the open batch; the stamp is read now (epoch.cpp:263 -> 239),
 * in the same step as the enqueue (the list is the writer's own). */
inline seal_batch() {
  if
  :: batch_mask != 0 ->
#if defined(BUG_BATCH_FIRST_STAMP)
     s = open_epoch;
#else
     s = G;                               /* stamp() */
#endif
     enqueue(s, batch_mask);
     batch_mask = 0;
     s = 0
  :: else -> skip
  fi
}

/* The ready prefix: stamp + GRACE <= g (epoch.cpp:391), each callback freeing its objects.
 * One atomic step: the frees touch nothing a reader can load (a retired object is unlinked
 * already), so interleaving reader steps between them would only multiply states. */
inline run_ready_prefix(g) {
  atomic {
    do
    :: cb_head < cb_tail && cb_stamp[cb_head] + GRACE <= g ->
       o = 0;
       do
       :: o < NOBJ ->
          if
          :: cb_mask[cb_head] & (1 << o) -> free_obj(o)
          :: else -> skip
          fi;
          o++
       :: else -> break
       od;
       cb_head++
    :: else -> break
    od;
    o = 0
  }
}

/* Epoch::run_ready(c, budget, advance=true) as poll() calls it. */
inline run_ready() {
  g = G;                                  /* epoch.cpp:366, acquire */
  i = 0;
  do
  :: i < 2 && cb_head < cb_tail ->        /* epoch.cpp:369-378 */
     if
     :: cb_stamp[cb_head] + GRACE <= g -> break
     :: else ->
        try_advance(ok);
        if
        :: ok -> g = G; i++
        :: else -> break
        fi
     fi
  :: else -> break
  od;
  run_ready_prefix(g);
  g = 0; i = 0; ok = false
}

/* Epoch::poll(): close the batch if the epoch moved since its first page, else nudge. */
inline poll() {
  if
  :: batch_mask != 0 && G != open_epoch -> seal_batch()
  :: batch_mask != 0 && G == open_epoch -> try_advance(ok)
  :: else -> skip
  fi;
  run_ready()
}

proctype Reader(byte me; byte sections) {
  byte g, p, n = 0;
  byte g0, r, k;
  bool ok;
  do
  :: n < sections ->
#if defined(BUG_LOAD_BEFORE_PIN)
     p = link;                            /* a pointer carried in from before the section */
#endif
     g = G;                               /* read_lock: epoch.cpp:131 */
     slot[me] = (g << 1) | 1;             /* pin: epoch.cpp:150 (+ fence :155) */
#if defined(BUG_LOAD_BEFORE_PIN)
     holds[me] = p + 1;
#else
     atomic { p = link; holds[me] = p + 1 }  /* C3: loaded inside the section */
#endif
     assert(!freed[p]);                   /* the dereference (free_obj checks holds[] too) */
     atomic { slot[me] = 0; holds[me] = 0; g = 0; p = 0 }  /* read_unlock: epoch.cpp:167 */
     if
     :: try_advance(ok)                   /* quiescent()/poll() of this CPU, or not */
     :: skip
     fi;
     ok = false;
     n++
  :: else -> break
  od;
  readers_done++
}

active proctype Writer() {
  /* The writer CPU's deferred list (FIFO, stamps never decrease) and its open page batch:
   * local to the writer, as only the writer CPU touches them here (list_lock in the code). */
  byte cb_stamp[NCB];
  byte cb_mask[NCB];                      /* bit o: object o is freed by this callback */
  byte cb_head = 0, cb_tail = 0;
  byte batch_mask = 0;                    /* pages in the open batch (0: empty) */
  byte open_epoch = 0;
  bool retired[NOBJ];
  byte next = 1, old, s, g, i, o;
  byte g0, r, k;
  bool ok;
  do
  :: next < NOBJ ->
     /* Unlink + retire(): a callback with its own stamp. */
#if defined(BUG_STAMP_BEFORE_UNLINK)
     s = G;
#endif
     atomic { old = link; link = next; retired[old] = true }  /* the SPTE exchange / publish */
     atomic {
#if !defined(BUG_STAMP_BEFORE_UNLINK)
       s = G;                             /* stamp(): epoch.cpp:187-188 */
#endif
       enqueue(s, 1 << old);
       s = 0; old = 0
     }
     next++
  :: next < NOBJ ->
     /* Unlink + retire_page(): into the open batch, stamped when it is sealed. */
     atomic { old = link; link = next; retired[old] = true };
     atomic {                             /* retire_page, under list_lock */
       if
       :: batch_mask == 0 -> open_epoch = G   /* epoch.cpp:292 */
       :: else -> skip
       fi;
       batch_mask = batch_mask | (1 << old);  /* epoch.cpp:295 */
       old = 0
     }
     next++
  :: poll()
  :: next == NOBJ && readers_done == NR -> break
  od;
  /* barrier(): seal, target = stamp(), advance to target + 2, run everything ready. */
  seal_batch();                           /* epoch.cpp:496 */
  s = G;                                  /* epoch.cpp:501 */
  do
  :: G < s + 2 -> try_advance(ok)         /* epoch.cpp:503-505 */
  :: else -> break
  od;
  run_ready_prefix(G);                    /* epoch.cpp:511 */
  /* Nothing retired is left behind (the check cannot pass by never freeing). */
  o = 0;
  do
  :: o < NOBJ -> assert(retired[o] == freed[o]); o++
  :: else -> break
  od;
  assert(cb_head == cb_tail)
}

init {
  atomic {
    run Reader(0, SECTIONS);
    run Reader(1, SECTIONS1)
  }
}
