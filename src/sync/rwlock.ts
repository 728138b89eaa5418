/**
 * A reader-writer lock in shared memory: the model of KVM's `kvm->mmu_lock`.
 *
 * vCPU threads take the read side for every stage-2 fault; the host takes the write side for unmap,
 * write-protect, split and teardown. Uncontended, a read lock and a read unlock are one atomic RMW
 * each (`Atomics.add`/`Atomics.sub`), a write lock and unlock one compare-and-swap each.
 *
 * Shared memory (one SharedArrayBuffer):
 *
 *     byte 0    Int32 control words, 192 bytes; STATE alone on the first 64-byte line
 *               [0]  STATE            the lock word, bits below
 *               [16] READ_SEQ         readers sleep here           (bumped by write unlock)
 *               [17] WRITE_SEQ        writers waiting to claim     (bumped by write unlock, last waiting reader)
 *               [18] DRAIN_SEQ        the owning writer, draining  (bumped by the reader that leaves last)
 *               [19] CLAIM_SEQ        +1 per contended claim; wakes yieldWrite()'s handoff wait
 *               [20] WRITERS_WAITING  writers between slow-path entry and claim; read by needsResched()
 *               [21] OWNER            debug mode only: view id of the write holder, 0 if none
 *               [22] NEXT_SLOT        view slots handed out so far (attach)
 *               [32] BIAS             reader bias on (1) or off (0); alone on the third line, read
 *                                     by every biased read lock, written rarely (see below)
 *               [33] INHIBIT_US       no reader turns the bias back on before this time: us
 *                                     since the handle's epochMs, modulo 2^32 as an Int32
 *                                     (compared by difference: inhibited())
 *     byte 192  one 128-byte slot per view (see rwlock-stats.ts): Float64 statistics, and in
 *               the unused counter 1 two Int32 words:
 *               word 2  HOLD, what the view's thread has counted in STATE and WRITERS_WAITING
 *                       (Hold flags below). Written by the owner with plain stores, right after
 *                       each RMW of STATE or WRITERS_WAITING that changes what it holds, with no
 *                       call and no loop in between (V8 delivers worker.terminate() only at
 *                       function entries and loop back edges, so a thread never dies between the
 *                       RMW and the note). Read and cleared with Atomics.exchange by
 *                       `reapHolder()`, only once the owner is dead.
 *               word 3  GATE, the view's reader-bias gate (Gate values below), only ever changed
 *                       by RMWs: OPEN -> FAST by the owner's biased read lock (the lock itself),
 *                       FAST -> OPEN by its unlock; OPEN -> SHUT by a revoking writer, FAST ->
 *                       FAST|WAKE by one that sleeps until the reader leaves (who then stores
 *                       SHUT); SHUT -> OPEN by a counted reader inside the lock (rebias); any ->
 *                       SHUT by `reapHolder()`.
 *               What a read lock writes, READ_ACQ and GATE (or HOLD), sits in the first 16 bytes
 *               of the slot: this machine's SharedArrayBuffers are 16-byte aligned, not 64
 *               (measured: small ones start 32 bytes into a line, large ones 16), so only data
 *               within 16 bytes of a slot's start is sure never to share a line with the next
 *               slot's.
 *
 *     STATE (every thread RMWs it; all accesses are Atomics, hence sequentially consistent):
 *      29          28          27        26        25       24      23 ........ 12   11 ........ 0
 *     +-----------+-----------+---------+---------+--------+-------+---------------+--------------+
 *     |OWNER_DEAD |DRAIN_SLEEP| W_SLEEP | R_SLEEP | ACTIVE | OWNED | RW: readers   | R: readers   |
 *     |           |           |         |         |        |       | waiting       | in or trying |
 *     +-----------+-----------+---------+---------+--------+-------+---------------+--------------+
 *
 * - R counts readers inside plus readers that just added 1 and are about to find OWNED and back off.
 * - RW counts readers that found OWNED set and wait for it to clear.
 * - OWNED: one writer owns the lock; it keeps new readers and other writers out.
 * - ACTIVE: the owner is inside (R drained to 0). `isWriteLocked()` tests this bit.
 * - *_SLEEP: someone may sleep on the matching *_SEQ word (the awaitClear protocol in backoff.ts).
 * - OWNER_DEAD: a thread died holding the lock (for read or write) and `reapHolder()` released its
 *   hold; the data the lock protects may be half updated. The next writer runs its view's
 *   `onOwnerDead` hook inside the lock before returning from writeLock(), then clears the bit (a
 *   POSIX robust mutex's EOWNERDEAD and pthread_mutex_consistent() in one step). Set before the
 *   dead hold is released, so the writer's acquiring RMW, which follows that release, sees it.
 *   It keeps the uncontended write CAS (0 -> OWNED|ACTIVE) failing, so only slow paths test it.
 *
 * Protocol:
 * - Read lock: add 1; if OWNED was clear we are in. Otherwise trade the 1 in R for 1 in RW
 *   (one add), wait until OWNED clears, then trade back (one add), which cannot fail: see below.
 * - Write lock: CAS 0 -> OWNED|ACTIVE. Otherwise claim OWNED once OWNED and RW are both 0, then
 *   wait for R to drain to 0 and set ACTIVE.
 * - A writer cannot claim while RW > 0, so a reader counted in RW that has seen OWNED clear gets in.
 * - The thread whose RMW clears what a sleeper waits for wakes it: write unlock wakes readers and
 *   writers, the reader that takes R to 0 wakes the draining owner, the reader that takes RW to 0
 *   wakes writers waiting to claim.
 *
 * Fairness policy (phase-fair):
 * - Writers first: once a writer has claimed OWNED, new readers wait; the writer enters as soon as
 *   the readers already inside leave. A stream of readers cannot starve a writer: readers arriving
 *   after the claim never enter before it.
 * - Then the readers a writer kept out: every reader that waited during a write phase enters before
 *   the next writer may claim (RW must be 0). A stream of writers cannot starve readers either; each
 *   write phase is followed by a read phase that admits at least the readers queued during it.
 * - Writers among themselves are serialized but not ordered (no FIFO): with several writers one may
 *   overtake another. `yieldWrite()` tries to hand the lock over to a waiting writer.
 * - Not recursive: nested read locks deadlock against a waiting writer. Debug mode reports them.
 *
 * Reader bias (`readerBias`, BRAVO by Dice and Kogan, 2019, with the bias kept per reader): with
 * the bias on, a read lock touches no shared line at all. Each view has a GATE word in its own
 * slot; a read lock is one compare-exchange of it, OPEN -> FAST, and its unlock another, FAST ->
 * OPEN. A writer turns the bias off once it has drained the counted readers (OWNED set, R at 0:
 * no reader can turn it on again meanwhile): it stores BIAS = 0 (the summary that counted readers
 * test), then shuts every view's gate with a compare-exchange OPEN -> SHUT, and marks each that
 * shows FAST (FAST -> FAST|WAKE: its reader shuts it as it leaves); then it waits for those
 * readers, and only then sets ACTIVE. Reader and writer meet on one word, whose RMWs are totally
 * ordered: either the reader's comes first (the writer finds FAST and waits) or the writer's (the
 * reader finds SHUT and takes the counted path, which OWNED holds up). A store of FAST then a load
 * of a shared BIAS word did the same with two atomic calls instead of one (a biased read pair took
 * ~26 ns, now ~24). A counted reader, inside the lock, turns the bias back on once the time the
 * last writer set in INHIBIT_US has passed: it opens every gate, then stores BIAS = 1. That time
 * is nine times as long as that writer's drain of biased readers took (a few microseconds when
 * none is inside; at most MAX_INHIBIT_US), so that writers pay for revocations at most about a
 * tenth of the time (at once in a controlled run, which must not depend on the clock). A gate is
 * opened only from inside the lock, so a writer's scan, which follows the drain of every counted
 * reader, sees it: every gate starts SHUT (a view attached after a writer read NEXT_SLOT is not
 * in its scan), and a view's first read lock, counted, opens its own. A view's state at attach
 * thus depends on nothing but the order of lock operations (a controlled run replays exactly).
 * Without writers, readers on different cores never write a common line (on 2 cores, 2 vCPUs
 * faulting on one STATE word ran at 0.8-1.4x the speed of 1).
 */
import {
  type BackoffPolicy,
  awaitClear,
  bumpAndWake,
  makeBackoffPolicy,
  spinWhile,
  waitWhile,
  wakeSleepers,
} from "./backoff.js";
import { cooperative, RacePoint, racePoint } from "../common/race-points.js";
import { type RwLockStats, recordReadWait, recordWriteWait, Stat, sumStats } from "./rwlock-stats.js";

function holdIndex(slot: number): number {
  return CTL_BYTES / 4 + slot * Stat.SLOT_SIZE * 2 + HOLD_WORD;
}

function gateIndex(slot: number): number {
  return CTL_BYTES / 4 + slot * Stat.SLOT_SIZE * 2 + GATE_WORD;
}

/** Indices of the Int32 control words. */
const enum Ctl {
  STATE = 0,
  READ_SEQ = 16,
  WRITE_SEQ = 17,
  DRAIN_SEQ = 18,
  CLAIM_SEQ = 19,
  WRITERS_WAITING = 20,
  OWNER = 21,
  NEXT_SLOT = 22,
  BIAS = 32,
  INHIBIT_US = 33,
  WORDS = 48,
}

/** Fields of the STATE word. */
const enum S {
  R_MASK = 0xfff,
  /** Top bit of R: the reader count is saturated; read locks fail with a RangeError. */
  R_GUARD = 0x800,
  RW_SHIFT = 12,
  RW_ONE = 1 << 12,
  RW_MASK = 0xfff << 12,
  OWNED = 1 << 24,
  ACTIVE = 1 << 25,
  R_SLEEP = 1 << 26,
  W_SLEEP = 1 << 27,
  DRAIN_SLEEP = 1 << 28,
  OWNER_DEAD = 1 << 29,
}

/**
 * What a view's thread holds, as flags in its HOLD word: exactly the counts it has added to
 * STATE and WRITERS_WAITING, so that `reapHolder()` can take them back after the thread died.
 * `holdOf()` and `reapHolder()` add FAST and WAKE from the view's GATE word.
 */
export const enum Hold {
  NONE = 0,
  /** 1 in R: inside for read, or about to back off. */
  R = 1,
  /** 1 in RW: waiting for a writer to leave. */
  RW = 2,
  /** Counted in WRITERS_WAITING (write slow path, before and just after the claim). */
  WAITING = 4,
  /** Claimed OWNED (draining readers, or inside with ACTIVE). */
  OWNED = 8,
  /** ACTIVE: inside for write. */
  ACTIVE = 16,
  /** Inside for read through the reader bias (nothing counted in STATE): GATE says FAST. */
  FAST = 32,
  /** With FAST only: a revoking writer sleeps on the GATE word until the biased reader leaves. */
  WAKE = 64,
}

/** A view's GATE word: its reader bias. */
const enum Gate {
  /** The bias is on for this view: its next read lock may go in here. */
  OPEN = 0,
  /** Inside for read through the bias (the read lock itself). */
  FAST = 1,
  /**
   * With FAST: a revoking writer has shut the bias and may sleep on this word. The writer sets it
   * with a compare-exchange FAST -> FAST|WAKE; the reader's unlock, whose FAST -> OPEN then
   * fails, stores SHUT and notifies (or the writer would sleep out its timeout: up to sleepMs,
   * 2 ms, with nothing left to wait for).
   */
  WAKE = 2,
  /** The bias is off for this view: a read lock takes the counted path. */
  SHUT = 4,
}

/** Int32 indices of a view's HOLD and GATE words inside its statistics slot (float64 counter 1). */
const HOLD_WORD = 2;
const GATE_WORD = 3;

const CTL_BYTES = Ctl.WORDS * 4;
/** The reader fields hold 2047 threads before the guard bit; one view per thread. */
const MAX_THREADS = 2047;
/** How long yieldWrite() waits for a waiting writer to take over before it retakes the lock. */
const HANDOFF_TIMEOUT_MS = 10;
/**
 * Longest reader-bias inhibit after a revocation, in microseconds (1 s): a writer that waited
 * long for a biased reader does not keep the bias off for nine times as long.
 */
const MAX_INHIBIT_US = 1_000_000;

/**
 * Whether a reader-bias inhibit that ends at `untilUs` still holds at `nowUs`: both microseconds
 * since the lock's epochMs, modulo 2^32 as Int32s (they wrap every 71 minutes). Compared by their
 * Int32 difference, right while they are less than 35 minutes apart; an inhibit is at most
 * MAX_INHIBIT_US long, so a longer time left can only come from a revocation long past, read
 * across a wrap: that one has passed.
 */
export function inhibited(untilUs: number, nowUs: number): boolean {
  const left = (untilUs - nowUs) | 0;
  return left > 0 && left <= MAX_INHIBIT_US;
}

/** What revokeBias() did. */
const enum Revoke {
  DONE = 0,
  WAITED = 1,
  GAVE_UP = 2,
}

const enum Held {
  NONE = 0,
  READ = 1,
  WRITE = 2,
}
const HELD_NAMES = ["nothing", "read", "write"];

/**
 * Misuse of a lock: releasing what this thread does not hold, a lock held in the wrong mode where
 * an assertion requires it, or a state word that no correct sequence of operations produces. It
 * is a bug in the caller (or memory corruption), never a condition to retry.
 */
export class RwLockUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RwLockUsageError";
  }
}

/** Options of `RwLock.create`. */
export interface RwLockOptions {
  /** Name used in error messages, e.g. "mmu_lock". Default "rwlock". */
  name?: string;
  /** Track which view holds the lock and throw on misuse (nesting, unlock by a non-holder). */
  debug?: boolean;
  /** Views that may attach, one per thread, 1..2047. Default 64. */
  maxThreads?: number;
  /** Atomics.load iterations before a waiter sleeps. Default 512. */
  spins?: number;
  /** Longest single sleep of a waiter, in ms. Default 2. */
  sleepMs?: number;
  /**
   * Reader bias: read locks touch only the reader's own line while no writer comes (see above).
   * For read-mostly locks taken by many threads (mmu_lock in shared mode). Default false.
   */
  readerBias?: boolean;
}

/** State of the lock for diagnostics and tests; see `RwLock.snapshot()`. */
export interface RwLockSnapshot {
  /** Readers inside, plus readers about to find a writer and back off. */
  readers: number;
  /** Readers waiting for a writer to leave; the next writer waits for them to get in first. */
  waitingReaders: number;
  /** Writers waiting to claim the lock (not counting one that is draining readers). */
  waitingWriters: number;
  /** A writer has claimed the lock and waits for the readers inside to leave. */
  writerDraining: boolean;
  /** A writer is inside. */
  writeLocked: boolean;
  /** A holder died and the next writer must repair the data first (OWNER_DEAD). */
  ownerDead: boolean;
}

/** Structured-cloneable description of a lock: post it to a worker and `RwLock.attach` it there. */
export interface RwLockHandle {
  readonly buffer: SharedArrayBuffer;
  readonly name: string;
  readonly debug: boolean;
  readonly maxThreads: number;
  readonly spins: number;
  readonly sleepMs: number;
  readonly readerBias: boolean;
  /** Time origin of INHIBIT_US (ms since the Unix epoch, whole). */
  readonly epochMs: number;
}

/**
 * A thread-local view of a shared reader-writer lock. Make one with `RwLock.create` or
 * `RwLock.attach`; each thread must use its own view (it owns a statistics slot and, in debug mode,
 * the record of what this thread holds).
 */
export class RwLock {
  readonly handle: RwLockHandle;
  readonly name: string;
  readonly debug: boolean;
  private readonly ctl: Int32Array;
  private readonly st: Float64Array;
  /** First counter of this view's statistics slot. */
  private readonly base: number;
  /** 1-based view id, stored in OWNER by a debug-mode writer. */
  private readonly id: number;
  private readonly policy: BackoffPolicy;
  private held: Held = Held.NONE;
  /** Int32 view of the whole buffer, for the HOLD words. */
  private readonly i32: Int32Array;
  private readonly biased: boolean;
  /** Index of this view's HOLD word in `i32`. */
  private readonly h: number;
  /** Index of this view's GATE word in `i32`. */
  private readonly g: number;
  /**
   * Run by writeLock() (in this thread, inside the write lock) when a thread died holding the lock:
   * repair what the dead holder left half done. Null: the bit stays set for a writer that has one.
   */
  onOwnerDead: (() => void) | null = null;

  private constructor(handle: RwLockHandle, waiting: Partial<BackoffPolicy>) {
    this.handle = handle;
    this.name = handle.name;
    this.debug = handle.debug;
    this.policy = makeBackoffPolicy({ ...handle, ...waiting }, `rwlock "${handle.name}"`);
    this.ctl = new Int32Array(handle.buffer, 0, Ctl.WORDS);
    this.st = new Float64Array(handle.buffer, CTL_BYTES, handle.maxThreads * Stat.SLOT_SIZE);
    const slot = Atomics.add(this.ctl, Ctl.NEXT_SLOT, 1);
    if (slot >= handle.maxThreads) {
      throw new RangeError(
        `Cannot attach to rwlock "${handle.name}": all ${handle.maxThreads} thread slots are taken (raise maxThreads)`,
      );
    }
    this.base = slot * Stat.SLOT_SIZE;
    this.id = slot + 1;
    this.i32 = new Int32Array(handle.buffer);
    this.h = holdIndex(slot);
    this.g = gateIndex(slot);
    this.biased = handle.readerBias;
  }

  /** This view's slot: what a reaper passes to `reapHolder()` once this thread is dead. */
  get slot(): number {
    return this.id - 1;
  }

  /** Allocates a lock in new shared memory and returns the creating thread's view. */
  static create(opts: RwLockOptions = {}): RwLock {
    const name = opts.name ?? "rwlock";
    const maxThreads = opts.maxThreads ?? 64;
    if (typeof name !== "string" || name.length === 0) {
      throw new TypeError("Cannot create rwlock: name must be a non-empty string");
    }
    if (!Number.isInteger(maxThreads) || maxThreads < 1 || maxThreads > MAX_THREADS) {
      throw new RangeError(
        `Cannot create rwlock "${name}": maxThreads ${maxThreads} is not an integer in 1..${MAX_THREADS}`,
      );
    }
    const policy = makeBackoffPolicy(opts, `rwlock "${name}"`);
    const bytes = CTL_BYTES + maxThreads * Stat.SLOT_SIZE * 8;
    const buffer = new SharedArrayBuffer(bytes);
    const debug = opts.debug === true;
    const readerBias = opts.readerBias === true;
    const epochMs = Math.floor(performance.timeOrigin + performance.now());
    if (readerBias) {
      // Published by the handle's postMessage. Every gate starts shut, so that no slot is open
      // that a writer's scan might not cover: a view's first read lock is counted and opens its
      // own (maybeRebias).
      const i32 = new Int32Array(buffer);
      i32[Ctl.BIAS] = 1;
      for (let slot = 0; slot < maxThreads; slot++) i32[gateIndex(slot)] = Gate.SHUT;
    }
    return new RwLock(
      { buffer, name, debug, maxThreads, spins: policy.spins, sleepMs: policy.sleepMs, readerBias, epochMs },
      {},
    );
  }

  /**
   * Builds a view in this thread from a handle made by `create` in any thread. `waiting` overrides
   * the lock's spin/sleep policy for this thread only (e.g. a host thread that should spin longer).
   */
  static attach(handle: RwLockHandle, waiting: Partial<BackoffPolicy> = {}): RwLock {
    const ok =
      typeof handle === "object" &&
      handle !== null &&
      handle.buffer instanceof SharedArrayBuffer &&
      typeof handle.name === "string" &&
      typeof handle.debug === "boolean" &&
      typeof handle.readerBias === "boolean" &&
      Number.isInteger(handle.epochMs) &&
      Number.isInteger(handle.maxThreads) &&
      handle.buffer.byteLength === CTL_BYTES + handle.maxThreads * Stat.SLOT_SIZE * 8;
    if (!ok) throw new TypeError("Cannot attach rwlock: the handle does not come from RwLock.create()");
    return new RwLock(handle, waiting);
  }

  // ---- read side -------------------------------------------------------------------------------

  /** Takes the lock for read, waiting while a writer owns it. Must not be held by this thread. */
  readLock(): void {
    if (this.debug) this.checkCanLock("read");
    if (!(this.biased && this.tryFastRead())) {
      // Pairs with the writer's claim of OWNED: whichever RMW comes second sees the other.
      const old = Atomics.add(this.ctl, Ctl.STATE, 1);
      this.i32[this.h] = Hold.R;
      if ((old & (S.OWNED | S.R_GUARD)) !== 0) this.readLockSlow(old);
      if (this.biased) this.maybeRebias();
      this.st[this.base + Stat.READ_COUNTED]++;
    }
    this.st[this.base + Stat.READ_ACQ]++;
    if (this.debug) this.held = Held.READ;
  }

  /** Reader bias: in through the own gate if it is open (see the protocol above). */
  private tryFastRead(): boolean {
    // Pairs with a revoking writer's compare-exchange OPEN -> SHUT of the same word.
    return Atomics.compareExchange(this.i32, this.g, Gate.OPEN, Gate.FAST) === Gate.OPEN;
  }

  /** Leaves through the own gate, waking a revoking writer that asked for it (Gate.WAKE). */
  private leaveFast(): void {
    // Pairs with a revoking writer's compare-exchange FAST -> FAST|WAKE: either the WAKE lands
    // first and ours fails, or ours lands first and the writer's fails (it finds the gate OPEN).
    if (Atomics.compareExchange(this.i32, this.g, Gate.FAST, Gate.OPEN) !== Gate.FAST) {
      // The writer shuts the gate anyway: shut it for it, then wake it.
      Atomics.store(this.i32, this.g, Gate.SHUT);
      // Counted only when a writer was asleep (it may not have gone to sleep yet).
      if (Atomics.notify(this.i32, this.g) > 0) this.st[this.base + Stat.FAST_WAKES]++;
    }
  }

  /**
   * Reader bias, inside the lock as a counted reader: turn the bias back on once the last
   * revocation's inhibit time has passed (open every gate, then BIAS = 1), or, with the bias on,
   * open this view's own gate if it is still shut (every gate starts shut: a view's first read
   * lock is counted, and opens it here). Safe while counted: a writer shuts the gates only after
   * the counted readers have drained, and none enters after its claim; so every gate opened here
   * is open before that writer's scan.
   */
  private maybeRebias(): void {
    if (Atomics.load(this.ctl, Ctl.BIAS) !== 0) {
      // A plain read of our own gate decides whether to pay for the RMW; any value is a hint.
      if (this.i32[this.g] === Gate.SHUT) Atomics.compareExchange(this.i32, this.g, Gate.SHUT, Gate.OPEN);
      return;
    }
    // A controlled run (cooperative waits) takes the clock out: the bias comes back at once, so
    // that a schedule replays the same whatever time it takes.
    if (!cooperative && inhibited(Atomics.load(this.ctl, Ctl.INHIBIT_US), this.nowUs())) return;
    const slots = this.slotsInUse();
    // A dead view's gate may open too: nobody reads through it again.
    for (let slot = 0; slot < slots; slot++)
      Atomics.compareExchange(this.i32, gateIndex(slot), Gate.SHUT, Gate.OPEN);
    Atomics.store(this.ctl, Ctl.BIAS, 1);
  }

  /** Microseconds since the handle's epochMs (every thread's clock agrees on it), as inhibited() takes them. */
  private nowUs(): number {
    return ((performance.timeOrigin + performance.now() - this.handle.epochMs) * 1000) | 0;
  }

  /** Takes the lock for read if no writer owns it; never waits. */
  tryReadLock(): boolean {
    if (this.debug) this.checkCanLock("read");
    if (this.biased && this.tryFastRead()) {
      this.st[this.base + Stat.READ_ACQ]++;
      if (this.debug) this.held = Held.READ;
      return true;
    }
    const old = Atomics.add(this.ctl, Ctl.STATE, 1);
    this.i32[this.h] = Hold.R;
    if ((old & (S.OWNED | S.R_GUARD)) !== 0) {
      const left = Atomics.sub(this.ctl, Ctl.STATE, 1);
      this.i32[this.h] = Hold.NONE;
      this.readerLeft(left);
      return false;
    }
    if (this.biased) this.maybeRebias();
    this.st[this.base + Stat.READ_COUNTED]++;
    this.st[this.base + Stat.READ_ACQ]++;
    if (this.debug) this.held = Held.READ;
    return true;
  }

  /** Releases a read lock taken by this thread. */
  readUnlock(): void {
    if (this.debug) this.checkUnlock(Held.READ);
    // A plain read of our own gate: only we set FAST there, and only our unlock clears it (a
    // revoking writer adds WAKE to it): FAST means we went in through the bias.
    if ((this.i32[this.g] & Gate.FAST) !== 0) {
      this.leaveFast();
      return;
    }
    // Pairs with the draining writer's load of R (and its DRAIN_SLEEP CAS).
    const old = Atomics.sub(this.ctl, Ctl.STATE, 1);
    this.i32[this.h] = Hold.NONE;
    if ((old & S.DRAIN_SLEEP) !== 0 || (old & S.R_MASK) === 0) this.readUnlockSlow(old);
  }

  private readLockSlow(old: number): void {
    if ((old & S.OWNED) === 0) {
      const left = Atomics.sub(this.ctl, Ctl.STATE, 1);
      this.i32[this.h] = Hold.NONE;
      this.readerLeft(left);
      throw new RangeError(`Cannot take ${this.name} for read: more than ${S.R_GUARD - 1} readers inside`);
    }
    const t0 = performance.now();
    // Trade our count in R for one in RW in one RMW: the owner may now drain, and no later
    // writer can claim until we are in.
    const traded = Atomics.add(this.ctl, Ctl.STATE, S.RW_ONE - 1);
    this.i32[this.h] = Hold.RW;
    this.readerLeft(traded);
    const sleeps = awaitClear(this.ctl, Ctl.STATE, S.OWNED, Ctl.READ_SEQ, S.R_SLEEP, this.policy);
    // OWNED is clear and cannot be set again while RW > 0: entering cannot fail.
    const prev = Atomics.add(this.ctl, Ctl.STATE, 1 - S.RW_ONE);
    this.i32[this.h] = Hold.R;
    if ((prev & (S.RW_MASK | S.W_SLEEP)) === (S.RW_ONE | S.W_SLEEP)) {
      // Last waiting reader in: writers kept out by RW may claim now.
      wakeSleepers(this.ctl, Ctl.STATE, S.W_SLEEP, Ctl.WRITE_SEQ);
    }
    recordReadWait(this.st, this.base, (performance.now() - t0) * 1e6, sleeps);
  }

  private readUnlockSlow(old: number): void {
    if ((old & S.R_MASK) === 0) {
      Atomics.add(this.ctl, Ctl.STATE, 1); // undo the borrow from RW
      throw new RwLockUsageError(`Cannot release ${this.name} for read: no reader holds it`);
    }
    this.readerLeft(old);
  }

  /** `old` is STATE before a reader removed its 1 from R: the reader taking R to 0 wakes the owner. */
  private readerLeft(old: number): void {
    if ((old & (S.R_MASK | S.DRAIN_SLEEP)) === (1 | S.DRAIN_SLEEP)) {
      wakeSleepers(this.ctl, Ctl.STATE, S.DRAIN_SLEEP, Ctl.DRAIN_SEQ, 1);
    }
  }

  // ---- write side ------------------------------------------------------------------------------

  /** Takes the lock for write, waiting for other writers and for the readers inside. */
  writeLock(): void {
    if (this.debug) this.checkCanLock("write");
    // Pairs with readers' adds: once OWNED is in STATE, a reader's add returns it. Biased: OWNED
    // alone, then ACTIVE once the biased readers are out (revokeBias).
    if (Atomics.compareExchange(this.ctl, Ctl.STATE, 0, this.biased ? S.OWNED : S.OWNED | S.ACTIVE) === 0) {
      this.i32[this.h] = this.biased ? Hold.OWNED : Hold.OWNED | Hold.ACTIVE;
      if (this.biased) {
        const t0 = performance.now();
        if (this.revokeBias(true) === Revoke.WAITED)
          recordWriteWait(this.st, this.base, (performance.now() - t0) * 1e6, 0);
        const s = Atomics.or(this.ctl, Ctl.STATE, S.ACTIVE);
        this.i32[this.h] = Hold.OWNED | Hold.ACTIVE;
        // A biased reader that died while we waited for it was marked (OWNER_DEAD) before its
        // hold was taken back, and our RMW follows that: repair before going on, as below.
        if ((s & S.OWNER_DEAD) !== 0) this.repairAfterDeath();
      }
    } else this.writeLockSlow();
    this.st[this.base + Stat.WRITE_ACQ]++;
    if (this.debug) this.noteWriteHeld();
  }

  /**
   * Takes the lock for write if no reader and no writer is inside or waiting in line for it; never
   * waits. With OWNER_DEAD set, runs this view's repair hook inside, as writeLock() does.
   */
  tryWriteLock(): boolean {
    if (this.debug) this.checkCanLock("write");
    let s = 0;
    // Biased: claim OWNED alone, and enter only if no biased reader is inside.
    const claim = this.biased ? S.OWNED : S.OWNED | S.ACTIVE;
    if (Atomics.compareExchange(this.ctl, Ctl.STATE, 0, claim) !== 0) {
      // Only OWNER_DEAD (and sleep bits, which may linger a moment) set: claim over them.
      s = Atomics.load(this.ctl, Ctl.STATE);
      if ((s & S.OWNER_DEAD) === 0 || (s & (S.R_MASK | S.RW_MASK | S.OWNED | S.ACTIVE)) !== 0) return false;
      if (Atomics.compareExchange(this.ctl, Ctl.STATE, s, s | claim) !== s) return false;
    }
    this.i32[this.h] = this.biased ? Hold.OWNED : Hold.OWNED | Hold.ACTIVE;
    if (this.biased) {
      if (this.revokeBias(false) === Revoke.GAVE_UP) {
        this.releaseOwned();
        this.i32[this.h] = Hold.NONE;
        return false;
      }
      s = Atomics.or(this.ctl, Ctl.STATE, S.ACTIVE);
    }
    this.i32[this.h] = Hold.OWNED | Hold.ACTIVE;
    this.st[this.base + Stat.WRITE_ACQ]++;
    if (this.debug) this.noteWriteHeld();
    if ((s & S.OWNER_DEAD) !== 0) this.repairAfterDeath();
    return true;
  }

  /** Releases a write lock taken by this thread. */
  writeUnlock(): void {
    if (this.debug) this.checkUnlock(Held.WRITE);
    // Pairs with the adds of readers waiting for OWNED to clear.
    if (Atomics.compareExchange(this.ctl, Ctl.STATE, S.OWNED | S.ACTIVE, 0) === (S.OWNED | S.ACTIVE)) {
      this.i32[this.h] = Hold.NONE;
    } else this.writeUnlockSlow();
  }

  private writeLockSlow(): void {
    const t0 = performance.now();
    Atomics.add(this.ctl, Ctl.WRITERS_WAITING, 1);
    this.i32[this.h] = Hold.WAITING;
    let sleeps = 0;
    let s: number;
    for (;;) {
      s = Atomics.load(this.ctl, Ctl.STATE);
      if ((s & (S.OWNED | S.RW_MASK)) === 0) {
        // Biased: ACTIVE only once the biased readers are out too (below).
        const claimed = (s & S.R_MASK) === 0 && !this.biased ? s | S.OWNED | S.ACTIVE : s | S.OWNED;
        if (Atomics.compareExchange(this.ctl, Ctl.STATE, s, claimed) === s) break;
        continue;
      }
      sleeps += awaitClear(this.ctl, Ctl.STATE, S.OWNED | S.RW_MASK, Ctl.WRITE_SEQ, S.W_SLEEP, this.policy);
    }
    const inside = (s & S.R_MASK) === 0 && !this.biased ? Hold.OWNED | Hold.ACTIVE : Hold.OWNED;
    this.i32[this.h] = Hold.WAITING | inside;
    Atomics.sub(this.ctl, Ctl.WRITERS_WAITING, 1);
    this.i32[this.h] = inside;
    bumpAndWake(this.ctl, Ctl.CLAIM_SEQ);
    if ((s & S.R_MASK) !== 0 || this.biased) {
      // Readers inside (or about to back off): wait until the last one leaves, then enter.
      if ((s & S.R_MASK) !== 0)
        sleeps += awaitClear(this.ctl, Ctl.STATE, S.R_MASK, Ctl.DRAIN_SEQ, S.DRAIN_SLEEP, this.policy);
      // Biased: then turn the bias off and wait for the biased readers (no counted reader is
      // inside now, and none enters while OWNED is set: none can turn the bias back on).
      if (this.biased) this.revokeBias(true);
      s = Atomics.or(this.ctl, Ctl.STATE, S.ACTIVE);
      this.i32[this.h] = Hold.OWNED | Hold.ACTIVE;
    }
    // OWNER_DEAD was set before the dead hold was released, and our claim or entry RMW came after
    // that release: the value this RMW returned shows it.
    if ((s & S.OWNER_DEAD) !== 0 || (Atomics.load(this.ctl, Ctl.STATE) & S.OWNER_DEAD) !== 0)
      this.repairAfterDeath();
    recordWriteWait(this.st, this.base, (performance.now() - t0) * 1e6, sleeps);
  }

  /**
   * Writer holding OWNED with no counted reader inside: turns the reader bias off (BIAS = 0),
   * shuts every view's gate, and waits for the biased readers inside (`wait` false: gives up if
   * there are any; the bias stays off). Sets the inhibit time from how long that took.
   *
   * Two passes. The first, with no wait and no race point in it, shuts every open gate and asks
   * each reader inside to shut its own as it leaves (FAST -> FAST|WAKE): after it, no reader
   * enters through the bias, whatever order the views attached in (a controlled run replays the
   * same schedule though threads attach in any order). The second waits for those readers.
   *
   * It shuts every gate even when the bias is off already: a tryWriteLock() that gave up left it
   * off with biased readers still inside (the soak found a death watch's tryWriteLock()
   * followed by the host's writeLock() that went in past a vCPU reading). The compare-exchange on
   * each gate finds any biased reader inside, whatever BIAS says.
   */
  private revokeBias(wait: boolean): Revoke {
    const t0 = performance.now();
    const wasOn = Atomics.load(this.ctl, Ctl.BIAS) !== 0;
    // Counted readers that come now keep the bias off (maybeRebias); our claim keeps them out.
    if (wasOn) Atomics.store(this.ctl, Ctl.BIAS, 0);
    // Loaded after the drain of counted readers: it covers every view that opened its gate.
    const slots = this.slotsInUse();
    let inside = false;
    for (let slot = 0; slot < slots; slot++) {
      const at = gateIndex(slot);
      // Pairs with the reader's compare-exchanges of the same word: OPEN -> FAST (tryFastRead)
      // and FAST -> OPEN (leaveFast). A reader that leaves between our two is shut by the retry.
      for (;;) {
        const gate = Atomics.compareExchange(this.i32, at, Gate.OPEN, Gate.SHUT);
        if ((gate & Gate.FAST) === 0) break; // was OPEN (now SHUT) or SHUT
        if (
          gate === Gate.FAST &&
          Atomics.compareExchange(this.i32, at, Gate.FAST, Gate.FAST | Gate.WAKE) !== Gate.FAST
        )
          continue;
        inside = true; // FAST|WAKE now: the reader's unlock stores SHUT and notifies
        break;
      }
    }
    if (inside && !wait) return Revoke.GAVE_UP;
    if (inside)
      for (let slot = 0; slot < slots; slot++) {
        const at = gateIndex(slot);
        if ((Atomics.load(this.i32, at) & Gate.FAST) !== 0) this.awaitFastLeft(at);
      }
    if (wasOn || inside) {
      const tookUs = (performance.now() - t0) * 1000;
      const inhibitUs = Math.min(MAX_INHIBIT_US, Math.max(1, Math.ceil(9 * tookUs)));
      Atomics.store(this.ctl, Ctl.INHIBIT_US, (this.nowUs() + inhibitUs) | 0);
    }
    return inside ? Revoke.WAITED : Revoke.DONE;
  }

  /**
   * Waits until the biased reader of GATE word `at` (FAST|WAKE: it shuts the gate as it leaves,
   * and notifies) has left: spins, then sleeps on the word. Sleeps are still timed (sleepMs): a
   * reader that died inside is reaped with a notify too, and a lost wake costs one timeout,
   * never a hang.
   */
  private awaitFastLeft(at: number): void {
    // Spin first (a biased section is short); the loop below finds the reader gone at once if so.
    spinWhile(this.i32, at, Gate.FAST | Gate.WAKE, this.policy.spins);
    for (;;) {
      // Pairs with the reader's store of SHUT in leaveFast() (or the reaper's exchange).
      if ((Atomics.load(this.i32, at) & Gate.FAST) === 0) return;
      racePoint(RacePoint.WAIT_LOOP);
      if (!cooperative) Atomics.wait(this.i32, at, Gate.FAST | Gate.WAKE, this.policy.sleepMs);
    }
  }

  /** View slots handed out so far (attach counts a refused one too, hence the bound). */
  private slotsInUse(): number {
    return Math.min(Atomics.load(this.ctl, Ctl.NEXT_SLOT), this.handle.maxThreads);
  }

  /** Views inside through the reader bias (a scan of the gates; for reports and assertions). */
  private fastReaders(): number {
    if (!this.biased) return 0;
    const slots = this.slotsInUse();
    let n = 0;
    for (let slot = 0; slot < slots; slot++)
      if ((Atomics.load(this.i32, gateIndex(slot)) & Gate.FAST) !== 0) n++;
    return n;
  }

  /** Inside the write lock with OWNER_DEAD set: run this view's repair hook, then clear the bit. */
  private repairAfterDeath(): void {
    if (this.onOwnerDead === null) return;
    this.onOwnerDead();
    // We hold OWNED|ACTIVE: nobody else clears the bit meanwhile; readers and writers only read it.
    Atomics.and(this.ctl, Ctl.STATE, ~S.OWNER_DEAD);
  }

  private writeUnlockSlow(): void {
    for (;;) {
      const s = Atomics.load(this.ctl, Ctl.STATE);
      if ((s & S.ACTIVE) === 0)
        throw new RwLockUsageError(`Cannot release ${this.name} for write: no writer holds it`);
      // DRAIN_SLEEP may linger from our own drain (the last reader clears it a moment later).
      let next = s & ~(S.OWNED | S.ACTIVE | S.R_SLEEP | S.DRAIN_SLEEP);
      // With readers waiting, writers stay asleep: the last of those readers wakes them.
      const wakeWriters = (s & (S.W_SLEEP | S.RW_MASK)) === S.W_SLEEP;
      if (wakeWriters) next &= ~S.W_SLEEP;
      if (Atomics.compareExchange(this.ctl, Ctl.STATE, s, next) !== s) continue;
      this.i32[this.h] = Hold.NONE;
      // Pairs with awaitClear's CAS that published R_SLEEP / W_SLEEP while OWNED was set.
      if ((s & S.R_SLEEP) !== 0) bumpAndWake(this.ctl, Ctl.READ_SEQ);
      if (wakeWriters) bumpAndWake(this.ctl, Ctl.WRITE_SEQ);
      return;
    }
  }

  // ---- rescheduling points ---------------------------------------------------------------------

  /**
   * True if another thread waits for the lock: a writer waits for the readers inside, readers wait
   * for the writer inside, or writers wait to claim. Long critical sections poll this.
   */
  needsResched(): boolean {
    const s = Atomics.load(this.ctl, Ctl.STATE);
    if ((s & S.RW_MASK) !== 0 || (s & (S.OWNED | S.ACTIVE)) === S.OWNED) return true;
    return Atomics.load(this.ctl, Ctl.WRITERS_WAITING) !== 0;
  }

  /**
   * For a reader: if someone waits, drops the read lock and takes it again, which lets a waiting
   * writer in first. Returns true if it did. Like KVM's cond_resched_rwlock_read(): state read under
   * the lock must be revalidated afterwards.
   */
  yieldRead(): boolean {
    if (!this.needsResched()) return false;
    this.readUnlock();
    this.readLock();
    this.st[this.base + Stat.YIELDS]++;
    return true;
  }

  /**
   * For a writer: if someone waits, drops the write lock and takes it again. Waiting readers get in
   * first; a waiting writer is given up to 10 ms to claim the lock before this one retakes it.
   * Returns true if it yielded. Revalidate state read under the lock afterwards.
   */
  yieldWrite(): boolean {
    if (!this.needsResched()) return false;
    const writersWaiting = Atomics.load(this.ctl, Ctl.WRITERS_WAITING) !== 0;
    const claims = Atomics.load(this.ctl, Ctl.CLAIM_SEQ);
    this.writeUnlock();
    if (writersWaiting) waitWhile(this.ctl, Ctl.CLAIM_SEQ, claims, this.policy, HANDOFF_TIMEOUT_MS);
    this.writeLock();
    this.st[this.base + Stat.YIELDS]++;
    return true;
  }

  // ---- state queries and debug assertions ------------------------------------------------------

  /** True while some writer is inside the lock (any thread). */
  isWriteLocked(): boolean {
    return (Atomics.load(this.ctl, Ctl.STATE) & S.ACTIVE) !== 0;
  }

  /** Readers inside the lock or about to back off from it (any thread); a snapshot. */
  readerCount(): number {
    return (Atomics.load(this.ctl, Ctl.STATE) & S.R_MASK) + this.fastReaders();
  }

  /** Who holds and who waits, read from shared memory (two loads, not one atomic snapshot). */
  snapshot(): RwLockSnapshot {
    const s = Atomics.load(this.ctl, Ctl.STATE);
    return {
      readers: (s & S.R_MASK) + this.fastReaders(),
      waitingReaders: (s & S.RW_MASK) >>> S.RW_SHIFT,
      waitingWriters: Atomics.load(this.ctl, Ctl.WRITERS_WAITING),
      writerDraining: (s & (S.OWNED | S.ACTIVE)) === S.OWNED,
      writeLocked: (s & S.ACTIVE) !== 0,
      ownerDead: (s & S.OWNER_DEAD) !== 0,
    };
  }

  // ---- dead holders ------------------------------------------------------------------------------

  /** What the thread of view slot `slot` holds now (Hold flags; a snapshot, for reports). */
  holdOf(slot: number): number {
    this.checkSlot(slot);
    return Atomics.load(this.i32, holdIndex(slot)) | this.gateHold(Atomics.load(this.i32, gateIndex(slot)));
  }

  /** The Hold flags a GATE value stands for: FAST, with WAKE if a writer sleeps on it. */
  private gateHold(gate: number): number {
    if (!this.biased || (gate & Gate.FAST) === 0) return Hold.NONE;
    return (gate & Gate.WAKE) !== 0 ? Hold.FAST | Hold.WAKE : Hold.FAST;
  }

  /**
   * Takes back everything the thread of view slot `slot` held: its read hold, its place among
   * waiting readers or writers, its write hold. Call it from any thread, once that thread is dead
   * (its worker's 'exit' event, or a closed MessagePort it held): a live thread would go on using
   * what was taken from it. Idempotent (the HOLD word is exchanged with 0, the gate with SHUT).
   * When the dead thread was inside (for read or write) and `markOwnerDead`, sets OWNER_DEAD
   * first, so the next writer repairs the protected data before it uses it. Returns the Hold
   * flags found.
   */
  reapHolder(slot: number, markOwnerDead = true): number {
    this.checkSlot(slot);
    // Pairs with the dead owner's plain stores, which its death (observed by the caller) precedes.
    let held = Atomics.exchange(this.i32, holdIndex(slot), Hold.NONE);
    if (this.biased) {
      // A biased hold is the gate: shut it (the dead view never reads again), and wake a writer
      // asleep on it (WAKE), as the reader's unlock would.
      const gate = Atomics.exchange(this.i32, gateIndex(slot), Gate.SHUT);
      held |= this.gateHold(gate);
      if ((gate & Gate.WAKE) !== 0) Atomics.notify(this.i32, gateIndex(slot));
    }
    const inside = (held & (Hold.R | Hold.ACTIVE | Hold.FAST)) !== 0;
    if (inside && markOwnerDead) Atomics.or(this.ctl, Ctl.STATE, S.OWNER_DEAD);
    if ((held & Hold.R) !== 0) this.readerLeft(Atomics.sub(this.ctl, Ctl.STATE, 1));
    if ((held & Hold.RW) !== 0) {
      // As the last waiting reader getting in: with RW back at 0, sleeping writers may claim.
      const prev = Atomics.sub(this.ctl, Ctl.STATE, S.RW_ONE);
      if ((prev & (S.RW_MASK | S.W_SLEEP)) === (S.RW_ONE | S.W_SLEEP))
        wakeSleepers(this.ctl, Ctl.STATE, S.W_SLEEP, Ctl.WRITE_SEQ);
    }
    if ((held & Hold.WAITING) !== 0) Atomics.sub(this.ctl, Ctl.WRITERS_WAITING, 1);
    if ((held & Hold.OWNED) !== 0) {
      Atomics.compareExchange(this.ctl, Ctl.OWNER, slot + 1, 0);
      this.releaseOwned();
    }
    return held;
  }

  /**
   * Sets OWNER_DEAD without reaping a hold: for a reaper whose dead thread may have left the data
   * half updated after an exception had already unwound its hold. The next writer repairs first.
   */
  markOwnerDead(): void {
    // Pairs with the RMW that brings the next writer in (writeLockSlow reads the bit after it).
    Atomics.or(this.ctl, Ctl.STATE, S.OWNER_DEAD);
  }

  private checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slotsInUse())
      throw new RangeError(`Cannot reap holder of ${this.name}: ${slot} is not an attached view slot`);
    if (slot === this.id - 1)
      throw new RangeError(`Cannot reap holder of ${this.name}: slot ${slot} is this view's own`);
  }

  /** A dead writer's claim (OWNED, with or without ACTIVE): release it as writeUnlock() does. */
  private releaseOwned(): void {
    for (;;) {
      const s = Atomics.load(this.ctl, Ctl.STATE);
      let next = s & ~(S.OWNED | S.ACTIVE | S.R_SLEEP | S.DRAIN_SLEEP);
      const wakeWriters = (s & (S.W_SLEEP | S.RW_MASK)) === S.W_SLEEP;
      if (wakeWriters) next &= ~S.W_SLEEP;
      // Pairs with awaitClear's CAS that published R_SLEEP / W_SLEEP while OWNED was set.
      if (Atomics.compareExchange(this.ctl, Ctl.STATE, s, next) !== s) continue;
      if ((s & S.R_SLEEP) !== 0) bumpAndWake(this.ctl, Ctl.READ_SEQ);
      if (wakeWriters) bumpAndWake(this.ctl, Ctl.WRITE_SEQ);
      return;
    }
  }

  /**
   * Throws unless the lock is held for write: by this thread in debug mode, by any thread otherwise.
   * For page-table code that requires the exclusive side.
   */
  assertWriteHeld(): void {
    const ok = this.debug ? this.held === Held.WRITE : this.isWriteLocked();
    if (!ok) throw new RwLockUsageError(`${this.name} must be held for write here, but ${this.holderText()}`);
  }

  /** Throws unless the lock is held for read: by this thread in debug mode, by anyone otherwise. */
  assertReadHeld(): void {
    const ok = this.debug ? this.held === Held.READ : this.readerCount() !== 0 && !this.isWriteLocked();
    if (!ok) throw new RwLockUsageError(`${this.name} must be held for read here, but ${this.holderText()}`);
  }

  /** Throws unless the lock is held for read or write (by this thread in debug mode). */
  assertHeld(): void {
    const ok = this.debug ? this.held !== Held.NONE : this.readerCount() !== 0 || this.isWriteLocked();
    if (!ok) throw new RwLockUsageError(`${this.name} must be held here, but ${this.holderText()}`);
  }

  /** Debug mode: throws if this thread holds the lock (e.g. before sleeping or allocating). */
  assertNotHeld(): void {
    if (this.debug && this.held !== Held.NONE) {
      throw new RwLockUsageError(
        `${this.name} must not be held here, but this thread holds it for ${HELD_NAMES[this.held]}`,
      );
    }
  }

  /** Sums the statistics of all threads. Allocates; call it from reporting code. */
  stats(): RwLockStats {
    const slots = this.slotsInUse();
    return sumStats(this.st, slots);
  }

  private holderText(): string {
    if (this.debug) return `this thread holds ${HELD_NAMES[this.held]}`;
    const s = Atomics.load(this.ctl, Ctl.STATE);
    if ((s & S.ACTIVE) !== 0) return "a writer holds it";
    return (s & S.R_MASK) !== 0 ? "readers hold it" : "nobody holds it";
  }

  private checkCanLock(kind: string): void {
    if (this.held !== Held.NONE) {
      throw new RwLockUsageError(
        `Cannot take ${this.name} for ${kind}: this thread already holds it for ${HELD_NAMES[this.held]} ` +
          "(the lock is not recursive; nesting deadlocks against a waiting writer)",
      );
    }
  }

  private checkUnlock(kind: Held): void {
    const what = HELD_NAMES[kind];
    if (this.held !== kind) {
      throw new RwLockUsageError(
        `Cannot release ${this.name} for ${what}: this thread holds ${HELD_NAMES[this.held]}`,
      );
    }
    if (kind === Held.WRITE) {
      const owner = Atomics.load(this.ctl, Ctl.OWNER);
      if (owner !== this.id) {
        throw new RwLockUsageError(
          `Cannot release ${this.name} for write: the lock records view ${owner} as holder`,
        );
      }
      Atomics.store(this.ctl, Ctl.OWNER, 0); // before the release RMW, so the next holder's id sticks
    }
    this.held = Held.NONE;
  }

  private noteWriteHeld(): void {
    const s = Atomics.load(this.ctl, Ctl.STATE);
    if ((s & (S.OWNED | S.ACTIVE)) !== (S.OWNED | S.ACTIVE) || Atomics.load(this.ctl, Ctl.OWNER) !== 0) {
      throw new RwLockUsageError(`${this.name} is corrupt: write acquired with state 0x${s.toString(16)}`);
    }
    Atomics.store(this.ctl, Ctl.OWNER, this.id);
    this.held = Held.WRITE;
  }
}
