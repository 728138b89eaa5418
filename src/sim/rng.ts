/** A small seeded PRNG (mulberry32) so every randomized run can be replayed from its seed. */
export class Rng {
  private state: number;

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

  /** Uniform integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** A seed from STAGE2_SEED when set (decimal or 0x hex), else a fresh random one. */
export function seedFromEnv(): number {
  const env = process.env.STAGE2_SEED;
  if (env !== undefined && env !== "") {
    const v = Number(env);
    if (!Number.isInteger(v) || v < 0)
      throw new RangeError(`STAGE2_SEED="${env}" is not a non-negative integer`);
    return v >>> 0;
  }
  return (Math.random() * 0x100000000) >>> 0;
}
