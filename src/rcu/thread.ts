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
 *   grace period that began after the call. Queue only kinds the callback worker defines.
 * - callAndWait() and barrier() wait for the callback worker: never call them inside a section or a
 *   callback, nor in a domain without a callback worker (they throw RcuUsageError).
 * - Cookies from startPoll() expire on their own: the callback worker drives the grace period.
 *   Without a callback worker, take cookies with getState() and end them with synchronize() or
 *   condSynchronize().
 * - qsbr: every wait of this API (synchronize, trySynchronize, condSynchronize, barrier,
 *   callAndWait) takes the thread offline while it waits and back online after. Never wait any
 *   other way (spinning on pollState(), on a flag a callback sets) while online: the grace period
 *   you wait for waits for you. Generic code can check `isOnline`.
 */
import { Errno } from "../common/errno.js";
import { callbackWorkerLost, RcuUsageError } from "./errors.js";
import { cookieExpired, type GracePeriods } from "./grace-period.js";
import { claimOwnHead, doneIndex, waitForEngine } from "./completion.js";
import { Head, HeadKind, popFreeChunk, pushCallback } from "./heads.js";
import { Ctl, NIL, Slot } from "./layout.js";
import { RacePoint, racePoint } from "../common/race-points.js";
import { reapThread, releaseSlot } from "./registry.js";
import type { RcuShared } from "./shared.js";
import { inCallbackEngine } from "./thread-state.js";
import { wakeForWork, wakeUrgent } from "./wake.js";

/** Wakes a grace-period driver sleeping on GP_FUTEX. Slow path of readUnlock and quiescentState. */
export function wakeWriter(ctl: Int32Array): void {
  Atomics.store(ctl, Ctl.GP_FUTEX, 0);
  Atomics.notify(ctl, Ctl.GP_FUTEX);
}

/** This thread's registered handles (module state is per thread). */
const registeredHere = new Set<RcuThreadBase>();

/**
 * Tracks `t` for this thread's "exit" handler, which runs when the thread ends by itself (end of
 * script, process.exit(), an uncaught error) and gives every slot and lock it still holds back at
 * once: reaping then needs no other thread's event loop (a watcher may be blocked in synchronize()).
 * terminate() and out-of-memory run no handler; the watcher's "exit" event reaps those.
 */
function releaseOnExit(t: RcuThreadBase, on: boolean): void {
  if (!on) {
    registeredHere.delete(t);
    return;
  }
  if (registeredHere.size === 0 && !exitHandlerInstalled) {
    exitHandlerInstalled = true;
    process.on("exit", () => {
      for (const h of registeredHere) h.releaseAtExit();
    });
  }
  registeredHere.add(t);
}
let exitHandlerInstalled = false;

/**
 * What both flavors' thread handles offer; write flavor-generic code against it. Obtain one with
 * `rcu.register()`; use it only from the thread that registered it.
 */
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
  /** Defined callback kinds (RcuShared.kinds): 1 where the callback worker can run the kind. */
  private readonly kinds: Uint8Array;
  private readonly cacheIndex: number;
  private readonly queuedIndex: number;
  private readonly maxKinds: number;

  constructor(sh: RcuShared, slot: number, threadId: number, gps: GracePeriods) {
    releaseOnExit(this, true);
    this.sh = sh;
    this.threadId = threadId;
    this.slot = slot;
    this.gps = gps;
    this.ctl = sh.ctl;
    this.slots = sh.slots;
    this.slotsF64 = sh.slotsF64;
    this.link = sh.link;
    this.args = sh.args;
    this.kinds = sh.kinds;
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

  /**
   * True while grace periods may wait for this thread outside its read-side sections: qsbr between
   * online() and offline() (threads register online); mb never (false), since mb grace periods
   * wait only for sections. A thread with isOnline true must not wait for a grace period, a
   * cookie or a callback except through this API's own waits, which go offline for it.
   */
  abstract get isOnline(): boolean;

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
   * kind the callback worker does not define (outside 0..maxKinds-1, or no callback worker).
   * @throws RcuUsageError after unregister().
   */
  call(kind: number, a0 = 0, a1 = 0, a2 = 0): number {
    // Plain load of the kinds map: published before any caller can hold the domain (callbacks.ts).
    if (kind >>> 0 >= this.maxKinds || this.kinds[kind] !== 1) return Errno.INVAL;
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
   * Returns Errno.OK, Errno.BUSY if that head is still queued, Errno.INVAL for a bad head or a kind
   * the callback worker does not define. @throws RcuUsageError after unregister().
   * A head is idle again while its callback runs, so the callback (or another thread) may queue
   * it anew; a sliced callback whose head was queued anew must not return RCU_AGAIN (reported as a
   * callback error, and its remaining slices are dropped).
   */
  callHead(head: number, kind: number, a0 = 0, a1 = 0, a2 = 0): number {
    if (!this.registered) this.unregisteredUse("callHead()");
    if (kind >>> 0 >= this.maxKinds || this.kinds[kind] !== 1) return Errno.INVAL;
    if (!(head >= this.sh.staticBase && head < this.sh.totalHeads)) return Errno.INVAL;
    // Claim the head: two threads queueing it at once must not both link it. Pairs with the
    // engine's Atomics.store of IDLE in runOne() and its compare-exchange in again().
    const at = head * Head.STRIDE + Head.KIND;
    if (Atomics.compareExchange(this.link, at, HeadKind.IDLE, kind) !== HeadKind.IDLE) return Errno.BUSY;
    this.enqueue(head, kind, a0, a1, a2);
    return Errno.OK;
  }

  /**
   * Queues callback `kind` like call(), then waits until it has run to completion (its last slice,
   * if it returns RCU_AGAIN), whether it returned or threw (a throw counts in stats().errors). The
   * callback worker skips its batching delay for it. qsbr: the thread is offline while it waits.
   * Returns Errno.OK, or Errno.INVAL for a kind the callback worker does not define. Never NOMEM:
   * each reader slot owns one head for this.
   * @throws RcuUsageError inside a read-side section or a callback, after unregister(), in a domain
   *   without a callback worker, or if the callback worker exits before the callback has run;
   *   RcuCallbackWorkerLostError once the callback worker has died (before or during the wait).
   */
  callAndWait(kind: number, a0 = 0, a1 = 0, a2 = 0): number {
    if (kind >>> 0 >= this.maxKinds || this.kinds[kind] !== 1) {
      if (Atomics.load(this.ctl, Ctl.ENGINE_LOST) !== 0) throw callbackWorkerLost("call callAndWait()");
      return Errno.INVAL;
    }
    this.checkCanWaitForEngine("callAndWait()");
    const head = this.sh.waitBase + this.slot;
    const done = doneIndex(this.slot, Slot.CALL_DONE);
    const wasOnline = this.pauseForWait();
    try {
      const target = claimOwnHead(this.sh, head, done, "callAndWait()");
      this.link[head * Head.STRIDE + Head.AUX] = target; // published by the push's CAS
      // Pairs with the engine's Atomics.sub in completeOwnHead(): no batching delay meanwhile.
      Atomics.add(this.ctl, Ctl.URGENT, 1);
      this.enqueue(head, kind, a0, a1, a2);
      wakeUrgent(this.ctl);
      waitForEngine(this.sh, done, target, "callAndWait()");
    } finally {
      this.resumeAfterWait(wasOnline);
    }
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
    racePoint(RacePoint.RCU_CALL_BEFORE_PUSH);
    pushCallback(this.ctl, this.link, h);
    wakeForWork(this.ctl);
  }

  /** Slow path of call(): the private cache is empty (always so after unregister()). */
  private refill(): number {
    if (!this.registered) this.unregisteredUse("call()");
    const chunk = popFreeChunk(this.sh.ctl64, this.link);
    if (chunk === NIL) this.slotsF64[this.slot * Slot.F64_STRIDE + Slot.F64_NOMEM] += 1;
    return chunk;
  }

  /**
   * Waits for a grace period: every read-side section begun before the call has ended.
   * @throws RcuUsageError inside a read-side section or after unregister().
   */
  synchronize(): void {
    this.checkCanWait("synchronize()");
    const wasOnline = this.pauseForWait();
    try {
      this.gps.waitFor(this.gps.cookie());
    } finally {
      this.resumeAfterWait(wasOnline);
    }
  }

  /**
   * synchronize() that gives up after `timeoutMs`: returns Errno.OK or Errno.TIMEDOUT.
   * @throws RcuUsageError inside a read-side section or after unregister().
   */
  trySynchronize(timeoutMs: number): number {
    this.checkCanWait("trySynchronize()");
    const wasOnline = this.pauseForWait();
    try {
      return this.gps.waitFor(this.gps.cookie(), timeoutMs);
    } finally {
      this.resumeAfterWait(wasOnline);
    }
  }

  /**
   * Returns a cookie for pollState() and asks the callback worker to drive the grace period it
   * names, so that it expires with nobody calling synchronize().
   * @throws RcuUsageError in a domain without a callback worker: use getState() there;
   *   RcuCallbackWorkerLostError once the callback worker has died.
   */
  startPoll(): number {
    return this.gps.startPoll();
  }

  /**
   * Returns a cookie for pollState() and condSynchronize() naming the next grace period, without
   * asking anybody to drive it (Linux get_state_synchronize_rcu()): it expires once some thread's
   * synchronize() or the callback worker has run that period.
   */
  getState(): number {
    return this.gps.cookie();
  }

  /**
   * True once the grace period named by `cookie` has ended. Never blocks. qsbr: an online thread
   * that polls in a loop must report quiescent states between polls, or use condSynchronize().
   */
  pollState(cookie: number): boolean {
    return cookieExpired(Atomics.load(this.ctl, Ctl.GP_COMPLETED), cookie);
  }

  /**
   * Waits until the grace period named by `cookie` has ended; returns at once if it has (Linux
   * cond_synchronize_rcu()). qsbr: the thread is offline while it waits.
   * @throws RcuUsageError inside a read-side section or after unregister().
   */
  condSynchronize(cookie: number): void {
    if (this.pollState(cookie)) return;
    this.checkCanWait("condSynchronize()");
    const wasOnline = this.pauseForWait();
    try {
      this.gps.waitFor(cookie);
    } finally {
      this.resumeAfterWait(wasOnline);
    }
  }

  /**
   * Waits until every callback queued before this call, by any thread, has run to completion.
   * qsbr: the thread is offline while it waits.
   * @throws RcuUsageError inside a read-side section or a callback, after unregister(), in a domain
   *   without a callback worker, or if the callback worker exits first; RcuCallbackWorkerLostError
   *   once the callback worker has died (before or during the wait).
   */
  barrier(): void {
    this.checkCanWaitForEngine("barrier()");
    const { ctl, link } = this;
    const marker = this.sh.markerBase + this.slot;
    const done = doneIndex(this.slot, Slot.BARRIER_DONE);
    const wasOnline = this.pauseForWait();
    try {
      const target = claimOwnHead(this.sh, marker, done, "barrier()");
      this.args[marker * Head.ARGS] = target;
      link[marker * Head.STRIDE + Head.KIND] = HeadKind.MARKER;
      // Pairs with the engine's Atomics.sub in completeOwnHead(): no batching delay meanwhile.
      Atomics.add(ctl, Ctl.URGENT, 1);
      pushCallback(ctl, link, marker);
      wakeUrgent(ctl);
      waitForEngine(this.sh, done, target, "barrier()");
    } finally {
      this.resumeAfterWait(wasOnline);
    }
  }

  /**
   * Gives the slot back. Call it before the thread exits, outside any read-side section; afterwards
   * every call on this handle that would touch shared state throws RcuUsageError.
   */
  unregister(): void {
    if (!this.registered) return;
    if (this.nest !== 0) {
      throw new RcuUsageError(
        `Cannot unregister thread ${this.threadId} inside a read-side section (nesting ${this.nest})`,
      );
    }
    this.registered = false;
    releaseOnExit(this, false);
    releaseSlot(this.sh, this.slot);
    // The slot may be claimed by another thread now: writes through this handle must not reach it.
    // The dummy's cache is empty, so call() takes its slow path (refill), which throws.
    const dummy = new Int32Array(this.slots.length);
    dummy[this.cacheIndex] = NIL;
    this.slots = dummy;
  }

  /** @internal This thread is exiting: release whatever it holds (see releaseOnExit). */
  releaseAtExit(): void {
    if (this.registered) reapThread(this.sh, this.threadId);
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

  private checkCanWaitForEngine(what: string): void {
    this.checkCanWait(what);
    if (inCallbackEngine)
      throw new RcuUsageError(`Cannot call ${what} inside an RCU callback: it would wait for itself`);
    if (Atomics.load(this.ctl, Ctl.ENGINE) === 0) {
      if (Atomics.load(this.ctl, Ctl.ENGINE_LOST) !== 0) throw callbackWorkerLost(`call ${what}`);
      throw new RcuUsageError(`Cannot call ${what}: no callback worker runs for this RCU domain`);
    }
  }

  protected unbalancedUnlock(): never {
    this.nest = 0;
    throw new RcuUsageError(`readUnlock() without a matching readLock() on thread ${this.threadId}`);
  }
}
