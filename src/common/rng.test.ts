import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng, seedFromEnv, XORSHIFT_ZERO_SEED, xorshift32, xorshiftSeed } from "./rng.js";

test("xorshift32() follows Marsaglia's 13/17/5 sequence", () => {
  // From state 1: 1 ^ 1<<13 = 8193; ^ >>>17 keeps it; ^ <<5 gives 270369.
  assert.equal(xorshift32(1), 270369);
  let x = 1;
  const seen = new Set<number>();
  for (let i = 0; i < 1000; i++) {
    x = xorshift32(x);
    assert.ok(x > 0 && x <= 0xffffffff && Number.isInteger(x), `step ${i}: ${x} is not a non-zero u32`);
    seen.add(x);
  }
  assert.equal(seen.size, 1000, "a full-period generator repeats nothing this early");
});

test("xorshiftSeed() never yields the stuck zero state", () => {
  assert.equal(xorshiftSeed(0), XORSHIFT_ZERO_SEED);
  assert.equal(xorshiftSeed(2 ** 32), XORSHIFT_ZERO_SEED);
  assert.equal(xorshiftSeed(-1), 0xffffffff);
});

test("Rng replays from its seed and stays in range", () => {
  const a = new Rng(42);
  const b = new Rng(42 + 2 ** 32);
  const c = new Rng(43);
  let differ = 0;
  for (let i = 0; i < 1000; i++) {
    const x = a.nextU32();
    assert.equal(x, b.nextU32(), "seeds equal modulo 2^32 give one sequence");
    if (x !== c.nextU32()) differ++;
    const f = a.next();
    assert.ok(f >= 0 && f < 1);
    const k = a.below(7);
    assert.ok(Number.isInteger(k) && k >= 0 && k < 7);
    b.next();
    b.below(7);
    c.next();
    c.below(7);
  }
  assert.ok(differ > 990, "another seed gives another sequence");
});

test("Rng.below() covers every value roughly uniformly", () => {
  const r = new Rng(7);
  const counts = new Array(8).fill(0);
  for (let i = 0; i < 80_000; i++) counts[r.below(8)]++;
  for (const n of counts) assert.ok(n > 9000 && n < 11000, `counts ${counts}`);
});

test("seedFromEnv() reads STAGE2_SEED in decimal or hex and rejects anything else", () => {
  const saved = process.env.STAGE2_SEED;
  try {
    process.env.STAGE2_SEED = "0x10";
    assert.equal(seedFromEnv(), 16);
    process.env.STAGE2_SEED = "123";
    assert.equal(seedFromEnv(), 123);
    process.env.STAGE2_SEED = "-4";
    assert.throws(() => seedFromEnv(), RangeError);
    process.env.STAGE2_SEED = "seed";
    assert.throws(() => seedFromEnv(), /STAGE2_SEED="seed"/);
  } finally {
    if (saved === undefined) delete process.env.STAGE2_SEED;
    else process.env.STAGE2_SEED = saved;
  }
});
