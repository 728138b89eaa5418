/**
 * Regression tests for races and wraps found by review in the callback engine and the grace-period
 * sequence, each opened deterministically in one thread (engine stepped by hand, race hooks).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Errno } from "../common/errno.js";
import { RCU_AGAIN, RcuCallbackRegistry } from "./callbacks.js";
import { CallbackEngine } from "./engine.js";
import { Ctl } from "./layout.js";
import type { RcuOptions } from "./options.js";
import { RacePoint, setRaceHook } from "../common/race-points.js";
import { Rcu } from "./rcu.js";
import { RcuShared } from "./shared.js";

function setup(opts: RcuOptions = {}) {
  const sh = RcuShared.create({ callbackWorker: false, gpDelayMs: 0, ...opts });
  const rcu = Rcu.attach(sh.handle);
  const t = rcu.register();
  const registry = new RcuCallbackRegistry(sh.options.maxKinds);
  const engine = new CallbackEngine(sh, registry, 1000);
  const drain = (maxSteps = 1000) => {
    for (let i = 0; i < maxSteps && !engine.idle(); i++) engine.step();
    assert.ok(engine.idle(), "engine did not drain");
  };
  return { sh, rcu, t, registry, engine, drain };
}

function quietly<T>(fn: () => T): T {
  const err = console.error;
  console.error = () => {};
  try {
    return fn();
  } finally {
    console.error = err;
  }
}

test("a reserved head queued anew just before its callback runs: the old call runs with its own arguments, the new one after a grace period", () => {
  const { sh, rcu, t, registry, engine, drain } = setup({ staticHeads: 1 });
  const head = rcu.reserveHeads(1);
  const seen: [number, number][] = []; // [a0, GP_COMPLETED when it ran]
  registry.define(0, (a0) => {
    seen.push([a0, Atomics.load(sh.ctl, Ctl.GP_COMPLETED)]);
  });
  assert.equal(t.callHead(head, 0, 1), Errno.OK);
  let requeuedAt = Number.NaN;
  setRaceHook((p) => {
    // The head is idle here (the engine released it for reuse): another thread queues it anew.
    if (p !== RacePoint.RCU_ENGINE_BEFORE_CALLBACK || !Number.isNaN(requeuedAt)) return;
    assert.equal(t.callHead(head, 0, 2), Errno.OK);
    requeuedAt = Atomics.load(sh.ctl, Ctl.GP_STARTED);
  });
  try {
    drain();
  } finally {
    setRaceHook(null);
  }
  assert.deepEqual(
    seen.map((s) => s[0]),
    [1, 2],
    "the first call kept its argument and the second ran once",
  );
  const second = seen[1] as [number, number];
  assert.ok(second[1] > requeuedAt, "the second call ran only after a grace period that began after it");
  engine.release();
});

test("setArgs() of a slice never overwrites the arguments of a newer call on the same reserved head", () => {
  const { rcu, t, registry, engine, drain } = setup({ staticHeads: 1 });
  const head = rcu.reserveHeads(1);
  const seen: number[] = [];
  registry.define(0, (a0, _a1, _a2, ctx) => {
    seen.push(a0);
    if (a0 !== 1) return;
    // Another thread queues the idle head while this slice runs; the slice then stores its progress.
    assert.equal(t.callHead(head, 0, 99), Errno.OK);
    ctx.setArgs(2, 0, 0);
    return RCU_AGAIN; // refused (reported), since the head is queued anew
  });
  assert.equal(t.callHead(head, 0, 1), Errno.OK);
  quietly(drain);
  assert.deepEqual(seen, [1, 99], "the newer call ran with its own argument");
  assert.equal(rcu.stats().errors, 1);
  engine.release();
});

test("setArgs() still carries a slice's progress to the next slice of a reserved head", () => {
  const { rcu, t, registry, engine, drain } = setup({ staticHeads: 1 });
  const head = rcu.reserveHeads(1);
  const seen: number[] = [];
  registry.define(0, (left, _a1, _a2, ctx) => {
    seen.push(left);
    if (left === 0) return;
    ctx.setArgs(left - 1, 0, 0);
    return RCU_AGAIN;
  });
  assert.equal(t.callHead(head, 0, 3), Errno.OK);
  drain();
  assert.deepEqual(seen, [3, 2, 1, 0]);
  assert.equal(t.callHead(head, 0, 1), Errno.OK, "idle after its last slice");
  drain();
  engine.release();
});
