/**
 * The callback engine: takes queued heads, waits for their grace period, runs them in batches.
 *
 * One engine runs per domain (Ctl.ENGINE names its thread), normally in the callback worker
 * (worker.ts), like liburcu's call_rcu thread. Why a dedicated thread rather than registered
 * threads at quiescent points: vCPU threads keep their fault latency free of reclaim work and their
 * quiescent-state path free of checks; callbacks need shared memory (page pools) that one thread
 * can attach once; and one consumer makes exactly-once, FIFO order and barrier() simple.
 *
 * Lists (engine-private, linked through the heads' NEXT words):
 *   queue ──splice──▶ segments [first,last,cookie]... ──cookie expired──▶ ready ──run──▶ done
 *                                                                         ▲        │ RCU_AGAIN
 *                                                                         └────────┘
 * A splice takes the whole queue, reverses it into FIFO order and stamps it with the cookie of the
 * next grace period (taken after the splice, so that period covers every head in it). Each head
 * gets a ticket (splice order); a barrier marker completes when it reaches the front of the ready
 * list and no sliced callback with an older ticket is still pending.
 *
 * Flood control (options.ts): more than highWater pending -> flood mode until below lowWater.
 * Normal mode: batches of batchLimit, and a grace period starts gpDelayMs after the first callback
 * arrived (batching). Flood mode, pending barriers or callAndWait() calls (Ctl.URGENT) and
 * shutdown: grace periods start at once (flood ones counted as forced) and batches grow to
 * max(floodBatchLimit, pending >> floodShift). Every batch also stops at batchTimeMs.
 */
import { RCU_AGAIN, type RcuCallbackContext, type RcuCallbackRegistry } from "./callbacks.js";
import { RcuUsageError } from "./errors.js";
import { completeOwnHead, doneIndex } from "./completion.js";
import { cookieExpired, GracePeriods } from "./grace-period.js";
import { FREE_CHUNK, Head, HeadKind, pushFreeChunk, takeCallbacks } from "./heads.js";
import { Ctl, NIL, Slot } from "./layout.js";
import { cooperative, RacePoint, racePoint } from "../common/race-points.js";
import type { RcuShared } from "./shared.js";
import { log2Bucket, Stat } from "./stats.js";
import { setInCallbackEngine } from "./thread-state.js";
import { Sleep } from "./wake.js";

const SEGMENTS = 32;
/** Longest idle sleep (ms): a wakeup lost anyway costs at most this. */
const IDLE_SLEEP_MS = 200;

/**
 * What a callback sees of its run. setArgs() keeps the new arguments here, not in the head: a
 * reserved head is idle while its callback runs and may be queued anew (with arguments of its
 * own) by anyone; the engine copies them into the head only once again() has claimed it back.
 */
class Context implements RcuCallbackContext {
  head = 0;
  deadline = 0;
  flooding = false;
  /** setArgs() was called during this run. */
  pending = false;
  a0 = 0;
  a1 = 0;
  a2 = 0;
  setArgs(a0: number, a1: number, a2: number): void {
    this.pending = true;
    this.a0 = a0;
    this.a1 = a1;
    this.a2 = a2;
  }
}

/**
 * Runs a domain's callbacks: at most one per domain (Ctl.ENGINE). The callback worker (worker.ts)
 * runs one; construct one yourself only to step it by hand in tests (`step()`, `idle()`), and
 * `release()` it when done. Never share one between threads.
 */
export class CallbackEngine {
  private readonly sh: RcuShared;
  private readonly ctl: Int32Array;
  private readonly link: Int32Array;
  private readonly args: Float64Array;
  private readonly stats: Float64Array;
  private readonly fns: readonly (
    | ((a0: number, a1: number, a2: number, ctx: RcuCallbackContext) => unknown)
    | undefined
  )[];
  private readonly gps: GracePeriods;
  private readonly ctx: Context;
  private readonly owner: number;
  private readonly segFirst = new Int32Array(SEGMENTS);
  private readonly segLast = new Int32Array(SEGMENTS);
  private readonly segCookie = new Int32Array(SEGMENTS);
  private segHead = 0;
  private segCount = 0;
  private readyFirst = NIL;
  private readyLast = NIL;
  /** Callbacks spliced and not yet completed (markers excluded). */
  private held = 0;
  private flood = false;
  /** When each segment's first callback arrived (ms), for the batching delay. */
  private readonly segArrival = new Float64Array(SEGMENTS);
  private readonly ticket: Float64Array;
  private readonly sliced: Uint8Array;
  private slicedCount = 0;
  private nextTicket = 0;
  private freeFirst = NIL;
  private freeCount = 0;

  /** Claims the engine role for thread `threadId`. @throws RcuUsageError if another engine runs. */
  constructor(sh: RcuShared, registry: RcuCallbackRegistry, threadId: number) {
    this.sh = sh;
    this.ctl = sh.ctl;
    this.link = sh.link;
    this.args = sh.args;
    this.stats = sh.stats;
    this.fns = registry.fns;
    this.gps = new GracePeriods(sh, threadId);
    this.ctx = new Context();
    this.ticket = new Float64Array(sh.totalHeads);
    this.sliced = new Uint8Array(sh.totalHeads);
    this.owner = threadId + 1;
    if (Atomics.compareExchange(this.ctl, Ctl.ENGINE, 0, this.owner) !== 0) {
      throw new RcuUsageError(
        `Cannot start an RCU callback engine: thread ${Atomics.load(this.ctl, Ctl.ENGINE) - 1} runs one`,
      );
    }
    registry.publishTo(sh.kinds);
  }

  /** Runs until close(): every callback queued before the shutdown has run. Then gives up the role. */
  run(): void {
    for (;;) {
      const sleepMs = this.step();
      if (sleepMs === 0) continue;
      if (Atomics.load(this.ctl, Ctl.SHUTDOWN) !== 0 && this.idle()) break;
      this.sleep(sleepMs === Number.POSITIVE_INFINITY ? Sleep.IDLE : Sleep.DELAY, sleepMs);
    }
    this.release();
  }

  /** Gives up the engine role. */
  release(): void {
    this.flushFree();
    Atomics.compareExchange(this.ctl, Ctl.ENGINE, this.owner, 0);
  }

  /** Nothing queued, waiting or ready. */
  idle(): boolean {
    return (
      this.held === 0 &&
      this.segCount === 0 &&
      this.readyFirst === NIL &&
      Atomics.load(this.ctl, Ctl.CB_TOP) === NIL
    );
  }

  /**
   * One round: splice, drive a grace period if one is due, run a batch.
   * Returns 0 to go on at once, the ms to sleep before the batching delay ends, or Infinity when idle.
   */
  step(): number {
    const now = performance.now();
    this.splice(now);
    this.updateFlood();
    this.promote();
    const ran = this.readyFirst !== NIL;
    if (ran) this.runBatch(now);
    const target = this.gpTarget();
    if (target === null) return ran ? 0 : Number.POSITIVE_INFINITY;
    const wait = this.delayLeft(now);
    if (wait > 0) return ran ? 0 : wait;
    if (this.flood) this.stats[Stat.FORCED_GPS] += 1;
    this.gps.waitFor(target);
    this.promote();
    return 0;
  }

  private sleep(mode: Sleep, ms: number): void {
    const ctl = this.ctl;
    if (cooperative) {
      // A controlled run: let another participant run instead of sleeping with the token.
      racePoint(RacePoint.WAIT_LOOP);
      return;
    }
    Atomics.store(ctl, Ctl.WORKER_SLEEP, mode);
    // Pairs with wakeForWork()/wakeUrgent(): they push or post their request before they look at
    // WORKER_SLEEP, and we look for requests after storing it.
    const work = mode === Sleep.IDLE && Atomics.load(ctl, Ctl.CB_TOP) !== NIL;
    if (!work && !this.urgent()) Atomics.wait(ctl, Ctl.WORKER_SLEEP, mode, Math.min(ms, IDLE_SLEEP_MS));
    Atomics.store(ctl, Ctl.WORKER_SLEEP, Sleep.AWAKE);
  }

  private urgent(): boolean {
    const ctl = this.ctl;
    return (
      Atomics.load(ctl, Ctl.URGENT) > 0 ||
      Atomics.load(ctl, Ctl.SHUTDOWN) !== 0 ||
      !cookieExpired(Atomics.load(ctl, Ctl.GP_COMPLETED), Atomics.load(ctl, Ctl.GP_REQUESTED))
    );
  }

  /** The cookie the engine needs next (newest segment, or a poll request), or null. */
  private gpTarget(): number | null {
    const ctl = this.ctl;
    const completed = Atomics.load(ctl, Ctl.GP_COMPLETED);
    const requested = Atomics.load(ctl, Ctl.GP_REQUESTED);
    let target: number | null = cookieExpired(completed, requested) ? null : requested;
    if (this.segCount > 0) {
      const newest = this.segCookie[(this.segHead + this.segCount - 1) % SEGMENTS] as number;
      if (target === null || cookieExpired(newest, target)) target = newest;
    }
    return target;
  }

  private delayLeft(now: number): number {
    if (this.segCount === 0 || this.flood || this.urgent()) return 0;
    return (this.segArrival[this.segHead] as number) + this.sh.options.gpDelayMs - now;
  }

  private splice(now: number): void {
    let h = takeCallbacks(this.ctl);
    if (h === NIL) return;
    racePoint(RacePoint.RCU_ENGINE_AFTER_SPLICE);
    const cookie = this.gps.cookie(); // after the take: the period it names covers every head taken
    const link = this.link;
    const last = h;
    let first = NIL;
    let count = 0;
    while (h !== NIL) {
      const next = link[h * Head.STRIDE + Head.NEXT] as number;
      link[h * Head.STRIDE + Head.NEXT] = first;
      first = h;
      if (link[h * Head.STRIDE + Head.KIND] !== HeadKind.MARKER) count++;
      h = next;
    }
    this.renumber(first);
    this.held += count;
    if (this.held > (this.stats[Stat.PENDING_PEAK] as number)) this.stats[Stat.PENDING_PEAK] = this.held;
    this.addSegment(first, last, cookie, now);
  }

  /** Gives the heads of a FIFO chain increasing tickets, after every earlier ticket. */
  private renumber(first: number): void {
    for (let h = first; h !== NIL; h = this.link[h * Head.STRIDE + Head.NEXT] as number)
      this.ticket[h] = ++this.nextTicket;
  }

  private addSegment(first: number, last: number, cookie: number, now: number): void {
    if (this.segCount > 0) {
      const tail = (this.segHead + this.segCount - 1) % SEGMENTS;
      if (this.segCookie[tail] === cookie || this.segCount === SEGMENTS) {
        // Same grace period, or no room: join the newest segment under the newer cookie (safe: later).
        this.link[(this.segLast[tail] as number) * Head.STRIDE + Head.NEXT] = first;
        this.segLast[tail] = last;
        this.segCookie[tail] = cookie;
        return;
      }
    }
    const at = (this.segHead + this.segCount) % SEGMENTS;
    this.segArrival[at] = now;
    this.segFirst[at] = first;
    this.segLast[at] = last;
    this.segCookie[at] = cookie;
    this.segCount++;
  }

  /** Moves every segment whose grace period has ended to the ready list. */
  private promote(): void {
    const completed = Atomics.load(this.ctl, Ctl.GP_COMPLETED);
    while (this.segCount > 0 && cookieExpired(completed, this.segCookie[this.segHead] as number)) {
      this.appendReady(this.segFirst[this.segHead] as number, this.segLast[this.segHead] as number);
      this.segHead = (this.segHead + 1) % SEGMENTS;
      this.segCount--;
    }
  }

  private appendReady(first: number, last: number): void {
    this.link[last * Head.STRIDE + Head.NEXT] = NIL;
    if (this.readyFirst === NIL) this.readyFirst = first;
    else this.link[this.readyLast * Head.STRIDE + Head.NEXT] = first;
    this.readyLast = last;
  }

  private updateFlood(): void {
    const o = this.sh.options;
    if (!this.flood && this.held > o.highWater) {
      this.flood = true;
      this.stats[Stat.FLOOD_ENTRIES] += 1;
      Atomics.store(this.ctl, Ctl.FLOOD, 1);
    } else if (this.flood && this.held < o.lowWater) {
      this.flood = false;
      Atomics.store(this.ctl, Ctl.FLOOD, 0);
    }
  }

  private batchLimit(): number {
    const o = this.sh.options;
    if (!this.flood && !this.urgent()) return o.batchLimit;
    return Math.max(o.floodBatchLimit, this.held >> o.floodShift);
  }

  private runBatch(start: number): void {
    const limit = this.batchLimit();
    const ctx = this.ctx;
    ctx.deadline = start + this.sh.options.batchTimeMs;
    ctx.flooding = this.flood;
    setInCallbackEngine(true);
    let t = start;
    let n = 0;
    while (this.readyFirst !== NIL && n < limit && t < ctx.deadline) {
      const h = this.readyFirst;
      this.readyFirst = this.link[h * Head.STRIDE + Head.NEXT] as number;
      if (this.readyFirst === NIL) this.readyLast = NIL;
      if (this.link[h * Head.STRIDE + Head.KIND] === HeadKind.MARKER) {
        this.reachMarker(h);
        continue;
      }
      this.runOne(h);
      const t1 = performance.now();
      const ns = (t1 - t) * 1e6;
      this.stats[Stat.CB_HIST + (ns < 2147483648 ? Math.max(0, 31 - Math.clz32(ns)) : log2Bucket(ns))] += 1;
      t = t1;
      n++;
    }
    setInCallbackEngine(false);
    this.ctl[Ctl.RUNNING_KIND] = -1;
    this.flushFree();
    this.updateFlood();
    const st = this.stats;
    if (n > (st[Stat.BATCH_MAX_N] as number)) st[Stat.BATCH_MAX_N] = n;
    if (t - start > (st[Stat.BATCH_MAX_MS] as number)) st[Stat.BATCH_MAX_MS] = t - start;
  }

  private runOne(h: number): void {
    const link = this.link;
    const at = h * Head.STRIDE;
    const kind = link[at + Head.KIND] as number;
    const ai = h * Head.ARGS;
    const args = this.args;
    // Read the call before the head goes idle: once it is idle, callHead() may refill it at once.
    const a0 = args[ai] as number;
    const a1 = args[ai + 1] as number;
    const a2 = args[ai + 2] as number;
    // A reserved head may be queued again from inside (or by another thread): pairs with the
    // compare-exchange in callHead(). A callAndWait() head stays busy until complete().
    if (h >= this.sh.staticBase) Atomics.store(link, at + Head.KIND, HeadKind.IDLE);
    this.ctl[Ctl.RUNNING_KIND] = kind; // plain: read only by stall reports
    const ctx = this.ctx;
    ctx.head = h;
    ctx.pending = false;
    racePoint(RacePoint.RCU_ENGINE_BEFORE_CALLBACK);
    let r: unknown;
    const fn = this.fns[kind];
    try {
      if (fn === undefined)
        throw new RcuUsageError(`RCU callback kind ${kind} is not defined in the callback worker`);
      r = fn(a0, a1, a2, ctx);
    } catch (e) {
      this.stats[Stat.CB_ERRORS] += 1;
      console.error(`rcu: callback kind ${kind} (head ${h}) failed:`, e);
      r = 0;
    }
    if (r === RCU_AGAIN) this.again(h, kind);
    else this.complete(h);
  }

  private again(h: number, kind: number): void {
    const at = h * Head.STRIDE + Head.KIND;
    if (
      h >= this.sh.staticBase &&
      Atomics.compareExchange(this.link, at, HeadKind.IDLE, kind) !== HeadKind.IDLE
    ) {
      // Queued anew while this slice ran: continuing would link the head twice, and its arguments
      // are the new call's now (setArgs() did not touch them).
      this.stats[Stat.CB_ERRORS] += 1;
      console.error(
        `rcu: sliced callback kind ${kind} (head ${h}) was queued again while it ran; its remaining slices are dropped`,
      );
      this.complete(h);
      return;
    }
    const ctx = this.ctx;
    if (ctx.pending) {
      // The head is ours again (claimed above, or never idle): the next slice reads these.
      const ai = h * Head.ARGS;
      this.args[ai] = ctx.a0;
      this.args[ai + 1] = ctx.a1;
      this.args[ai + 2] = ctx.a2;
    }
    if (this.sliced[h] === 0) {
      this.sliced[h] = 1;
      this.slicedCount++;
    }
    this.stats[Stat.CB_SLICES] += 1;
    this.appendReady(h, h);
  }

  private complete(h: number): void {
    if (this.sliced[h] !== 0) {
      this.sliced[h] = 0;
      this.slicedCount--;
    }
    this.held--;
    this.stats[Stat.CB_RUN] += 1;
    if (h < this.sh.markerBase) this.freeHead(h);
    else if (h < this.sh.staticBase) this.finishWaited(h);
  }

  /** A callAndWait() head completed: wake its owner (completion.ts). */
  private finishWaited(h: number): void {
    const slot = h - this.sh.waitBase;
    const target = this.link[h * Head.STRIDE + Head.AUX] as number;
    completeOwnHead(this.sh, h, doneIndex(slot, Slot.CALL_DONE), target);
  }

  private freeHead(h: number): void {
    const at = h * Head.STRIDE;
    this.link[at + Head.KIND] = HeadKind.FREE;
    this.link[at + Head.NEXT] = this.freeFirst;
    this.freeFirst = h;
    if (++this.freeCount === FREE_CHUNK) this.flushFree();
  }

  private flushFree(): void {
    if (this.freeFirst === NIL) return;
    pushFreeChunk(this.sh.ctl64, this.link, this.freeFirst);
    this.freeFirst = NIL;
    this.freeCount = 0;
  }

  /** A barrier marker reached the front: complete it unless an older sliced callback is pending. */
  private reachMarker(h: number): void {
    if (this.slicedCount > 0 && this.olderSliced(this.ticket[h] as number)) {
      this.appendReady(h, h);
      return;
    }
    const slot = h - this.sh.markerBase;
    const target = this.args[h * Head.ARGS] as number;
    this.stats[Stat.BARRIERS] += 1;
    completeOwnHead(this.sh, h, doneIndex(slot, Slot.BARRIER_DONE), target);
  }

  private olderSliced(ticket: number): boolean {
    for (let h = this.readyFirst; h !== NIL; h = this.link[h * Head.STRIDE + Head.NEXT] as number) {
      if (this.sliced[h] !== 0 && (this.ticket[h] as number) < ticket) return true;
    }
    return false;
  }
}
