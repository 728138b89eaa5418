/**
 * Shared-memory layout of an RCU domain: the control block and the per-thread reader slots.
 *
 * Control block (`ctl`, Int32Array; one 64-byte cache line per group so that the words readers
 * touch on every lock never share a line with the words updaters hammer):
 *
 *   line  word               writer                          reader
 *   ----  -----------------  ------------------------------  --------------------------------------
 *   0     0 GP_CTR           grace-period driver (lock)      every readLock (mb) / quiescentState (qsbr)
 *         1 GP_FUTEX         driver (-1 = asleep), readers   qsbr quiescentState()/offline(); mb readers
 *                            that wake it (wakeWriter)       only when their slot has MB_WAKE
 *   1    16 GP_LOCK          CAS by drivers, reaper          drivers, waiters, stall reports
 *        17 GP_STARTED       driver (lock)                   cookie snapshots (startPoll, synchronize)
 *        18 GP_COMPLETED     driver (lock), futex word       pollState, synchronize waiters
 *        19 GP_WAITERS       add/sub by sleeping waiters     driver (notify only when > 0)
 *        20 GP_REQUESTED     startPoll (CAS max)             callback worker (drives that GP)
 *   2    32 CB_TOP           call() CAS push                 engine exchange (take-all)
 *        33 WORKER_SLEEP     engine (1 = asleep), wakers     call(), barrier(), startPoll()
 *        34 URGENT           barrier()/callAndWait() add,    engine (skip the batching delay)
 *                            engine sub (completeOwnHead)
 *   3    48 SLOT_HWM         register (CAS max)              drivers (scan bound), stats
 *        49 STATIC_NEXT      reserveHeads (add)              reserveHeads
 *        50 ENGINE           engine owner threadId + 1       barrier() (is anybody running callbacks?)
 *        51 SHUTDOWN         close()                         engine
 *        52 RUNNING_KIND     engine (kind or -1)             stall reports of barrier()
 *        53 STALLS           add by whoever reports          stats
 *        54 LAST_STALL_TID   reporter                        stats
 *        55 LAST_STALL_MS    reporter                        stats
 *        56 LAST_STALL_WHAT  reporter (StallWhat)            stats
 *        57 FLOOD            engine (1 while flooded)        updaters that want to throttle
 *        58 STALL_HANDLER    onStall setter (threadId + 1),  reportStall (deliver here or print)
 *                            reaper (CAS to 0)
 *        59 DOMAIN_ID        create (once, random, nonzero)  stall.ts (thread-local handler lookup)
 *        60 ENGINE_LOST      reaper: 1 once the callback     waits for the engine, startPoll()
 *                            engine died holding its role
 *                            (never cleared)
 *   4    64..65              free-chunk stack top, 64-bit (BigUint64Array index 32): tag << 32 | head + 1
 *   5-8  80..143             stall ring: STALL_RING entries of STALL_ENTRY words (StallEntry), entry
 *                            STALLS mod STALL_RING; reporter writes the fields, then SEQ = its
 *                            STALLS value + 1 (publication); the handler's thread reads them
 *
 * Reader slots (`slots`, Int32Array, one 64-byte line per registered thread; `slotsF64` views the
 * same bytes as Float64 for the per-thread counters):
 *
 *   int32  0 CTR            owner: mb 0 or GP_CTR snapshot, driver: | MB_WAKE (CAS) before it
 *                           sleeps; qsbr 0 (offline) or GP_CTR snapshot
 *          1 OWNER          register CAS 0 -> threadId + 1; unregister/reap store 0
 *          2 GEN            register (registrations of this slot so far)
 *          3 CACHE_TOP      owner: first head of its private free-head chain (or NIL)
 *          4 BARRIER_DONE   engine: sequence of this slot's last completed barrier marker (futex)
 *          5 CALL_DONE      engine: sequence of this slot's last completed callAndWait() (futex);
 *                           read by the owner in callAndWait()
 *   f64    4 QUEUED         owner: callbacks queued through this slot (never reset: stats sum slots)
 *          5 NOMEM          owner: call() failures for lack of heads
 *
 * Defined kinds (`kinds`, Uint8Array, one byte per callback kind; RcuShared.kinds):
 *
 *   byte k   1 once kind k is defined   writer: RcuCallbackRegistry in the engine's thread
 *            (Atomics.store)            readers: call(), callHead(), callAndWait() (plain loads)
 *
 * Every slot counter survives its owner: a new owner continues the old values, so sums over all
 * slots stay monotonic without any thread ever folding counts into a global word.
 */

/** Int32 words per 64-byte cache line. */
export const LINE_WORDS = 16;

export const enum Ctl {
  GP_CTR = 0,
  GP_FUTEX = 1,
  GP_LOCK = 16,
  GP_STARTED = 17,
  GP_COMPLETED = 18,
  GP_WAITERS = 19,
  GP_REQUESTED = 20,
  CB_TOP = 32,
  WORKER_SLEEP = 33,
  URGENT = 34,
  SLOT_HWM = 48,
  STATIC_NEXT = 49,
  ENGINE = 50,
  SHUTDOWN = 51,
  RUNNING_KIND = 52,
  STALLS = 53,
  LAST_STALL_TID = 54,
  LAST_STALL_MS = 55,
  LAST_STALL_WHAT = 56,
  FLOOD = 57,
  STALL_HANDLER = 58,
  DOMAIN_ID = 59,
  ENGINE_LOST = 60,
  /** Index of the free-chunk stack top in the BigUint64Array view of the control block. */
  FREE_TOP_64 = 32,
  STALL_RING = 80,
  WORDS = 144,
}

/** One stall-ring entry (words from Ctl.STALL_RING + entry * STALL_ENTRY). */
export const enum StallEntry {
  /** Sequence + 1 of the report held (0: never written). Written last (SC store), read first. */
  SEQ = 0,
  WHAT = 1,
  TID = 2,
  SLOT = 3,
  MS = 4,
  GP = 5,
  /** threadId of the thread that found the stall. */
  REPORTER = 6,
  /** Words per entry (one spare), and entries in the ring (a power of two). */
  STRIDE = 8,
  ENTRIES = 8,
}

/** mb: bit 0 of GP_CTR is always set (so an active reader's word is never 0), bit 1 is the phase. */
export const MB_ACTIVE = 1;
export const MB_PHASE = 2;
/**
 * mb: set in an active reader's slot (CAS) by a driver about to sleep on GP_FUTEX; the reader's
 * unlock (an exchange) sees it and wakes the driver. Never part of GP_CTR.
 */
export const MB_WAKE = 4;
/** qsbr: GP_CTR is odd (never 0 = offline) and advances by 2 per grace period. */
export const QSBR_STEP = 2;

export const enum Slot {
  CTR = 0,
  OWNER = 1,
  GEN = 2,
  CACHE_TOP = 3,
  BARRIER_DONE = 4,
  CALL_DONE = 5,
  STRIDE = 16,
  /** Float64 indices within a slot (slot s starts at Float64 index s * F64_STRIDE). */
  F64_QUEUED = 4,
  F64_NOMEM = 5,
  F64_STRIDE = 8,
}

/** What a stall report is about (Ctl.LAST_STALL_WHAT). */
export const enum StallWhat {
  NONE = 0,
  /** mb: a reader stayed inside a read-side section. */
  READER = 1,
  /** qsbr: an online thread reported no quiescent state. */
  QUIESCENT = 2,
  /** A waiter saw no progress from the thread that holds the grace-period lock. */
  GP_HOLDER = 3,
  /** barrier() saw no progress from the callback worker. */
  CALLBACKS = 4,
  /** A registered thread died and a reaper released its slots (`Rcu.reportDeath`). */
  DIED = 5,
}

/** "No head": end of a chain, empty stack. */
export const NIL = -1;
