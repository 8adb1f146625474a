/* asym_fence.pml -- asymmetric fences under x86-TSO: the MMU's two read-side fast paths (the
 * MMU lock's readers, mmu/percpu_rwlock.h, and the epoch's pin, mmu/epoch.h) with only a
 * compiler barrier between their store and their loads, against a rare side that pays with a
 * heavy fence instead (Platform::asymmetric_fence_light()/asymmetric_fence_heavy(),
 * mmu/platform.h: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) in the host tests, fence
 * requests in the kernel, hv/cpu_work.h).
 *
 * This is the one model that is not sequentially consistent. The others check algorithms and
 * leave the fences to the C++ arguments in the code; here the question is precisely whether a
 * store still sitting in a CPU's store buffer can be missed, so the CPUs have store buffers.
 *
 * Five configurations (models/check.sh checks each):
 *   -DPART_LOCK            asym_fence@lock: PerCpuRwLock's Dekker core (part 1)
 *   -DPART_EPOCH           asym_fence@epoch: the pin against try_advance() and stamp() (part 2)
 *   -DPART_EPOCH -DCPUS4   asym_fence@epoch4: part 2 with a fourth CPU that only advances (one
 *                          broken variant needs two advancers besides the reader and the
 *                          retirer; smaller bounds otherwise)
 *   -DPART_LOCK -DKERNEL_FENCE   asym_fence@lock_kernel: part 1 with the kernel's heavy fence
 *                          (fence requests, part 3) and reader CPUs that run guests
 *   -DPART_EPOCH -DKERNEL_FENCE  asym_fence@epoch_kernel: part 2 the same way
 *
 * Memory model: x86-TSO, as the abstract machine of Owens, Sarkar and Sewell ("A better x86
 * memory model: x86-TSO", 2009). mem[] is memory; each CPU has a FIFO store buffer sb[c].
 *   plain store (a MOV: relaxed and release stores)   appended to the own buffer
 *   load (a MOV: relaxed, acquire, seq_cst loads)     the newest entry for the address in the
 *                                                     own buffer, else memory
 *   the Memory process                                at any time, moves the oldest entry of
 *                                                     any CPU's buffer to memory
 *   locked RMW (CAS, fetch_add/sub, exchange), and    wait until the own buffer is empty; the
 *   a full fence (MFENCE, seq_cst thread fence)       RMW is then one step on memory
 *   light fence                                       nothing: a compiler barrier keeps the
 *                                                     program order, which the model has anyway
 *   heavy fence of CPU h                              h's own full fence, then, for every other
 *                                                     CPU c in any order, one step that moves
 *                                                     c's whole buffer to memory: c's "fence
 *                                                     point", a full fence c executes somewhere
 *                                                     in its own instruction stream between the
 *                                                     call and the return (membarrier's
 *                                                     guarantee); the CPUs run on in between.
 *                                                     With -DKERNEL_FENCE: the request protocol
 *                                                     instead (part 3)
 * Loads are never reordered with loads, nor stores with stores, in this machine: only a store
 * followed by a load of another address can appear reordered (the load runs while the store is
 * still buffered), which is the one reordering x86 does. A "CPU" of the model is a thread with
 * its own CPU id in the host tests (a migration between hardware CPUs passes a full barrier in
 * the kernel's context switch, so the thread keeps one buffer).
 *
 * Part 1, the MMU lock (asym_fence@lock).
 * Property: a reader and the writer are never both in their critical sections. Each side
 * asserts it when it enters (whoever enters second fires).
 * Actors: LockReader(0), LockReader(1), on CPUs 0 and 1, RSECTIONS = 2 critical sections each;
 *   LockWriter on CPU 2, WSECTIONS = 2 critical sections.
 * How each step maps to hv's C++ (the asymmetric mode of PerCpuRwLock, line numbers at commit
 * 1b5673d, which introduced it; mmu/percpu_rwlock.h unless named):
 *   reader: raise the own slot    lock_shared() :139 -> raise_fenced() :224-225: a relaxed load
 *                                 and a relaxed store of readers + 1 (plain), then
 *                                 asymmetric_fence_light() (mmu/platform.h:78: nothing)
 *   reader: load state_           lock_shared() :140, seq_cst load (a MOV)
 *   reader: kWriter seen: take    :144 fetch_sub(1) (locked), then :145 wait_as_announced()
 *     back, wait                  (simplified, see below)
 *   reader: leave                 unlock_shared() :168, store(load - 1, release) (plain)
 *   writer: set kWriter           lock() -> own_writer_side() :277, CAS s -> s | kWriter (locked)
 *   writer: heavy fence           drain_readers() :295 -> writer_fence() :232 ->
 *                                 asymmetric_fence_heavy() (mmu/platform.h:85-88)
 *   writer: wait for the slots    drain_readers() :299, each slot until it loads 0
 *   writer: leave                 unlock() -> release_writer_side() :316, clears kWriter
 * Abstracted: state_ is kWriter alone. The waiting path (announce with a CAS, wait for the
 *   phase flip, register with fetch_add, leave the admitted count with fetch_sub) is replaced
 *   by "wait until kWriter is clear, then take the fast path again": every access of the real
 *   path is a locked RMW, which drains the reader's buffer, so it has no store-buffer race of
 *   its own; the replacement sends the reader through the Dekker race once more instead (more
 *   interleavings of the race, not fewer). Phase-fairness and the admitted count are a matter
 *   of the algorithm, not of fences. The writer's unlock is modelled as a plain store (the
 *   code uses a CAS: the model allows strictly more runs, a CAS being a store drained at
 *   once). used_ is left out (the slots are fixed): it is raised with a CAS, a locked RMW
 *   before the slot's plain store. try_lock()/try_lock_shared() are the same Dekker pair.
 * Bounds: 2 readers x 2 sections, 2 writer sections, a store buffer of 4 entries (the most
 *   plain stores a reader issues between two locked instructions, so no store ever waits for
 *   room). The Dekker race needs one reader and the writer; the second reader and the second
 *   sections let a reader's leave and its next raise both sit in its buffer, and the writer
 *   race a reader that is retrying.
 *
 * Part 2, the epoch (asym_fence@epoch, asym_fence@epoch4).
 * Property: no object is freed while a reader that loaded it is still in its section: at the
 *   load the object is not freed, and at every free no open section holds it (holds[]).
 *   Against vacuity, the retirer's barrier at the end asserts that every retired object was
 *   freed (and the witnesses below).
 * Actors: EpochReader(0) on CPU 0: SECTIONS0 = 1 section, then it may try to advance (as
 *   quiescent()/poll() on its CPU). EpochReader(1) on CPU 1: SECTIONS1 = 2 sections, no
 *   advance (READER_ADVANCE selects who advances). Retirer on CPU 2: unlinks object 0 then
 *   object 1 (object 0 is linked at the start), stamps each, and in between and after polls:
 *   tries to advance while something retired is not ready, frees what is ready. At the end,
 *   once the readers are done, barrier(): advance until everything is ready, free it, check.
 *   With -DCPUS4 (asym_fence@epoch4): one section per reader, reader 0 advances, one object
 *   retired, and an Advancer on CPU 3 that tries to advance ADVANCES = 1 times.
 * How each step maps to hv's C++ (line numbers at commit 1b5673d):
 *   reader: load G                 read_lock(cpu) epoch.h:123, acquire load (a MOV)
 *   reader: pin                    pin() epoch.h:263, release store of (g << 1) | 1 (plain),
 *                                  then :270 asymmetric_fence_light() (nothing)
 *   reader: load the link, deref   the section (condition C3 of epoch.cpp)
 *   reader: unpin                  read_unlock(cpu) epoch.h:136, release store of 0 (plain)
 *   retirer: unlink                the SPTE exchange (locked; condition C2)
 *   retirer: stamp                 retire() epoch.cpp:231 -> stamp() :168 (F_W), :169 load G
 *   try_advance: load G            epoch.cpp:174, acquire
 *     pre-scan                     :179 stale_reader_visible() (:192-198), before any fence
 *     heavy fence                  :183 asymmetric_fence_heavy() (F_A)
 *     scan                         :185 stale_reader_visible() again
 *     CAS G g -> g + 1             :189 (locked; fails if someone else advanced)
 *   retirer: advance, free         run_ready() :370 (advance while the oldest is not ready),
 *                                  :385 (ready iff stamp + 2 <= G), then fn frees
 *   retirer: end                   barrier() :510-511 (advance until G >= target + 2), run all
 * Abstracted: epoch.pml checks the algorithm (callbacks and page batches, per-CPU lists,
 *   seal, barrier's stamp) in sequential consistency; here only what a store buffer can change
 *   is kept: one FIFO of retired objects on the retirer's CPU, stamped at once (retire()); the
 *   retirer advances only while something is not ready, but may do so at any point of its
 *   loop (run_ready() advances at most twice per call; any number of calls). No nesting.
 *   The retirer and the advancer never store to a slot or to G with a plain store, so their
 *   loads of G read memory.
 * Bounds: the reader's pin is missed by an advancer only if the pin is still buffered at its
 *   scan; a free under a reader needs two advances past the reader's stamp; the stale pin
 *   (a reader loads G, G moves, the reader pins the old value) needs an advance between a
 *   reader's load of G and its pin. Reader 0 advancing after its section gives a second
 *   advancer beside the retirer (its own unpin still in its buffer when it scans), reader 1's
 *   two sections let its first section's unpin and its second pin sit in its buffer together,
 *   and the two retirements let an object unlinked in one epoch wait behind another. Part 2
 *   with both readers advancing, or two sections each, has 5 to 7 times the states (verified
 *   too when this model was written, see docs/model.md). Store buffer: 4 entries, never full.
 *   asym_fence@epoch4 exists for FENCE_BEFORE_LOAD_G: freeing under reader R that way needs
 *   two advancers (s -> s+1 and s+1 -> s+2, s the stamp) whose fence points on R's CPU both
 *   come before R's pin store and whose loads of G both come after the stamp. Neither can be
 *   R, nor the retirer (its try_advance() comes after the unlink, so after R's pin), nor one
 *   CPU twice (its second fence would come after its first CAS, so after the stamp and the
 *   pin): with three CPUs the variant verifies. The fourth CPU, one section per reader and
 *   one retired object keep the states near those of asym_fence@epoch.
 *
 * Part 3, the kernel's heavy fence (-DKERNEL_FENCE: asym_fence@lock_kernel, @epoch_kernel).
 * Question: does the request protocol of hv/cpu_work.h ("Fence requests") give the heavy
 *   fence's guarantee to parts 1 and 2 when the reader CPUs also run guests, and a request
 *   skips a CPU it sees in guest mode instead of waiting for it? The properties are those of
 *   parts 1 and 2, unchanged; and no invalid end state: every wait for an answer ends (a
 *   requester, a reader spinning behind a writer and an idle CPU all answer).
 * Actors: as in parts 1 and 2, but CPUs 0 and 1 run vCPUs. Part 1: each reader CPU does
 *   RSECTIONS = 2 host critical sections and GPHASES = 2 attempts to run its guest, in any
 *   order. Part 2: per section, first an attempt to run the guest, then the section (the
 *   exit's EPT fault), then (reader 0) an advance, then the safe point; reader 1 has
 *   SECTIONS1 = 1 section and drains a PML log in a fenced section while still in guest mode
 *   (PML_READERS). An attempt: enter guest mode (XCHG, odd); either back out (XCHG, even: a
 *   flush request was pending, which the model decides freely) or run the guest, leave it at
 *   the VM exit (XCHG, even). No section is open in guest mode except the fenced PML one. The
 *   rare-side CPUs (the writer, the retirer, the advancer) never enter guest mode.
 * How each step maps to hv's C++ (line numbers at commit 0f7af24; hv/ unless named):
 *   heavy fence of h              mmu/platform.h:90-94: :92 the own full fence, :93
 *                                 serialize_all_cpus() -> mmu_platform.cpp:127 ->
 *                                 cpu_work.cpp:298 fence_all_cpus()
 *   request to c                  cpu_work.cpp:267 request_fences(), the CPUs in ascending
 *                                 order (:270): :276 fence_want.fetch_add (locked), :278 seq_cst
 *                                 load of guest_state (a MOV; CPUs 2 and 3 never enter guest
 *                                 mode, their load of 0 is left out); :279-282 odd: skipped
 *   wait for c                    cpu_work.cpp:304-309 (ascending; :305 skips odd states) ->
 *                                 wait_answered() :135-142 of fence_answered() :291-295: :293
 *                                 fence_done >= want (acquire), or :294 guest_state != the
 *                                 value read; meanwhile :138 service_flushes(), an answer
 *   answer of c                   cpu_work.h:152-156 answer_fences() (a request waits) ->
 *                                 cpu_work.cpp:85-91: :88 full fence, :90 fence_done = want
 *   service points of c           outside guest mode: before_entry() vcpu.cpp:318 -> service()
 *                                 cpu_work.cpp:108-109; idle: idle_hook() cpu_work.cpp:50-51;
 *                                 spin-waits: mmu/lock.h:39-40 spin_pause(), arch/x86/
 *                                 spinlock.h:32-33 spin_wait() (hooks: mmu_platform.cpp:138-139)
 *                                 in a reader's wait behind a writer (mmu/percpu_rwlock.h:262)
 *                                 and inside sections (inner locks); MMU waits (cpu_relax(),
 *                                 mmu_platform.cpp:120-121: the retirer's barrier). None in
 *                                 guest mode (vcpu.cpp:495 to :542)
 *   enter guest mode              vcpu.cpp:495 -> cpu_work.h:115, guest_state + 1 (XCHG);
 *                                 :116 no flush request: VM entry
 *   back-out                      cpu_work.h:119 (XCHG), :120 -> vcpu.cpp:495-498 `continue`
 *   PML section in guest mode     vcpu.cpp:541 pml_drain() -> pml.cpp:92 read_lock_fenced()
 *                                 (mmu/epoch.h:142-145: pin, then :144 a full fence), :93 the
 *                                 marks (loads), :94 read_unlock()
 *   VM exit, leave guest mode     vcpu.cpp:542 -> cpu_work.h:129 (XCHG); then host sections:
 *                                 vcpu.cpp:543 quiescent(), :571 dispatch_exit() (EPT faults),
 *                                 and before_entry()'s MMU work (:325, :331)
 * Abstracted: fence_want/fence_done are counters; the model keeps what a requester h compares
 *   (done >= its want): req[c] bit h (h's newest request, read by no answer of c yet) and
 *   cov[c] bit h (an answer of c covered it). An answer is one step: c's fence, then
 *   fence_done in memory (the code loads fence_want before the fence, so it may cover fewer
 *   requests: a later answer does the rest; its store of fence_done sits behind the fence in
 *   an empty buffer, so its delay is only the requester's). guest_state is kept modulo 4: its
 *   parity, and "it moved" for up to three XCHGs; a requester that misses a wrap waits on (for
 *   an answer, or the next XCHG), it never proceeds early. The flush requests are not
 *   modelled: the back-out is a free choice. The guest-mode loop of hv/fast_entry.h (exits
 *   handled with guest_state odd) is part of "the guest runs": no section, no XCHG.
 *   fence_all_cpus_sync() (boot only, before any MMU object) is left out.
 * Bounds: part 1 as above (every order of sections and guest attempts, any number of
 *   back-outs); part 2: one section per reader (part 2's second section of reader 1 let its
 *   unpin and its next pin share its buffer; here an XCHG separates them, and reader 1's
 *   guest-mode PML section takes the place). Store buffer: 6 entries (two sections of a
 *   reader back to back are 4 plain stores; the broken variants' plain guest_state stores come
 *   on top).
 * Not bugs on x86-TSO (checked once, see docs/model.md): -DSTATE_BEFORE_REQUEST, the load of
 *   guest_state before the fetch_add on fence_want; the same without the own full fence of
 *   platform.h:92 (-DNO_OWN_FENCE as well). What a skip needs is that the load comes after the requester's own store
 *   (part 1: the CAS of kWriter) and load (part 2: of G), which every later load does here;
 *   BUG STATE_BEFORE_CAS moves it before the CAS. -DENTER_PLAIN, enter_guest_mode()'s first
 *   store a plain one: for fences only the ways out of guest mode need the XCHG (the way in is
 *   one for the flush protocol's Dekker pair, cpu_work.h:112-116, not modelled here).
 *
 * Deliberately broken variants (spin -DBUG_x; models/check.sh expects each to fail):
 * BUG NO_HEAVY_FENCE@lock: the writer scans the slots right after its CAS, without the heavy fence
 * BUG FENCE_BEFORE_CAS@lock: the writer's heavy fence comes before the CAS that sets kWriter
 * BUG NO_HEAVY_FENCE@epoch: try_advance() takes the pre-scan for the answer (no heavy fence, no second scan)
 * BUG STAMP_UNFENCED@epoch: the unlink is a plain store and stamp() has no fence F_W (the stamp is taken with the unlink still buffered)
 * BUG FENCE_BEFORE_LOAD_G@epoch4: try_advance() does its heavy fence before it loads G (not a bug within 3 CPUs: see docs/model.md)
 * BUG STATE_BEFORE_CAS@lock_kernel: the writer's skip decisions use guest_state loads made before its CAS of kWriter
 * BUG EXIT_PLAIN@lock_kernel: exit_guest_mode() stores guest_state with a plain store (a MOV), not an XCHG
 * BUG BACKOUT_PLAIN@lock_kernel: the back-out of enter_guest_mode() is a plain store, not an XCHG
 * BUG SECTION_IN_GUEST@lock_kernel: a reader takes the MMU lock in guest mode (between the VM exit and exit_guest_mode())
 * BUG WAIT_LIKE_FLUSH@lock_kernel: the wait for a CPU also ends when its guest_state is even (flush_ept's test)
 * BUG EXIT_PLAIN@epoch_kernel: exit_guest_mode() stores guest_state with a plain store (a MOV), not an XCHG
 * BUG BACKOUT_PLAIN@epoch_kernel: the back-out of enter_guest_mode() is a plain store, not an XCHG
 * BUG PML_SECTION_UNFENCED@epoch_kernel: pml_drain() opens its section with read_lock(), not read_lock_fenced()
 *
 * Witnesses (spin -DWITNESS_x must report an error: the run exists, so the model is not vacuous):
 * WITNESS FENCE_SAVES_READER@lock: a writer's heavy fence drains the increment of a reader that has already loaded state_ without kWriter
 * WITNESS BACKOFF@lock: a reader sees kWriter and takes its increment back
 * WITNESS UNLINKED_UNDER_READER@epoch: the retirer unlinks an object that an open section has loaded (later freed: the end check)
 * WITNESS PRESCAN_GAVE_UP@epoch: the pre-scan of try_advance() sees a stale pin and gives up without the heavy fence
 * WITNESS FENCE_FINDS_PIN@epoch: the scan after the heavy fence refuses because of a stale pin that this heavy fence drained from the reader's store buffer
 * WITNESS ANSWER_SAVES_READER@lock_kernel: a reader answers, inside its section, a request that found its increment buffered after its load of state_ without kWriter
 * WITNESS EXIT_SAVES_READER@lock_kernel: a reader that the writer's heavy fence skipped in guest mode leaves it and sees that writer's kWriter
 * WITNESS GS_MOVED@lock_kernel: a requester's wait for a CPU ends because its guest_state moved
 * WITNESS SKIPPED_GUEST@epoch_kernel: a heavy fence skips a CPU in guest mode
 * WITNESS SKIPS_OPEN_SECTION@epoch_kernel: a heavy fence skips a CPU whose fenced PML section is open
 * WITNESS GS_MOVED@epoch_kernel: a requester's wait for a CPU ends because its guest_state moved
 */

#if !defined(PART_LOCK) && !defined(PART_EPOCH)
#error "asym_fence.pml: pass -DPART_LOCK or -DPART_EPOCH (models/check.sh --list: the asym_fence configurations)"
#endif

#if defined(CPUS4)
#define NCPU 4        /* readers 0 and 1, the retirer, an advancer */
#else
#define NCPU 3        /* CPUs 0 and 1: the fast sides (readers); CPU 2: the rare side */
#endif
#define W    2        /* the writer's / the retirer's CPU */
#define ALL_CPUS ((1 << NCPU) - 1)
#ifndef SB
#if defined(KERNEL_FENCE)
#define SB   6        /* (the broken variants' plain guest_state stores come on top) */
#else
#define SB   4        /* store buffer entries (never all used: asserted) */
#endif
#endif

#if defined(PART_LOCK)
#define A_GS0 3       /* KERNEL_FENCE: guest_state of CPU 0 (of CPU 1: A_GS0 + 1) */
#else
#define A_GS0 4
#endif
#if defined(KERNEL_FENCE)
#define NADDR (A_GS0 + 2)   /* ... and guest_state of the two reader CPUs */
#elif defined(PART_LOCK)
#define NADDR 3       /* slot 0, slot 1, state_ */
#else
#define NADDR 4       /* slot 0, slot 1, G, the link */
#endif

/* ---------------------------------------------------------------------------------------- */
/* x86-TSO: memory, one FIFO store buffer per CPU, and the Memory process that drains them.  */

byte mem[NADDR];      /* what every CPU sees once a store has left its buffer */

typedef StoreBuffer {
  byte addr[SB];      /* oldest first */
  byte val[SB];
  byte n              /* entries in use */
};
StoreBuffer sb[NCPU];
hidden byte t_i;      /* loop temporary of the d_steps below (dead between steps) */

/* A plain store of CPU c. Always inside a d_step. */
inline sb_push(c, a, v) {
  assert(sb[c].n < SB);
  sb[c].addr[sb[c].n] = a;
  sb[c].val[sb[c].n] = v;
  sb[c].n++
}

/* A load of CPU c: the newest own buffered store to `a`, else memory. Always inside a d_step. */
inline tso_load(c, a, dst) {
  dst = mem[a];
  t_i = 0;
  do
  :: t_i < sb[c].n ->
     if
     :: sb[c].addr[t_i] == a -> dst = sb[c].val[t_i]
     :: else -> skip
     fi;
     t_i++
  :: else -> break
  od;
  t_i = 0
}

/* The oldest entry of CPU c's buffer reaches memory. */
inline sb_drain_one(c) {
  mem[sb[c].addr[0]] = sb[c].val[0];
  t_i = 1;
  do
  :: t_i < sb[c].n ->
     sb[c].addr[t_i - 1] = sb[c].addr[t_i];
     sb[c].val[t_i - 1] = sb[c].val[t_i];
     t_i++
  :: else -> break
  od;
  sb[c].n--;
  sb[c].addr[sb[c].n] = 0;            /* unused entries stay 0: one state per content */
  sb[c].val[sb[c].n] = 0;
  t_i = 0
}

inline sb_drain_all(c) {
  do
  :: sb[c].n > 0 -> sb_drain_one(c)
  :: else -> break
  od
}

/* The buffers drain on their own: oldest entry first, at any time, CPUs in any order. */
active proctype Memory() {
end:
  do
  :: d_step { sb[0].n > 0 -> sb_drain_one(0) }
  :: d_step { sb[1].n > 0 -> sb_drain_one(1) }
  :: d_step { sb[2].n > 0 -> sb_drain_one(2) }
#if NCPU > 3
  :: d_step { sb[3].n > 0 -> sb_drain_one(3) }
#endif
  od
}

/* A full fence of CPU c waits until its buffer is empty; a locked RMW starts the same way
 * (`full_fence(c) -> ...` as the guard of its d_step). */
#define full_fence(c)  (sb[c].n == 0)

/* The fence point of CPU c inside someone's heavy fence (`fenced`: a local of the caller, the
 * CPUs done so far). */
#define FENCE_POINT(c) \
  :: d_step { (fenced & (1 << c)) == 0 -> fence_ghost(c); sb_drain_all(c); fenced = fenced | (1 << c) }

/* Platform::asymmetric_fence_heavy() on CPU me. */
inline heavy_fence(me) {
  full_fence(me);                         /* our own store first */
  fenced = 1 << me;
  do
  FENCE_POINT(0)
  FENCE_POINT(1)
  FENCE_POINT(2)
#if NCPU > 3
  FENCE_POINT(3)
#endif
  :: fenced == ALL_CPUS -> break
  od;
  fenced = 0
}

/* Platform::asymmetric_fence_light() is a compiler barrier: no statement at all. */

#if defined(KERNEL_FENCE)
/* ---------------------------------------------------------------------------------------- */
/* The kernel's heavy fence: fence requests (hv/cpu_work.h "Fence requests"; the header's     */
/* step table gives the lines).                                                              */

#define NGUEST 2      /* CPUs 0 and 1 run vCPUs; the rare-side CPUs stay outside guest mode */
#define GS_MOD 4      /* guest_state modulo 4: its parity, and "it moved" for a while (below) */

/* fence_want/fence_done of CPU c, abstracted to what a requester h compares (done >= want_h):
 * req[c] bit h: h's newest fetch_add on c's fence_want, read by no answer of c yet;
 * cov[c] bit h: an answer of c read a fence_want that includes h's newest request. */
byte req[NCPU];
byte cov[NCPU];

/* answer_fences() on CPU c when a request waits: the full fence, then fence_done = want. One
 * step: the fence waits for c's buffer to be empty and reads fence_want then (the code's load
 * of fence_want comes before its fence, so it may cover fewer requests: runs this model has
 * too, with a later answer), and fence_done is written to memory at once (the code's release
 * store sits behind the fence in an empty buffer: its delay is a requester's delay). */
inline answer(c) {
  d_step {
    full_fence(c) && req[c] != 0 ->
    answer_ghost(c);
    cov[c] = cov[c] | req[c];
    req[c] = 0
  }
}

/* A service point of CPU c outside guest mode: it may answer there (or not yet). */
#define SERVICE_POINT(c)  if :: answer(c) :: skip fi

/* The guest_state XCHGs of CPU c (enter_guest_mode, its back-out, exit_guest_mode): a full
 * fence and guest_state + 1 in memory. (The code's relaxed load of the own value first: only c
 * writes it, and the XCHG's fence has drained c's buffer.) */
inline gs_xchg(c) {
  d_step { full_fence(c) -> mem[A_GS0 + c] = (mem[A_GS0 + c] + 1) % GS_MOD }
}
/* The same as a plain store (BUG_EXIT_PLAIN, BUG_BACKOUT_PLAIN, ENTER_PLAIN): buffered, no
 * fence. */
inline gs_plain(c) {
  d_step { tso_load(c, A_GS0 + c, t_v); sb_push(c, A_GS0 + c, (t_v + 1) % GS_MOD); t_v = 0 }
}
hidden byte t_v;      /* temporary of gs_plain() (dead between steps) */
#if defined(ENTER_PLAIN)
#define ENTER_GUEST(c) gs_plain(c)
#else
#define ENTER_GUEST(c) gs_xchg(c)
#endif
#if defined(BUG_EXIT_PLAIN)
#define EXIT_GUEST(c)  gs_plain(c)
#else
#define EXIT_GUEST(c)  gs_xchg(c)
#endif
#if defined(BUG_BACKOUT_PLAIN)
#define BACK_OUT(c)    gs_plain(c)
#else
#define BACK_OUT(c)    gs_xchg(c)
#endif

/* request_fences(), the requests half, for target kc: fetch_add (locked) on its fence_want,
 * then the seq_cst load (a MOV) of its guest_state (CPUs 2 and 3 never enter guest mode: the
 * load would read 0, kst stays 0). STATE_BEFORE_REQUEST swaps the two (not a bug: the header). */
inline k_request(me) {
#if !defined(STATE_BEFORE_REQUEST)
  d_step { full_fence(me) -> req[kc] = req[kc] | (1 << me); cov[kc] = cov[kc] & ~(1 << me); request_ghost(kc) };
#endif
#if !defined(BUG_STATE_BEFORE_CAS)
  if
  :: kc < NGUEST -> d_step { tso_load(me, A_GS0 + kc, kst[kc]) }
  :: else -> skip
  fi;
#endif
#if defined(STATE_BEFORE_REQUEST)
  d_step { full_fence(me) -> req[kc] = req[kc] | (1 << me); cov[kc] = cov[kc] & ~(1 << me); request_ghost(kc) };
#endif
  skip
}

/* BUG_STATE_BEFORE_CAS: the skip decisions' loads of guest_state, made before the lock
 * writer's CAS (k_request() then reuses them). */
inline k_load_states(me) {
  d_step { tso_load(me, A_GS0, kst[0]); tso_load(me, A_GS0 + 1, kst[1]) }
}

/* cpu_work::fence_all_cpus() on CPU me (after the caller's own full fence). `kc`, `kst[]`:
 * locals of the caller (KFENCE_LOCALS). */
inline kernel_fence(me) {
  /* request_fences(): every other CPU in ascending order. */
  kc = 0;
  do
  :: kc == me -> kc++
  :: kc < NCPU && kc != me -> k_request(me); kc++
  :: kc == NCPU -> break
  od;
  /* The waits, in ascending order; a CPU whose guest_state was odd is skipped. */
  kc = 0;
  do
  :: kc == NCPU -> break
  :: kc == me -> kc++
  :: kc < NCPU && kc != me && kc < NGUEST && (kst[kc] & 1) ->
     skip_ghost(kc);
#if defined(WITNESS_SKIPPED_GUEST)
     assert(false);
#endif
     kc++
  :: kc < NCPU && kc != me && !(kc < NGUEST && (kst[kc] & 1)) ->
     /* wait_answered(fence_answered(...)) */
     do
     :: (cov[kc] & (1 << me)) != 0 -> break        /* fence_done >= want */
     :: kc < NGUEST && mem[A_GS0 + kc] != kst[kc] ->  /* guest_state moved: an XCHG */
#if defined(WITNESS_GS_MOVED)
        assert(false);
#endif
        break
#if defined(BUG_WAIT_LIKE_FLUSH)
     :: kc < NGUEST && (mem[A_GS0 + kc] & 1) == 0 -> break  /* flush_ept's "outside guest mode" */
#endif
     :: answer(me)                                  /* wait_answered -> service_flushes() */
     od;
     kc++
  od;
  kc = 0; kst[0] = 0; kst[1] = 0
}

#define KFENCE_LOCALS  byte kc; byte kst[NGUEST]
#if defined(NO_OWN_FENCE)
#define HEAVY_FENCE(me)  kernel_fence(me)
#else
#define HEAVY_FENCE(me)  full_fence(me); kernel_fence(me)
#endif
#else
#define HEAVY_FENCE(me)  heavy_fence(me)
#endif /* KERNEL_FENCE */

#if defined(PART_LOCK)
/* ---------------------------------------------------------------------------------------- */
/* Part 1: PerCpuRwLock's Dekker core.                                                       */

#define A_STATE  2    /* state_; slot_[i].readers is address i */
#define WRITER   1    /* kWriter */
#ifndef RSECTIONS
#define RSECTIONS 2
#endif
#ifndef WSECTIONS
#define WSECTIONS 2
#endif
#ifndef GPHASES
#define GPHASES 2     /* KERNEL_FENCE: attempts of each reader CPU to run its guest */
#endif

bool r_in_cs[2];      /* ghost: reader i is in its critical section */
bool w_in_cs;         /* ghost: the writer is in its critical section */
#if defined(WITNESS_FENCE_SAVES_READER) || defined(WITNESS_ANSWER_SAVES_READER)
bool early[2];        /* ghost: reader i loaded state_ without kWriter, its increment buffered */
#endif
#if defined(WITNESS_ANSWER_SAVES_READER)
bool asked_early[NCPU];  /* ghost: the writer's request found reader i so (`early`) */
#endif
#if defined(WITNESS_EXIT_SAVES_READER)
bool skipped[2];      /* ghost: the writer's current heavy fence skipped reader i (guest mode) */
#endif

inline fence_ghost(c) {
#if defined(WITNESS_FENCE_SAVES_READER)
  /* "no heavy fence drains the increment of a reader that has loaded state_ without kWriter" */
  assert(c == W || !(early[c] && sb[c].n > 0))
#else
  skip
#endif
}

#if defined(KERNEL_FENCE)
inline answer_ghost(c) {
#if defined(WITNESS_ANSWER_SAVES_READER)
  /* "no reader answers a request that found its increment buffered after its load of state_
   * without kWriter" (the answer's fence waits for that increment to reach memory) */
  assert(c == W || !asked_early[c])
#else
  skip
#endif
}

inline request_ghost(c) {
#if defined(WITNESS_ANSWER_SAVES_READER)
  asked_early[c] = (c != W && early[c] && sb[c].n > 0)
#else
  skip
#endif
}

inline skip_ghost(c) {
#if defined(WITNESS_EXIT_SAVES_READER)
  skipped[c] = true
#else
  skip
#endif
}

/* One read-side critical section on CPU me: lock_shared() ... unlock_shared(), as in
 * LockReader below (asym_fence@lock), plus the service points of the kernel. */
inline lock_section(me) {
  do
  :: d_step { tso_load(me, me, v); sb_push(me, me, v + 1); v = 0 };   /* raise_fenced() */
     d_step {                                                           /* load state_ */
       tso_load(me, A_STATE, s);
#if defined(WITNESS_ANSWER_SAVES_READER)
       early[me] = ((s & WRITER) == 0 && sb[me].n > 0)
#else
       skip
#endif
     };
     if
     :: (s & WRITER) != 0 ->
        d_step { full_fence(me) -> mem[me]--; s = 0 };                  /* take it back */
#if defined(WITNESS_EXIT_SAVES_READER)
        /* "no reader that a heavy fence skipped in guest mode backs off before that writer's
         * unlock" */
        assert(!skipped[me]);
#endif
        /* Wait until no writer owns the lock (wait_as_announced: spin_pause() and its hook,
         * answer_fences()), then the fast path again. */
        do
        :: (mem[A_STATE] & WRITER) == 0 -> break
        :: answer(me)
        od
     :: else ->
        d_step { s = 0; r_in_cs[me] = true; assert(!w_in_cs) };
        break
     fi
  od;
  SERVICE_POINT(me);              /* inside the section: the spin-wait of an inner lock */
  d_step {                                                               /* unlock_shared() */
    tso_load(me, me, v); sb_push(me, me, v - 1); v = 0; r_in_cs[me] = false;
#if defined(WITNESS_ANSWER_SAVES_READER)
    early[me] = false; asked_early[me] = false
#else
    skip
#endif
  }
}

/* A reader CPU that runs a vCPU (hv/vcpu.cpp Vcpu::run): RSECTIONS host sections and GPHASES
 * attempts to run the guest, in any order; each attempt enters guest mode (XCHG), and either
 * backs out (XCHG: a flush request was pending) or runs the guest and leaves it at the VM exit
 * (XCHG). Service points between them (before_entry() -> service()). */
proctype LockReader(byte me) {
  byte v, s, n = 0, g = 0;
  do
  :: n < RSECTIONS -> lock_section(me); n++; SERVICE_POINT(me)
  :: g < GPHASES ->
     ENTER_GUEST(me);                                 /* enter_guest_mode(): odd */
     if
     :: true ->                                       /* no flush request: VM entry */
#if defined(BUG_SECTION_IN_GUEST)
        lock_section(me);                             /* a section in guest mode */
#endif
        EXIT_GUEST(me)                                /* VM exit, exit_guest_mode(): even */
     :: true -> BACK_OUT(me)                          /* a flush request: the back-out */
     fi;
     g++;
     SERVICE_POINT(me)
  :: n == RSECTIONS && g == GPHASES -> break
  od;
  /* Idle (smp's idle loop -> service()): it still answers. */
end_idle:
  do
  :: answer(me)
  od
}
#else /* !KERNEL_FENCE */

proctype LockReader(byte me) {
  byte v, s, n = 0;
  do
  :: n < RSECTIONS ->
again:
     skip;
     /* raise_fenced(): load the own slot, store it + 1 (one step: only this CPU writes its
      * slot, so nothing that interleaves changes the value); the light fence is nothing. */
     d_step { tso_load(me, me, v); sb_push(me, me, v + 1); v = 0 };
     /* lock_shared(): load state_. */
     d_step {
       tso_load(me, A_STATE, s);
#if defined(WITNESS_FENCE_SAVES_READER)
       early[me] = ((s & WRITER) == 0 && sb[me].n > 0)
#else
       skip
#endif
     };
     if
     :: (s & WRITER) != 0 ->
        /* A writer: take the increment back (fetch_sub, locked) ... */
        d_step { full_fence(me) -> mem[me]--; s = 0 };
#if defined(WITNESS_BACKOFF)
        assert(false);
#endif
        /* ... wait until no writer owns the lock, then the fast path again. This CPU never
         * stores state_, so its load reads memory. */
        (mem[A_STATE] & WRITER) == 0;
        goto again
     :: else ->
        d_step { s = 0; r_in_cs[me] = true; assert(!w_in_cs) }
     fi;
     /* unlock_shared(): leave the section, store the own slot - 1 (release: plain). */
     d_step {
       tso_load(me, me, v); sb_push(me, me, v - 1); v = 0; r_in_cs[me] = false;
#if defined(WITNESS_FENCE_SAVES_READER)
       early[me] = false
#else
       skip
#endif
     };
     n++
  :: else -> break
  od
}
#endif /* KERNEL_FENCE */

active proctype LockWriter() {
  byte n = 0, fenced;
#if defined(KERNEL_FENCE)
  KFENCE_LOCALS;
#endif
  do
  :: n < WSECTIONS ->
#if defined(BUG_FENCE_BEFORE_CAS)
     heavy_fence(W);
#endif
#if defined(BUG_STATE_BEFORE_CAS)
     k_load_states(W);
#endif
     /* own_writer_side(): CAS state_ 0 -> kWriter (locked). */
     d_step { full_fence(W) && mem[A_STATE] == 0 -> mem[A_STATE] = WRITER };
#if !defined(BUG_FENCE_BEFORE_CAS) && !defined(BUG_NO_HEAVY_FENCE)
     HEAVY_FENCE(W);                      /* drain_readers() -> writer_fence() */
#endif
     /* drain_readers(): each slot until it loads 0 (this CPU stores no slot: memory). */
     mem[0] == 0;
     mem[1] == 0;
     d_step { w_in_cs = true; assert(!r_in_cs[0] && !r_in_cs[1]) };
     /* unlock(): leave, clear kWriter (a plain store here: see the header). */
     d_step {
       sb_push(W, A_STATE, 0); w_in_cs = false;
#if defined(WITNESS_EXIT_SAVES_READER)
       skipped[0] = false; skipped[1] = false
#else
       skip
#endif
     };
     n++
  :: else -> break
  od
}

init {
  atomic {
    run LockReader(0);
    run LockReader(1)
  }
}

#endif /* PART_LOCK */

#if defined(PART_EPOCH)
/* ---------------------------------------------------------------------------------------- */
/* Part 2: the epoch's pin against try_advance() and stamp().                                */

#define A_G     2     /* global_epoch_; cpus_[i].reader is address i */
#define A_LINK  3     /* where readers load the object from (a parent SPTE) */
#define NR      2     /* reader CPUs */
#if defined(CPUS4)
#define NRET    1     /* objects retired: 0 .. NRET-1; object NRET stays linked */
#ifndef SECTIONS1
#define SECTIONS1 1
#endif
#ifndef ADVANCES
#define ADVANCES 1    /* try_advance() calls of the advancer CPU */
#endif
#else
#define NRET    2
#if defined(KERNEL_FENCE)
#ifndef SECTIONS1
#define SECTIONS1 1   /* one section, after a guest phase with a PML drain (the header) */
#endif
#endif
#endif
#define NOBJ    (NRET + 1)
#ifndef READER_ADVANCE
#define READER_ADVANCE 1   /* bit i: reader i may try to advance after each of its sections */
#endif
#ifndef SECTIONS0
#define SECTIONS0 1
#endif
#ifndef PML_READERS
#define PML_READERS 2      /* KERNEL_FENCE, bit i: reader i drains a PML log in guest mode */
#endif
#ifndef SECTIONS1
#define SECTIONS1 2
#endif

bool freed[NOBJ];
byte holds[NR];       /* ghost: object + 1 that reader i's open section loaded, or 0 */
byte readers_done;

/* A free: the property. */
inline free_obj(o) {
  assert(holds[0] != o + 1 && holds[1] != o + 1);
  assert(!freed[o]);
  freed[o] = true
}

inline fence_ghost(c) {
#if defined(WITNESS_FENCE_FINDS_PIN)
  /* Remember (dp, the caller's) that the newest buffered store to reader c's slot is a pin. */
  t_i = (c < NR -> sb[c].n : 0);
  do
  :: t_i > 0 && sb[c].addr[t_i - 1] != c -> t_i--
  :: else -> break
  od;
  if
  :: t_i > 0 && (sb[c].val[t_i - 1] & 1) -> dp = dp | (1 << c)
  :: else -> skip
  fi;
  t_i = 0
#else
  skip
#endif
}

#if defined(KERNEL_FENCE)
inline answer_ghost(c) { skip }
inline request_ghost(c) { skip }
inline skip_ghost(c) {
#if defined(WITNESS_SKIPS_OPEN_SECTION)
  /* "no heavy fence skips a CPU whose (fenced) guest-mode section is open" */
  assert(holds[c] == 0)
#else
  skip
#endif
}
#endif

/* stale_reader_visible(g) on CPU me: stale = some slot shows an active reader whose epoch is
 * not g (k: that slot). One load per step. */
inline scan(me, g, stale) {
  k = 0;
  stale = false;
  do
  :: d_step {
       k < NR && !stale ->
       tso_load(me, k, r);
       stale = ((r & 1) != 0 && (r >> 1) != g);
       r = 0;
       if
       :: !stale -> k++
       :: else -> skip
       fi
     }
  :: else -> break
  od
}

/* Epoch::try_advance() on CPU me. */
inline try_advance(me) {
#if defined(BUG_FENCE_BEFORE_LOAD_G)
  HEAVY_FENCE(me);
  d_step { tso_load(me, A_G, g0) };
  scan(me, g0, stale);
#else
  d_step { tso_load(me, A_G, g0) };      /* acquire load of G */
  scan(me, g0, stale);                    /* the pre-scan: no fence */
#if !defined(BUG_NO_HEAVY_FENCE)
  if
  :: stale ->
#if defined(WITNESS_PRESCAN_GAVE_UP)
     assert(false);
#endif
     skip
  :: else ->
     HEAVY_FENCE(me);                     /* F_A */
     scan(me, g0, stale);
#if defined(WITNESS_FENCE_FINDS_PIN)
     /* "the scan never refuses because of a pin that this heavy fence drained" */
     assert(!(stale && (dp & (1 << k))));
     dp = 0;
#endif
     skip
  fi;
#endif
#endif
  if
  :: !stale ->
     d_step {                             /* CAS G: g0 -> g0 + 1 (locked; may fail) */
       full_fence(me) ->
       if
       :: mem[A_G] == g0 -> mem[A_G] = g0 + 1
       :: else -> skip
       fi;
       g0 = 0; k = 0
     }
  :: else -> g0 = 0; k = 0; stale = false
  fi
}

/* The locals try_advance() and heavy_fence() use. */
#if defined(KERNEL_FENCE)
#define ADVANCER_LOCALS  byte g0, r, k; bool stale; KFENCE_LOCALS
#elif defined(WITNESS_FENCE_FINDS_PIN)
#define ADVANCER_LOCALS  byte g0, r, k, fenced, dp; bool stale
#else
#define ADVANCER_LOCALS  byte g0, r, k, fenced; bool stale
#endif

#if defined(KERNEL_FENCE)
/* A section of reader me: read_lock() (load G, pin: plain store, light fence: nothing), the
 * loads, read_unlock() (plain store of 0). FENCED: read_lock_fenced() (epoch.h:142-145), a
 * full fence after the pin. A service point after the loads: the fault path spins inside its
 * epoch section (lock_shared()'s waits, spin locks: the spin-wait hooks). */
inline epoch_section(me, FENCED) {
  d_step { tso_load(me, A_G, g) };
  d_step { sb_push(me, me, (g << 1) | 1); g = 0 };
  if
  :: FENCED -> full_fence(me)
  :: else -> skip
  fi;
  d_step { tso_load(me, A_LINK, p); holds[me] = p + 1; assert(!freed[p]) };
  if
  :: !FENCED -> SERVICE_POINT(me)
  :: else -> skip           /* in guest mode: a requester does not wait for this CPU */
  fi;
  d_step { sb_push(me, me, 0); holds[me] = 0; p = 0 }
}

/* A reader CPU that runs a vCPU: per section, first an attempt to run the guest (enter guest
 * mode, then back out, or run the guest and leave guest mode at the VM exit; a CPU in
 * PML_READERS drains its PML log in a fenced section before it leaves), then the section (the
 * exit's EPT fault), then maybe an advance, then the safe point. */
proctype EpochReader(byte me; byte sections) {
  byte g, p, n = 0;
  ADVANCER_LOCALS;
  do
  :: n < sections ->
     ENTER_GUEST(me);                                  /* enter_guest_mode(): odd */
     if
     :: true ->                                        /* VM entry ... VM exit */
        if
        :: (PML_READERS & (1 << me)) != 0 ->
#if defined(BUG_PML_SECTION_UNFENCED)
           epoch_section(me, false)                    /* pml_drain() with read_lock() */
#else
           epoch_section(me, true)                     /* pml_drain(): read_lock_fenced() */
#endif
        :: else -> skip
        fi;
        EXIT_GUEST(me)                                 /* exit_guest_mode(): even */
     :: true -> BACK_OUT(me)                           /* a flush request: the back-out */
     fi;
     epoch_section(me, false);
     if
     :: (READER_ADVANCE & (1 << me)) != 0 -> try_advance(me)
     :: skip
     fi;
     SERVICE_POINT(me);                                /* before_entry() -> service() */
     n++
  :: else -> break
  od;
  readers_done++;
end_idle:
  do
  :: answer(me)
  od
}
#else /* !KERNEL_FENCE */

proctype EpochReader(byte me; byte sections) {
  byte g, p, n = 0;
  ADVANCER_LOCALS;
  do
  :: n < sections ->
     d_step { tso_load(me, A_G, g) };                  /* read_lock(): load G */
     d_step { sb_push(me, me, (g << 1) | 1); g = 0 };  /* pin(): store; light fence: nothing */
     /* The section loads the link and dereferences what it got (free_obj() checks the rest
      * of the section through holds[]). */
     d_step { tso_load(me, A_LINK, p); holds[me] = p + 1; assert(!freed[p]) };
     d_step { sb_push(me, me, 0); holds[me] = 0; p = 0 };  /* read_unlock(): store 0 */
     if
     :: (READER_ADVANCE & (1 << me)) != 0 -> try_advance(me)
     :: skip
     fi;
     n++
  :: else -> break
  od;
  readers_done++
}
#endif /* KERNEL_FENCE */

#if defined(CPUS4)
/* A CPU that only advances (quiescent()/poll() of some other CPU). */
proctype Advancer() {
  byte n = 0;
  ADVANCER_LOCALS;
  do
  :: n < ADVANCES -> try_advance(3); n++
  :: else -> break
  od
#if defined(KERNEL_FENCE)
  ;
end_idle:
  do
  :: answer(3)
  od
#endif
}
#endif

/* Retired object o waits for its grace period / may be freed (run_ready(): ready iff
 * stamp + 2 <= G). Only the retirer writes `retired` and `stamp`; no CPU buffers a store to G
 * (it changes only by CAS), so G is read from memory. */
#define NOT_READY(o)  (retired[o] && !freed[o] && stamp[o] + 2 > mem[A_G])
#define READY(o)      (retired[o] && !freed[o] && stamp[o] + 2 <= mem[A_G])
#if NRET == 1
#define ANY_NOT_READY NOT_READY(0)
#define ANY_READY     READY(0)
#else
#define ANY_NOT_READY (NOT_READY(0) || NOT_READY(1))
#define ANY_READY     (READY(0) || READY(1))
#endif

inline free_ready() {
  if
  :: READY(0) -> free_obj(0)
  :: else -> skip
  fi;
#if NRET > 1
  if
  :: READY(1) -> free_obj(1)
  :: else -> skip
  fi
#else
  skip
#endif
}

proctype Retirer() {
  byte stamp[NOBJ];
  bool retired[NOBJ];
  byte next = 1, old, s;
  ADVANCER_LOCALS;
  do
  :: next < NOBJ ->
     /* The unlink: the SPTE exchange (locked), link -> next object. */
#if defined(BUG_STAMP_UNFENCED)
     d_step { tso_load(W, A_LINK, old); sb_push(W, A_LINK, next); retired[old] = true };
#else
     d_step { full_fence(W) -> old = mem[A_LINK]; mem[A_LINK] = next; retired[old] = true };
#endif
#if defined(WITNESS_UNLINKED_UNDER_READER)
     assert(holds[0] != old + 1 && holds[1] != old + 1);
#endif
     /* retire() -> stamp(): F_W, then load G. */
#if !defined(BUG_STAMP_UNFENCED)
     full_fence(W);
#endif
     d_step { tso_load(W, A_G, s); stamp[old] = s; s = 0; old = 0 };
     next++
  :: ANY_NOT_READY -> try_advance(W)     /* poll() -> run_ready(): advance ... */
  :: d_step { ANY_READY -> free_ready() }  /* ... and run what is ready */
#if defined(KERNEL_FENCE)
  :: answer(W)                            /* its service points (cpu_relax(), spin-waits) */
#endif
  :: next == NOBJ && readers_done == NR -> break
  od;
  /* barrier(): advance until everything is ready, then run it all. */
  do
  :: ANY_NOT_READY -> try_advance(W)
#if defined(KERNEL_FENCE)
  :: answer(W)                            /* barrier() -> cpu_relax() -> service_flushes() */
#endif
  :: else -> break
  od;
  skip;
  d_step { free_ready() };
  /* Everything retired was freed: the check cannot pass by never freeing. */
  assert(retired[0] && freed[0] && !retired[NOBJ - 1] && !freed[NOBJ - 1]);
#if NRET > 1
  assert(retired[1] && freed[1])
#endif
#if defined(KERNEL_FENCE)
  ;
end_idle:
  do
  :: answer(W)
  od
#endif
}

init {
  atomic {
    mem[A_G] = 2;                         /* global_epoch_ starts at 2 (epoch.h) */
    mem[A_LINK] = 0;
    run EpochReader(0, SECTIONS0);
    run EpochReader(1, SECTIONS1);
#if defined(CPUS4)
    run Advancer();
#endif
    run Retirer()
  }
}

#endif /* PART_EPOCH */
