/**
 * The callback engine driven step by step in one thread (no callback worker): order, slices,
 * flood control, errors, reserved heads. Barriers across threads are in test/rcu-barrier.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Errno } from "../common/errno.js";
import { RCU_AGAIN, RcuCallbackRegistry } from "./callbacks.js";
import { CallbackEngine } from "./engine.js";
import type { RcuOptions } from "./options.js";
import { Rcu } from "./rcu.js";
import { RcuShared } from "./shared.js";

function setup(opts: RcuOptions = {}) {
  const sh = RcuShared.create({ callbackWorker: false, gpDelayMs: 0, ...opts });
  const rcu = Rcu.attach(sh.handle);
  const t = rcu.register();
  const registry = new RcuCallbackRegistry(sh.options.maxKinds);
  const engine = new CallbackEngine(sh, registry, 1000);
  const drain = (maxSteps = 100_000) => {
    for (let i = 0; i < maxSteps && !engine.idle(); i++) engine.step();
    assert.ok(engine.idle(), "engine did not drain");
  };
  return { rcu, t, registry, engine, drain };
}

test("CallbackEngine runs each callback once, in call order, after a grace period", () => {
  const { rcu, t, registry, engine, drain } = setup();
  const seen: number[] = [];
  registry.define(0, (a0, a1, a2) => {
    seen.push(a0);
    assert.equal(a1, 2 ** 40 + 1, "53-bit arguments survive");
    assert.equal(a2, -0.5);
  });
  for (let i = 0; i < 50; i++) assert.equal(t.call(0, i, 2 ** 40 + 1, -0.5), 0);
  engine.step(); // splices, drives the grace period, runs the first batch
  assert.ok(rcu.stats().gracePeriods >= 1);
  drain();
  assert.deepEqual(
    seen,
    Array.from({ length: 50 }, (_, i) => i),
  );
  const s = rcu.stats();
  assert.equal(s.run, 50);
  assert.equal(s.pending, 0);
  assert.equal(s.callbackDuration.samples, 50);
  engine.release();
});

test("CallbackEngine waits for a grace period that covers the call", () => {
  const { rcu, t, registry, engine } = setup();
  let ran = 0;
  registry.define(0, () => {
    ran++;
  });
  t.call(0);
  const gps = rcu.stats().gracePeriods;
  engine.step();
  assert.equal(ran, 0, "nothing may run in the step that started the grace period");
  assert.equal(rcu.stats().gracePeriods, gps + 1);
  engine.step();
  assert.equal(ran, 1);
  engine.release();
});

test("a callback returning RCU_AGAIN runs again with the arguments it stored, without a new grace period", () => {
  const { rcu, t, registry, engine, drain } = setup();
  const slices: number[] = [];
  registry.define(1, (left, _a1, _a2, ctx) => {
    slices.push(left);
    if (left === 0) return;
    ctx.setArgs(left - 1, 0, 0);
    return RCU_AGAIN;
  });
  t.call(1, 3);
  drain();
  assert.deepEqual(slices, [3, 2, 1, 0]);
  const s = rcu.stats();
  assert.equal(s.slices, 3);
  assert.equal(s.run, 1);
  assert.equal(s.gracePeriods, 1);
  engine.release();
});

test("flood control: batches of batchLimit, flood mode above highWater with bigger batches, back below lowWater", () => {
  const { rcu, t, registry, engine, drain } = setup({
    batchLimit: 5,
    highWater: 200,
    lowWater: 20,
    floodBatchLimit: 50,
    batchTimeMs: 60_000, // the count limits alone end batches (see below)
  });
  registry.define(0, () => {});
  for (let i = 0; i < 100; i++) t.call(0);
  drain();
  let s = rcu.stats();
  assert.equal(s.floodEntries, 0);
  assert.equal(s.longestBatch.callbacks, 5, "normal mode runs batchLimit per batch");
  for (let i = 0; i < 1000; i++) t.call(0);
  engine.step();
  assert.equal(rcu.flooding, true, "1000 pending > highWater");
  drain();
  s = rcu.stats();
  assert.equal(s.floodEntries, 1);
  assert.equal(s.longestBatch.callbacks, 50, "flood batches: max(floodBatchLimit, pending >> 7)");
  assert.ok(s.forcedGracePeriods >= 0);
  assert.equal(s.flooding, false, "below lowWater again");
  assert.equal(s.pendingPeak, 1000);
  engine.release();
});

test("flood mode batch grows with pending >> floodShift", () => {
  const { rcu, t, registry, engine, drain } = setup({
    highWater: 100,
    lowWater: 10,
    floodBatchLimit: 10,
    floodShift: 4,
    // Only the count limit may end a batch here: a time budget cut short by a loaded machine would not.
    batchTimeMs: 60_000,
  });
  registry.define(0, () => {});
  for (let i = 0; i < 3200; i++) t.call(0);
  drain();
  assert.equal(rcu.stats().longestBatch.callbacks, 200, "3200 >> 4");
  engine.release();
});

test("a callback that throws is counted as an error and the rest still run; an undefined kind is refused", () => {
  const { rcu, t, registry, engine, drain } = setup();
  let ran = 0;
  registry.define(0, () => {
    ran++;
  });
  registry.define(1, () => {
    throw new Error("boom (expected by the test)");
  });
  const err = console.error;
  console.error = () => {};
  try {
    assert.equal(t.call(0), 0);
    assert.equal(t.call(1), 0);
    assert.equal(t.call(2), Errno.INVAL, "kind 2 is defined nowhere: refused at once");
    assert.equal(t.call(0), 0);
    drain();
  } finally {
    console.error = err;
  }
  assert.equal(ran, 2);
  assert.equal(rcu.stats().errors, 1);
  assert.equal(rcu.stats().run, 3);
  engine.release();
});

test("a reserved head may be queued again from inside its own callback", () => {
  const { rcu, t, registry, engine, drain } = setup({ staticHeads: 4 });
  const head = rcu.reserveHeads(1);
  let runs = 0;
  registry.define(0, () => {
    runs++;
    if (runs < 3) assert.equal(t.callHead(head, 0), 0);
  });
  assert.equal(t.callHead(head, 0), 0);
  drain();
  assert.equal(runs, 3);
  assert.equal(t.callHead(head, 0), 0, "idle again after its last run");
  drain();
  engine.release();
});

test("a sliced callback whose head was queued anew while it ran is reported, not linked twice", () => {
  const { rcu, t, registry, engine, drain } = setup({ staticHeads: 4 });
  const head = rcu.reserveHeads(1);
  const seen: number[] = [];
  registry.define(0, (a0) => {
    seen.push(a0);
    if (a0 === 1) {
      assert.equal(t.callHead(head, 0, 2), 0, "idle while it runs, so it can be queued anew");
      return RCU_AGAIN; // wrong: the head is queued again already
    }
  });
  assert.equal(t.callHead(head, 0, 1), 0);
  const err = console.error;
  console.error = () => {};
  try {
    drain();
  } finally {
    console.error = err;
  }
  assert.deepEqual(seen, [1, 2], "the new queueing ran once; the dropped continuation did not");
  assert.equal(rcu.stats().errors, 1);
  assert.equal(t.callHead(head, 0, 3), 0, "idle again afterwards");
  drain();
  assert.deepEqual(seen, [1, 2, 3]);
  engine.release();
});

test("heads freed by the engine return to the pool: call() never runs dry when callbacks keep up", () => {
  const { rcu, t, registry, engine, drain } = setup({ poolHeads: 256 });
  registry.define(0, () => {});
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 128; i++) assert.equal(t.call(0), 0, `round ${round}`);
    drain();
  }
  assert.equal(rcu.stats().run, 20 * 128);
  assert.equal(rcu.stats().nomem, 0);
  engine.release();
});

test("only one engine may run per domain", () => {
  const { rcu, engine } = setup();
  const registry = new RcuCallbackRegistry(4);
  assert.throws(() => new CallbackEngine(RcuShared.attach(rcu.handle), registry, 7), /runs one/);
  engine.release();
});

test("RcuCallbackRegistry.define() checks kinds", () => {
  const r = new RcuCallbackRegistry(4);
  r.define(0, () => {});
  assert.throws(() => r.define(0, () => {}), /defined already/);
  assert.throws(() => r.define(4, () => {}), RangeError);
  assert.throws(() => r.define(1, 5 as unknown as () => void), TypeError);
});
