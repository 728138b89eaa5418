/**
 * The one injection-point registry: labelled points in every layer (page table, reclaim, fault
 * handler, RCU, lock waits, allocators) where a run can widen a race window, fail an operation on
 * purpose, or hand control to a scheduler.
 *
 * Code marks a point with `racePoint(RacePoint.X)` (a window, or a wait loop) or
 * `shouldFail(RacePoint.X)` (an operation that can fail with ENOMEM). When nothing is configured in
 * a thread, both are one load of a module variable and a well-predicted branch.
 *
 * Three kinds of injection share the points, set per thread (module variables are thread-local in
 * worker_threads):
 * - seeded delays: `setRaceDelays()` spins a pseudo-random number of iterations at chosen points;
 * - injected failures: `setFailureRates()` makes `shouldFail()` answer true at a chosen rate;
 * - a hook: `setRaceHook()` runs a function at every point this thread passes, before any delay.
 *   Deterministic race tests stop a thread inside a window with it, and the controlled scheduler
 *   (`src/sync/controlled.ts`) uses it to let one thread run at a time.
 *
 * Every draw comes from one xorshift32 stream per thread, seeded by the caller, so that a run
 * replays from its seed.
 */
import { XORSHIFT_ZERO_SEED, xorshift32, xorshiftSeed } from "./rng.js";

/** The labelled points. Windows first, then wait loops, then failure points. */
export const enum RacePoint {
  /** A walker has just entered a table page (it holds a pointer that may be unlinked now). */
  WALK_TABLE_ENTERED = 0,
  /** Between the break (locked marker) and the make of break-before-make. */
  BBM_LOCKED = 1,
  /** An unlinked subtree is about to be handed to the reclaim strategy (between unlink and free). */
  RECLAIM_UNLINKED = 2,
  /** A reclaim callback is about to free pages. */
  RECLAIM_FREE = 3,
  /** A fault has read its memslot (logging state, mapping size) and not yet taken mmu_lock. */
  FAULT_SLOT_READ = 4,
  /** A descriptor is about to be compare-and-swapped (another thread may change it first). */
  BEFORE_CAS = 5,
  /** RCU mb readLock: between reading GP_CTR and publishing it in the reader's slot. */
  RCU_READER_LOCK_GAP = 6,
  /** RCU grace period: GP_STARTED advanced, no reader looked at yet. */
  RCU_GP_STARTED = 7,
  /** RCU mb grace period: first wait done, phase not yet flipped. */
  RCU_GP_BEFORE_FLIP = 8,
  /** RCU grace period: readers drained, GP_COMPLETED not yet advanced. */
  RCU_GP_BEFORE_COMPLETE = 9,
  /** RCU call(): head filled in, not yet pushed on the callback queue. */
  RCU_CALL_BEFORE_PUSH = 10,
  /** RCU callback engine: a batch was just spliced off the queue, its cookie not yet taken. */
  RCU_ENGINE_AFTER_SPLICE = 11,
  /** RCU callback engine: about to run one callback. */
  RCU_ENGINE_BEFORE_CALLBACK = 12,
  /** RCU qsbr quiescentState: between reading GP_CTR and storing it. */
  RCU_QSBR_QS_GAP = 13,
  /** RCU callback engine, completing a barrier marker or callAndWait() head: DONE published, head not yet idle. */
  RCU_ENGINE_OWN_HEAD_GAP = 14,
  /** A workload thread has finished one operation and not begun the next (the host's op loop). */
  OP_GAP = 15,
  /**
   * A thread is waiting for another one (a lock, a TLBI acknowledgement, a grace period). It
   * passes this point on every round of its wait loop: a controlled scheduler must then run
   * another thread, or the wait never ends.
   */
  WAIT_LOOP = 16,
  /** Failure point: the page allocator is about to hand out a page. */
  ALLOC_PAGE = 17,
  /** Failure point: a memory cache top-up is about to take pages from the allocator. */
  MEMCACHE_TOPUP = 18,
  /**
   * A TLBI poster is draining an idle vCPU's ring for it and holds that vCPU's STATE. For death
   * hooks: the controlled scheduler takes no decision here (nor do race delays, unless set).
   */
  TLBI_SERVICING = 19,
  COUNT = 20,
}

/** Printable names of the points, indexed by RacePoint (for reports and command lines). */
export const RACE_POINT_NAMES: readonly string[] = [
  "walk.table-entered",
  "bbm.locked",
  "reclaim.unlinked",
  "reclaim.free",
  "fault.slot-read",
  "pte.before-cas",
  "rcu.reader-lock-gap",
  "rcu.gp-started",
  "rcu.gp-before-flip",
  "rcu.gp-before-complete",
  "rcu.call-before-push",
  "rcu.engine-after-splice",
  "rcu.engine-before-callback",
  "rcu.qsbr-qs-gap",
  "rcu.engine-own-head-gap",
  "op.gap",
  "wait.loop",
  "alloc.page",
  "memcache.topup",
  "tlbi.servicing",
];

/** The points where `shouldFail()` may inject a failure (ENOMEM). */
export const FAILURE_POINTS: readonly RacePoint[] = [RacePoint.ALLOC_PAGE, RacePoint.MEMCACHE_TOPUP];

/** Whether any delay or hook is set in this thread (racePoint() returns at once when not). */
export let raceDelayEnabled = false;
/**
 * True while a controlled scheduler runs this thread (`setCooperative`): a wait loop then only
 * passes `RacePoint.WAIT_LOOP`, where the scheduler runs another thread, and skips its timed
 * `Atomics.wait`. Sleeping would keep the token: the thread it waits for could not run meanwhile.
 */
export let cooperative = false;

/** Sets `cooperative` for this thread (the controlled scheduler, on joining and on leaving a run). */
export function setCooperative(on: boolean): void {
  cooperative = on;
}

/** Whether any failure rate is set in this thread (shouldFail() answers false at once when not). */
export let failureEnabled = false;

const maxSpins = new Int32Array(RacePoint.COUNT);
/** Failure probability per point, scaled to 2^32 (0 = never). */
const failThreshold = new Float64Array(RacePoint.COUNT);
/** Per point: delays taken (spins > 0) and failures injected, in this thread. */
const delayCount = new Float64Array(RacePoint.COUNT);
const failCount = new Float64Array(RacePoint.COUNT);
let rng = XORSHIFT_ZERO_SEED;
let sink = 0;

/** A function run at every point this thread passes (deterministic race tests, the controlled scheduler). */
export type RaceHook = (point: RacePoint) => void;
let hook: RaceHook | null = null;

function refresh(): void {
  raceDelayEnabled = hook !== null || maxSpins.some((v) => v > 0);
  failureEnabled = failThreshold.some((v) => v > 0);
}

/** Enables delays of up to `spins[point]` iterations at each point, drawn from `seed`. */
export function setRaceDelays(spins: Partial<Record<RacePoint, number>>, seed: number): void {
  maxSpins.fill(0);
  for (const [k, v] of Object.entries(spins)) maxSpins[Number(k)] = v ?? 0;
  rng = xorshiftSeed(seed);
  refresh();
}

/** Disables every delay in this thread (a hook stays). */
export function clearRaceDelays(): void {
  maxSpins.fill(0);
  refresh();
}

/**
 * Makes `shouldFail(point)` answer true with probability `rates[point]` (0..1) at each failure
 * point named, drawn from `seed`. Throws RangeError for a point that is not a failure point or a
 * rate outside [0, 1].
 */
export function setFailureRates(rates: Partial<Record<RacePoint, number>>, seed: number): void {
  failThreshold.fill(0);
  for (const [k, v] of Object.entries(rates)) {
    const p = Number(k) as RacePoint;
    const rate = v ?? 0;
    if (!FAILURE_POINTS.includes(p))
      throw new RangeError(`${RACE_POINT_NAMES[p] ?? k} is not a failure point`);
    if (!(rate >= 0 && rate <= 1)) throw new RangeError(`failure rate ${rate} is outside [0, 1]`);
    failThreshold[p] = rate * 2 ** 32;
  }
  rng = xorshiftSeed(seed);
  refresh();
}

/** Disables every injected failure in this thread. */
export function clearFailures(): void {
  failThreshold.fill(0);
  refresh();
}

/**
 * Installs (or with null removes) this thread's hook. A deterministic test uses it to stop a
 * thread inside a window and let another thread act there; the controlled scheduler uses it to
 * decide which thread runs next.
 */
export function setRaceHook(h: RaceHook | null): void {
  hook = h;
  refresh();
}

/** This thread's hook, or null (so that a wrapper can chain to the one it replaces). */
export function raceHook(): RaceHook | null {
  return hook;
}

function next(): number {
  rng = xorshift32(rng);
  return rng >>> 0;
}

/** Marks a point: runs the hook, then spins if delays are enabled for it. */
export function racePoint(point: RacePoint): void {
  if (!raceDelayEnabled) return;
  if (hook !== null) hook(point);
  const max = maxSpins[point] as number;
  if (max <= 0) return;
  const n = next() % (max + 1);
  if (n > 0) (delayCount[point] as number)++;
  for (let i = 0; i < n; i++) sink = (sink + i) | 0;
  if (sink === 0x7fffffff) rng++; // keeps the loop observable to the optimizer
}

/**
 * Marks a failure point: true when this operation must fail (the caller takes its ENOMEM path and
 * gives back what it took). Runs the hook first, like racePoint().
 */
export function shouldFail(point: RacePoint): boolean {
  if (raceDelayEnabled && hook !== null) hook(point);
  if (!failureEnabled) return false;
  const t = failThreshold[point] as number;
  if (t <= 0 || next() >= t) return false;
  (failCount[point] as number)++;
  return true;
}

/** What this thread injected so far, by point name (only points with a non-zero count). */
export function injectedCounts(): { delays: Record<string, number>; failures: Record<string, number> } {
  const delays: Record<string, number> = {};
  const failures: Record<string, number> = {};
  for (let p = 0; p < RacePoint.COUNT; p++) {
    const name = RACE_POINT_NAMES[p] as string;
    if ((delayCount[p] as number) > 0) delays[name] = delayCount[p] as number;
    if ((failCount[p] as number) > 0) failures[name] = failCount[p] as number;
  }
  return { delays, failures };
}

/** Zeroes this thread's injected counts. */
export function resetInjectedCounts(): void {
  delayCount.fill(0);
  failCount.fill(0);
}

/** Looks a point up by its printable name (RangeError naming the known ones when unknown). */
export function racePointByName(name: string): RacePoint {
  const idx = RACE_POINT_NAMES.indexOf(name.trim());
  if (idx < 0) throw new RangeError(`Unknown race point "${name}": use ${RACE_POINT_NAMES.join(", ")}`);
  return idx as RacePoint;
}

/** Parses "walk.table-entered=2000,bbm.locked=500" into a spins map (throws RangeError on unknown names). */
export function parseRaceDelays(text: string): Partial<Record<RacePoint, number>> {
  const out: Partial<Record<RacePoint, number>> = {};
  for (const part of text.split(",").filter((p) => p.trim() !== "")) {
    const [name, value] = part.split("=");
    const idx = racePointByName(name ?? "");
    const spins = Number(value);
    if (!Number.isInteger(spins) || spins < 0)
      throw new RangeError(`Race point ${name}: "${value}" is not a spin count`);
    out[idx] = spins;
  }
  return out;
}

/**
 * A hook that spins a pseudo-random number of iterations (up to `limits[point]`) at each point,
 * with its own xorshift32 stream from `seed`: for a thread that wants delays and a hook of its own.
 */
export function spinningRaceHook(limits: Partial<Record<RacePoint, number>>, seed: number): RaceHook {
  const lim = new Int32Array(RacePoint.COUNT);
  for (const [k, v] of Object.entries(limits)) lim[Number(k)] = v ?? 0;
  let state = xorshiftSeed(seed);
  let s = 0;
  return (point) => {
    const max = lim[point] as number;
    if (max <= 0) return;
    state = xorshift32(state);
    const n = (state >>> 0) % (max + 1);
    for (let i = 0; i < n; i++) s = (s + i) | 0;
    if (s === 0x7fffffff) state++;
  };
}
