/**
 * Named race points of the RCU layer, where a torture run injects delays to widen race windows.
 *
 * Code calls `if (rcuRaceHook !== null) rcuRaceHook(RcuRacePoint.X)` at the labelled spot: one load
 * of a module variable and a well-predicted branch when no hook is installed. Hooks are per thread
 * (module variables are thread-local in worker_threads); install one in each thread to torture.
 */
import { xorshift32, xorshiftSeed } from "../common/rng.js";

/** Labelled race points inside the RCU (see `setRcuRaceHook`). */
export const enum RcuRacePoint {
  /** mb readLock: between reading GP_CTR and publishing it in the reader's slot. */
  READER_LOCK_GAP = 0,
  /** Grace period: GP_STARTED advanced, no reader looked at yet. */
  GP_STARTED = 1,
  /** mb grace period: first wait done, phase not yet flipped. */
  GP_BEFORE_FLIP = 2,
  /** Grace period: readers drained, GP_COMPLETED not yet advanced. */
  GP_BEFORE_COMPLETE = 3,
  /** call(): head filled in, not yet pushed on the callback queue. */
  CALL_BEFORE_PUSH = 4,
  /** Callback engine: a batch was just spliced off the queue, its cookie not yet taken. */
  ENGINE_AFTER_SPLICE = 5,
  /** Callback engine: about to run one callback. */
  ENGINE_BEFORE_CALLBACK = 6,
  /** qsbr quiescentState: between reading GP_CTR and storing it. */
  QSBR_QS_GAP = 7,
  /** Callback engine, completing a barrier marker or callAndWait() head: DONE published, head not yet idle. */
  ENGINE_OWN_HEAD_GAP = 8,
  COUNT = 9,
}

/** Names of the race points, indexed by RcuRacePoint (for reports and command lines). */
export const RCU_RACE_POINT_NAMES: readonly string[] = [
  "rcu.reader-lock-gap",
  "rcu.gp-started",
  "rcu.gp-before-flip",
  "rcu.gp-before-complete",
  "rcu.call-before-push",
  "rcu.engine-after-splice",
  "rcu.engine-before-callback",
  "rcu.qsbr-qs-gap",
  "rcu.engine-own-head-gap",
];

/** Called at every race point this thread passes; keep it free of RCU calls and allocations. */
export type RcuRaceHook = (point: RcuRacePoint) => void;

/** The installed hook of this thread, or null. Read it directly on hot paths. */
export let rcuRaceHook: RcuRaceHook | null = null;

/** Installs (or with null removes) this thread's race hook. */
export function setRcuRaceHook(hook: RcuRaceHook | null): void {
  rcuRaceHook = hook;
}

/**
 * A hook that spins a pseudo-random number of iterations (up to `maxSpins[point]`) at each point,
 * drawn from `seed` with xorshift32 so that a run can be replayed.
 */
export function spinningRaceHook(maxSpins: Partial<Record<RcuRacePoint, number>>, seed: number): RcuRaceHook {
  const limits = new Int32Array(RcuRacePoint.COUNT);
  for (const [k, v] of Object.entries(maxSpins)) limits[Number(k)] = v ?? 0;
  let rng = xorshiftSeed(seed);
  let sink = 0;
  return (point) => {
    const max = limits[point] as number;
    if (max <= 0) return;
    rng = xorshift32(rng);
    const n = rng % (max + 1);
    for (let i = 0; i < n; i++) sink = (sink + i) | 0;
    if (sink === 0x7fffffff) rng++; // keeps the loop observable to the optimizer
  };
}
