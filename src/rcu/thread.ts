/**
 * A registered thread's handle on an RCU domain: the part shared by both flavors.
 *
 * Contracts (liburcu's, adapted):
 * - Register each thread before its first read lock, call or barrier; unregister it before it
 *   exits, or have the parent reap it (`Rcu.reapThread`, `Rcu.watch`).
 * - Never call synchronize(), trySynchronize() or barrier() inside a read-side section, nor
 *   barrier() inside a callback: they throw RcuUsageError instead of deadlocking.
 * - call() and callHead() never block and allocate nothing: call them anywhere, read-side sections
 *   included. Each queued callback runs exactly once (or in slices, see callbacks.ts), after a
 *   grace period that began after the call.
 * - Cookies from startPoll() expire on their own: the callback worker drives the grace period.
 */
import { Errno } from "../common/errno.js";
import { RcuUsageError } from "./errors.js";
import { cookieExpired, type GracePeriods } from "./grace-period.js";
import { Head, HeadKind, popFreeChunk, pushCallback } from "./heads.js";
import { Ctl, NIL, Slot, StallWhat } from "./layout.js";
import { RcuRacePoint, rcuRaceHook } from "./race.js";
import { releaseSlot } from "./registry.js";
import type { RcuShared } from "./shared.js";
import { reportStall } from "./stall.js";
import { inCallbackEngine } from "./thread-state.js";
import { wakeForWork, wakeUrgent } from "./wake.js";

/** A word nobody changes: Atomics.wait on it is a plain timed sleep. */
const nap = new Int32Array(new SharedArrayBuffer(4));

/** Wakes a grace-period driver sleeping on GP_FUTEX. Slow path of readUnlock and quiescentState. */
export function wakeWriter(ctl: Int32Array): void {
  Atomics.store(ctl, Ctl.GP_FUTEX, 0);
  Atomics.notify(ctl, Ctl.GP_FUTEX);
}

export abstract class RcuThreadBase {
  /** worker_threads threadId of the owner. */
  readonly threadId: number;
  /** Reader slot index. */
  readonly slot: number;
  /** Read-side nesting depth (thread-local: never shared). */
  protected nest = 0;
  protected registered = true;
  protected readonly sh: RcuShared;
  protected readonly ctl: Int32Array;
  /** The reader slots; a private dummy after unregister(), so a stale handle cannot touch a slot. */
  protected slots: Int32Array;
  protected readonly ctrIndex: number;
  protected readonly gps: GracePeriods;
  private readonly slotsF64: Float64Array;
  private readonly link: Int32Array;
  private readonly args: Float64Array;
  private readonly cacheIndex: number;
  private readonly queuedIndex: number;
  private readonly maxKinds: number;

  constructor(sh: RcuShared, slot: number, threadId: number, gps: GracePeriods) {
    this.sh = sh;
    this.threadId = threadId;
    this.slot = slot;
    this.gps = gps;
    this.ctl = sh.ctl;
    this.slots = sh.slots;
    this.slotsF64 = sh.slotsF64;
    this.link = sh.link;
    this.args = sh.args;
    this.ctrIndex = slot * Slot.STRIDE + Slot.CTR;
    this.cacheIndex = slot * Slot.STRIDE + Slot.CACHE_TOP;
    this.queuedIndex = slot * Slot.F64_STRIDE + Slot.F64_QUEUED;
    this.maxKinds = sh.options.maxKinds;
  }

  abstract readLock(): void;
  abstract readUnlock(): void;
  /** qsbr: announce that this thread holds no reference to RCU-protected data. mb: no-op. */
  abstract quiescentState(): void;
  /** qsbr: stop being waited for (before blocking or idling). mb: no-op. */
  abstract offline(): void;
  /** qsbr: be waited for again. mb: no-op. */
  abstract online(): void;
  /** Stops being waited for while this thread itself waits (qsbr goes offline). */
  protected abstract pauseForWait(): boolean;
  protected abstract resumeAfterWait(wasOnline: boolean): void;

  /** False once unregister() ran. */
  get isRegistered(): boolean {
    return this.registered;
  }

  /** Current read-side nesting depth. */
  get nesting(): number {
    return this.nest;
  }

  /**
   * Queues callback `kind` with three numeric arguments, to run once after a grace period.
   * Returns Errno.OK, Errno.NOMEM when the head pool is exhausted (counted), or Errno.INVAL for a
   * kind outside 0..maxKinds-1.
   */
  call(kind: number, a0 = 0, a1 = 0, a2 = 0): number {
    if (kind >>> 0 >= this.maxKinds) return Errno.INVAL;
    const slots = this.slots;
    let h = slots[this.cacheIndex] as number;
    if (h === NIL) {
      h = this.refill();
      if (h === NIL) return Errno.NOMEM;
    }
    slots[this.cacheIndex] = this.link[h * Head.STRIDE + Head.NEXT] as number;
    this.enqueue(h, kind, a0, a1, a2);
    return Errno.OK;
  }

  /**
   * Queues callback `kind` on a head from reserveHeads() (an intrusive rcu_head: never NOMEM).
   * Returns Errno.OK, Errno.BUSY if that head is still queued, Errno.INVAL for a bad head or kind.
   * A head is idle again while its callback runs, so the callback (or another thread) may queue
   * it anew; a sliced callback whose head was queued anew must not return RCU_AGAIN (reported as a
   * callback error, and its remaining slices are dropped).
   */
  callHead(head: number, kind: number, a0 = 0, a1 = 0, a2 = 0): number {
    if (kind >>> 0 >= this.maxKinds || !(head >= this.sh.staticBase && head < this.sh.totalHeads))
      return Errno.INVAL;
    // Claim the head: two threads queueing it at once must not both link it. Pairs with the
    // engine's Atomics.store of IDLE in runOne() and its compare-exchange in again().
    const at = head * Head.STRIDE + Head.KIND;
    if (Atomics.compareExchange(this.link, at, HeadKind.IDLE, kind) !== HeadKind.IDLE) return Errno.BUSY;
    this.enqueue(head, kind, a0, a1, a2);
    return Errno.OK;
  }

  private enqueue(h: number, kind: number, a0: number, a1: number, a2: number): void {
    const at = h * Head.STRIDE;
    const ai = h * Head.ARGS;
    const args = this.args;
    this.link[at + Head.KIND] = kind;
    args[ai] = a0;
    args[ai + 1] = a1;
    args[ai + 2] = a2;
    this.slotsF64[this.queuedIndex] += 1;
    if (rcuRaceHook !== null) rcuRaceHook(RcuRacePoint.CALL_BEFORE_PUSH);
    pushCallback(this.ctl, this.link, h);
    wakeForWork(this.ctl);
  }

  private refill(): number {
    const chunk = popFreeChunk(this.sh.ctl64, this.link);
    if (chunk === NIL) this.slotsF64[this.slot * Slot.F64_STRIDE + Slot.F64_NOMEM] += 1;
    return chunk;
  }

  /** Waits for a grace period: every read-side section begun before the call has ended. */
  synchronize(): void {
    this.checkCanWait("synchronize()");
    const wasOnline = this.pauseForWait();
    try {
      this.gps.waitFor(this.gps.cookie());
    } finally {
      this.resumeAfterWait(wasOnline);
    }
  }

  /** synchronize() that gives up after `timeoutMs`: Errno.OK or Errno.TIMEDOUT. */
  trySynchronize(timeoutMs: number): number {
    this.checkCanWait("trySynchronize()");
    const wasOnline = this.pauseForWait();
    try {
      return this.gps.waitFor(this.gps.cookie(), timeoutMs);
    } finally {
      this.resumeAfterWait(wasOnline);
    }
  }

  /** Returns a cookie for pollState(); the grace period it names will be driven without help. */
  startPoll(): number {
    return this.gps.startPoll();
  }

  /** True once the grace period named by `cookie` has ended. Never blocks. */
  pollState(cookie: number): boolean {
    return cookieExpired(Atomics.load(this.ctl, Ctl.GP_COMPLETED), cookie);
  }

  /** Waits until every callback queued before this call, by any thread, has run to completion. */
  barrier(): void {
    this.checkCanWait("barrier()");
    if (inCallbackEngine)
      throw new RcuUsageError("Cannot call barrier() inside an RCU callback: it would wait for itself");
    if (Atomics.load(this.ctl, Ctl.ENGINE) === 0) {
      throw new RcuUsageError("Cannot call barrier(): no callback worker runs for this RCU domain");
    }
    const wasOnline = this.pauseForWait();
    try {
      this.runBarrier();
    } finally {
      this.resumeAfterWait(wasOnline);
    }
  }

  private runBarrier(): void {
    const { ctl, slots, link } = this;
    const marker = this.sh.markerBase + this.slot;
    const doneIndex = this.slot * Slot.STRIDE + Slot.BARRIER_DONE;
    // A marker left queued by a previous owner of this slot must complete before we reuse it.
    while (link[marker * Head.STRIDE + Head.KIND] !== HeadKind.IDLE) Atomics.wait(nap, 0, 0, 0.1);
    const target = (Atomics.load(slots, doneIndex) + 1) | 0;
    this.args[marker * Head.ARGS] = target;
    link[marker * Head.STRIDE + Head.KIND] = HeadKind.MARKER;
    Atomics.add(ctl, Ctl.URGENT, 1);
    pushCallback(ctl, link, marker);
    wakeUrgent(ctl);
    const start = performance.now();
    let nextStall = this.sh.options.stallTimeoutMs;
    for (let spins = 0; ; spins++) {
      const done = Atomics.load(slots, doneIndex);
      if (done === target) return;
      if (spins < this.sh.options.spinLimit) continue;
      // Pairs with the engine's store + notify of BARRIER_DONE when it reaches the marker.
      Atomics.wait(slots, doneIndex, done, this.sh.options.maxSleepMs);
      const engine = Atomics.load(ctl, Ctl.ENGINE) - 1;
      if (engine < 0 && Atomics.load(slots, doneIndex) !== target) {
        throw new RcuUsageError("Cannot finish barrier(): the callback worker has exited");
      }
      const ms = performance.now() - start;
      if (ms >= nextStall) {
        reportStall(ctl, StallWhat.CALLBACKS, engine, Atomics.load(ctl, Ctl.RUNNING_KIND), ms, 0);
        nextStall *= 2;
      }
    }
  }

  /** Gives the slot back. Call it before the thread exits, outside any read-side section. */
  unregister(): void {
    if (!this.registered) return;
    if (this.nest !== 0) {
      throw new RcuUsageError(
        `Cannot unregister thread ${this.threadId} inside a read-side section (nesting ${this.nest})`,
      );
    }
    this.registered = false;
    releaseSlot(this.sh, this.slot);
    // The slot may be claimed by another thread now: writes through this handle must not reach it.
    this.slots = new Int32Array(this.slots.length);
  }

  protected unregisteredUse(what: string): never {
    this.nest = 0;
    throw new RcuUsageError(`Cannot call ${what}: thread ${this.threadId} is unregistered`);
  }

  protected checkCanWait(what: string): void {
    if (this.nest !== 0) {
      throw new RcuUsageError(
        `Cannot call ${what} inside a read-side section (thread ${this.threadId}, nesting ${this.nest}): the grace period would wait for this very thread`,
      );
    }
    if (!this.registered)
      throw new RcuUsageError(`Cannot call ${what}: thread ${this.threadId} is unregistered`);
  }

  protected unbalancedUnlock(): never {
    this.nest = 0;
    throw new RcuUsageError(`readUnlock() without a matching readLock() on thread ${this.threadId}`);
  }
}
