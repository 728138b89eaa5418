/**
 * Seeded pseudo-random generators: the one place every layer takes its randomness from, so that a
 * randomized run (a stress test, a race-point delay, a benchmark's address stream) replays exactly
 * from the seed it printed.
 *
 * Two generators, for two needs:
 *
 *   Rng         mulberry32: good statistical quality for workloads and tests (uniform floats,
 *               integers below n). One object per thread; not shared between threads.
 *   xorshift32  Marsaglia's 13/17/5 xorshift: three shifts, for hot paths that only need a cheap,
 *               replayable spin count (race-point delays). A pure step function over a u32 state,
 *               so callers keep the state in a local or module variable and allocate nothing.
 *
 * Neither is cryptographic. Module state is thread-local in worker_threads, so each worker seeds
 * its own generator (derive per-thread seeds from the run's seed, never share one generator).
 */
import { quote } from "./text.js";

/** A small seeded PRNG (mulberry32). Every randomized run can be replayed from its seed. */
export class Rng {
  private state: number;

  /** Seeds the generator; any integer works (it is taken modulo 2^32). */
  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). `n` must be a positive integer no larger than 2^32. */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** The seed xorshift32 states start from when given 0 (a zero state would stay zero forever). */
export const XORSHIFT_ZERO_SEED = 0x9e3779b9;

/**
 * Makes a valid xorshift32 state from any seed: the seed as a u32, or XORSHIFT_ZERO_SEED for 0.
 */
export function xorshiftSeed(seed: number): number {
  return seed >>> 0 || XORSHIFT_ZERO_SEED;
}

/**
 * One xorshift32 step: returns the next state, which is also the output (a non-zero u32).
 * `state` must be non-zero (use xorshiftSeed). Allocation-free; for hot paths.
 */
export function xorshift32(state: number): number {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return state >>> 0;
}

/**
 * A seed from the STAGE2_SEED environment variable when set (decimal or 0x hex), else a fresh
 * random one. Randomized tests print the seed they use, so that `STAGE2_SEED=<seed>` replays them.
 * Throws RangeError when STAGE2_SEED is not a non-negative integer.
 */
export function seedFromEnv(): number {
  const env = process.env.STAGE2_SEED;
  if (env !== undefined && env !== "") {
    const v = parseSeedText(env);
    if (v === null)
      throw new RangeError(`STAGE2_SEED=${quote(env)} is not a seed (0..${SEED_MAX}, decimal or 0x hex)`);
    return v;
  }
  return (Math.random() * 0x100000000) >>> 0;
}

/** Largest seed: seeds are 32-bit, as every generator here and the selftests' `-r` take them. */
export const SEED_MAX = 0xffffffff;

/**
 * A seed typed by a user: a whole number 0..2^32-1 in decimal or 0x hex, or null. Nothing is
 * wrapped, rounded or trimmed silently (`-5`, `1.5`, `abc` and 2^32 are all null).
 */
export function parseSeedText(text: string): number | null {
  const t = text.trim();
  if (!/^(\d+|0[xX][0-9a-fA-F]+)$/.test(t)) return null;
  const v = BigInt(t);
  return v <= BigInt(SEED_MAX) ? Number(v) : null;
}
