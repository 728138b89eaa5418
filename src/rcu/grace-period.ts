/**
 * Grace periods: sequence numbers, sharing, and the two flavors' waits for readers.
 *
 * Sequence. GP_STARTED and GP_COMPLETED count grace periods (Int32, compared wrap-safe). A grace
 * period runs under GP_LOCK: its driver stores GP_STARTED = s, waits for readers, then stores
 * GP_COMPLETED = s. A caller that needs a grace period takes the cookie `GP_STARTED + 1` (after a
 * full fence, so that all its earlier stores, atomic or not, precede the snapshot): the period that
 * starts next scans readers only after that snapshot, so it covers the caller's updates. The
 * cookie has expired once GP_COMPLETED >= cookie. This is all polling needs.
 *
 * Sharing. Callers that find the lock taken wait (spin, then Atomics.wait on GP_COMPLETED); when
 * the period in flight ends, one of them drives the next one for all. N concurrent callers cost at
 * most two grace periods, like liburcu's queued synchronize_rcu.
 *
 * A driver that dies (or times out) mid-period leaves GP_STARTED ahead of GP_COMPLETED; the next
 * driver starts period STARTED + 1 and stores COMPLETED = STARTED + 1, which satisfies every cookie
 * handed out meanwhile. Its lock is released by `reapThread()` in the parent.
 *
 * mb wait (liburcu's memb/mb algorithm): GP_CTR holds a phase bit. A reader's outermost readLock
 * copies GP_CTR into its slot; readUnlock stores 0. The driver (1) waits until no reader is active
 * in the other phase (one that read GP_CTR before an earlier flip and published it late), (2) flips
 * the phase, (3) waits until no reader is active in the old phase. One flip is not enough: a reader
 * delayed between reading GP_CTR and storing it can look "current" after two flips.
 *
 * qsbr wait: GP_CTR is a counter. The driver advances it by 2 and waits until every online slot
 * holds the new value (the thread passed a quiescent state) or 0 (offline).
 *
 * Waiting on a reader spins `spinLimit` loads, then sleeps on GP_FUTEX with growing timeouts up to
 * `maxSleepMs`; a reader leaving its section (mb: the driver marked its slot MB_WAKE) or reporting a
 * quiescent state (qsbr: it notices GP_FUTEX = -1) wakes the driver. A reader that blocks for `stallTimeoutMs` is reported (stall.ts), again at
 * doubling intervals, and the wait goes on.
 */
import { Errno } from "../common/errno.js";
import { callbackWorkerLost, RcuUsageError } from "./errors.js";
import { Ctl, MB_PHASE, MB_WAKE, QSBR_STEP, Slot, StallWhat } from "./layout.js";
import { cooperative, RacePoint, racePoint } from "../common/race-points.js";
import type { RcuShared } from "./shared.js";
import { deliverStalls, reportStall } from "./stall.js";
import { recordMs, Stat } from "./stats.js";
import { wakeUrgent } from "./wake.js";

const enum Block {
  /** mb, first wait: active readers whose phase differs from `value`. */
  MB_OTHER_PHASE = 0,
  /** mb, second wait: active readers in phase `value` (the old one). */
  MB_PHASE = 1,
  /** qsbr: online readers whose counter is not `value`. */
  QSBR = 2,
}

function blocks(mode: Block, v: number, value: number): boolean {
  if (v === 0) return false;
  if (mode === Block.MB_OTHER_PHASE) return (v & MB_PHASE) !== value;
  if (mode === Block.MB_PHASE) return (v & MB_PHASE) === value;
  return v !== value;
}

/** Wrap-safe: has grace period `completed` reached `cookie`? */
export function cookieExpired(completed: number, cookie: number): boolean {
  return ((completed - cookie) | 0) >= 0;
}

export class GracePeriods {
  private readonly sh: RcuShared;
  private readonly ctl: Int32Array;
  private readonly slots: Int32Array;
  private readonly qsbr: boolean;
  /** worker_threads threadId + 1 of this thread: the GP_LOCK value when it drives. */
  private readonly lockId: number;
  /** Per driven period: start time, next stall report, deadline (ms, performance.now()). */
  private t0 = 0;
  private nextStallMs = 0;
  private deadline = Number.POSITIVE_INFINITY;
  private gp = 0;

  constructor(sh: RcuShared, threadId: number) {
    this.sh = sh;
    this.ctl = sh.ctl;
    this.slots = sh.slots;
    this.qsbr = sh.options.flavor === "qsbr";
    this.lockId = threadId + 1;
  }

  /** Cookie of the next grace period to start. Full fence first (pairs with the driver's STARTED store). */
  cookie(): number {
    return (Atomics.add(this.ctl, Ctl.GP_STARTED, 0) + 1) | 0;
  }

  expired(cookie: number): boolean {
    return cookieExpired(Atomics.load(this.ctl, Ctl.GP_COMPLETED), cookie);
  }

  /**
   * startPoll(): a cookie, and the callback engine told to drive that period if nobody else does.
   * @throws RcuUsageError when no engine runs: nobody would drive the period.
   */
  startPoll(): number {
    const ctl = this.ctl;
    if (Atomics.load(ctl, Ctl.ENGINE) === 0) {
      if (Atomics.load(ctl, Ctl.ENGINE_LOST) !== 0) throw callbackWorkerLost("call startPoll()");
      throw new RcuUsageError(
        "Cannot call startPoll(): no callback worker runs for this RCU domain to drive the grace period; take a cookie with getState() and let synchronize() or condSynchronize() end it",
      );
    }
    const cookie = this.cookie();
    for (;;) {
      const req = Atomics.load(ctl, Ctl.GP_REQUESTED);
      if (cookieExpired(req, cookie)) return cookie;
      if (Atomics.compareExchange(ctl, Ctl.GP_REQUESTED, req, cookie) === req) break;
    }
    wakeUrgent(ctl);
    return cookie;
  }

  /**
   * Returns once grace period `cookie` has completed: drives it when the lock is free, else waits
   * for the driver. Errno.TIMEDOUT if `timeoutMs` passes first (the wait is abandoned cleanly).
   */
  waitFor(cookie: number, timeoutMs = Number.POSITIVE_INFINITY): number {
    const ctl = this.ctl;
    const start = performance.now();
    const deadline = start + timeoutMs;
    let spins = 0;
    let nextStall = this.sh.options.stallTimeoutMs;
    let stallsSeen = Atomics.load(ctl, Ctl.STALLS);
    for (;;) {
      if (this.expired(cookie)) return Errno.OK;
      racePoint(RacePoint.WAIT_LOOP);
      if (
        Atomics.load(ctl, Ctl.GP_LOCK) === 0 &&
        Atomics.compareExchange(ctl, Ctl.GP_LOCK, 0, this.lockId) === 0
      ) {
        const r = this.expired(cookie) ? Errno.OK : this.drive(deadline);
        this.unlock();
        if (r !== Errno.OK) return r;
        continue;
      }
      if (spins < this.sh.options.spinLimit) {
        spins++;
        continue;
      }
      this.sleepOnCompleted(cookie);
      deliverStalls(ctl);
      const now = performance.now();
      if (now >= deadline) return Errno.TIMEDOUT;
      if (now - start >= nextStall) {
        // Silence is the failure to avoid: report only if the driver itself reported nothing.
        const stalls = Atomics.load(ctl, Ctl.STALLS);
        const holder = Atomics.load(ctl, Ctl.GP_LOCK) - 1;
        if (stalls === stallsSeen && holder >= 0) {
          reportStall(ctl, StallWhat.GP_HOLDER, holder, -1, now - start, Atomics.load(ctl, Ctl.GP_STARTED));
        }
        stallsSeen = Atomics.load(ctl, Ctl.STALLS);
        nextStall *= 2;
      }
    }
  }

  private sleepOnCompleted(cookie: number): void {
    const ctl = this.ctl;
    const seen = Atomics.load(ctl, Ctl.GP_COMPLETED);
    // Pairs with unlock(): the driver loads GP_WAITERS after its COMPLETED/LOCK stores.
    Atomics.add(ctl, Ctl.GP_WAITERS, 1);
    if (!cooperative && !cookieExpired(seen, cookie) && Atomics.load(ctl, Ctl.GP_LOCK) !== 0) {
      Atomics.wait(ctl, Ctl.GP_COMPLETED, seen, this.sh.options.maxSleepMs);
    }
    Atomics.sub(ctl, Ctl.GP_WAITERS, 1);
  }

  private unlock(): void {
    const ctl = this.ctl;
    Atomics.store(ctl, Ctl.GP_LOCK, 0);
    if (Atomics.load(ctl, Ctl.GP_WAITERS) > 0) Atomics.notify(ctl, Ctl.GP_COMPLETED);
  }

  /** Runs one grace period. The caller holds GP_LOCK. */
  private drive(deadline: number): number {
    const ctl = this.ctl;
    this.t0 = performance.now();
    this.deadline = deadline;
    this.nextStallMs = this.sh.options.stallTimeoutMs;
    this.gp = (Atomics.load(ctl, Ctl.GP_STARTED) + 1) | 0;
    // SC store: pairs with cookie()'s fenced load. Readers scanned below are scanned after it.
    Atomics.store(ctl, Ctl.GP_STARTED, this.gp);
    racePoint(RacePoint.RCU_GP_STARTED);
    const r = this.qsbr ? this.waitQsbr() : this.waitMb();
    if (r !== Errno.OK) return r;
    racePoint(RacePoint.RCU_GP_BEFORE_COMPLETE);
    // SC store: pairs with expired()/pollState() loads; the readers' exits we saw precede it.
    Atomics.store(ctl, Ctl.GP_COMPLETED, this.gp);
    this.retireRequest(this.gp);
    this.account(performance.now() - this.t0);
    return Errno.OK;
  }

  /**
   * Moves GP_REQUESTED up to `completed` unless it asks for a later period. Without it the word
   * moves only when someone polls; once COMPLETED runs 2^31 ahead of it, the wrap-safe comparison
   * reads the stale request as pending (the engine drives periods back to back) and startPoll()
   * reads a new cookie as requested already (nobody drives it). Kept this close, the two words
   * never drift apart by 2^31. A CAS lost to startPoll() leaves its newer request in place.
   */
  private retireRequest(completed: number): void {
    const ctl = this.ctl;
    for (;;) {
      const req = Atomics.load(ctl, Ctl.GP_REQUESTED);
      if (!cookieExpired(completed, req) || req === completed) return;
      // Pairs with startPoll()'s CAS: whichever wins, the later request survives.
      if (Atomics.compareExchange(ctl, Ctl.GP_REQUESTED, req, completed) === req) return;
    }
  }

  private waitMb(): number {
    const ctl = this.ctl;
    const ctr = ctl[Ctl.GP_CTR] as number; // only lock holders write it
    const phase = ctr & MB_PHASE;
    let r = this.waitSlots(Block.MB_OTHER_PHASE, phase);
    if (r !== Errno.OK) return r;
    racePoint(RacePoint.RCU_GP_BEFORE_FLIP);
    // SC store (full fence): readers that load GP_CTR after it publish the new phase.
    Atomics.store(ctl, Ctl.GP_CTR, ctr ^ MB_PHASE);
    r = this.waitSlots(Block.MB_PHASE, phase);
    return r;
  }

  private waitQsbr(): number {
    const ctl = this.ctl;
    const next = ((ctl[Ctl.GP_CTR] as number) + QSBR_STEP) | 0; // stays odd, never 0
    // SC store: pairs with quiescentState()/online() reading GP_CTR.
    Atomics.store(ctl, Ctl.GP_CTR, next);
    return this.waitSlots(Block.QSBR, next);
  }

  private waitSlots(mode: Block, value: number): number {
    const slots = this.slots;
    const hwm = this.sh.slotHwm();
    for (let s = 0; s < hwm; s++) {
      const i = s * Slot.STRIDE;
      // Pairs with the reader's slot stores (readLock/readUnlock, quiescentState, offline).
      if (!blocks(mode, Atomics.load(slots, i), value)) continue;
      const r = this.waitSlot(mode, value, s);
      if (r !== Errno.OK) return r;
    }
    return Errno.OK;
  }

  private waitSlot(mode: Block, value: number, s: number): number {
    const ctl = this.ctl;
    const slots = this.slots;
    const i = s * Slot.STRIDE;
    const opts = this.sh.options;
    for (let spin = 0; spin < opts.spinLimit; spin++) {
      if (!blocks(mode, Atomics.load(slots, i), value)) return Errno.OK;
      racePoint(RacePoint.WAIT_LOOP);
    }
    let sleepMs = opts.maxSleepMs / 16;
    for (;;) {
      // qsbr: pairs with the reader's GP_FUTEX load after its slot store (qsbr.ts).
      Atomics.store(ctl, Ctl.GP_FUTEX, -1);
      const v = Atomics.load(slots, i);
      if (!blocks(mode, v, value)) break;
      racePoint(RacePoint.WAIT_LOOP);
      // mb: pairs with the reader's unlock exchange. A failed mark means the slot changed: look again.
      if (!this.qsbr && Atomics.compareExchange(slots, i, v, v | MB_WAKE) !== v) continue;
      if (!cooperative) Atomics.wait(ctl, Ctl.GP_FUTEX, -1, sleepMs);
      if (!blocks(mode, Atomics.load(slots, i), value)) break;
      sleepMs = Math.min(sleepMs * 2, opts.maxSleepMs);
      deliverStalls(ctl);
      const now = performance.now();
      if (now >= this.deadline) {
        Atomics.store(ctl, Ctl.GP_FUTEX, 0);
        return Errno.TIMEDOUT;
      }
      if (now - this.t0 >= this.nextStallMs) this.stalled(s, now - this.t0);
    }
    Atomics.store(ctl, Ctl.GP_FUTEX, 0);
    return Errno.OK;
  }

  private stalled(s: number, ms: number): void {
    const owner = Atomics.load(this.slots, s * Slot.STRIDE + Slot.OWNER) - 1;
    const what = this.qsbr ? StallWhat.QUIESCENT : StallWhat.READER;
    reportStall(this.ctl, what, owner, s, ms, this.gp);
    this.nextStallMs *= 2;
  }

  private account(ms: number): void {
    const st = this.sh.stats;
    st[Stat.GP_COUNT] += 1;
    st[Stat.GP_SUM_MS] += ms;
    if (ms > (st[Stat.GP_MAX_MS] as number)) st[Stat.GP_MAX_MS] = ms;
    recordMs(st, Stat.GP_HIST, ms);
  }
}
