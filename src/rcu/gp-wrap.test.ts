/**
 * The grace-period sequence across the Int32 wrap: a domain started near 2^31 - 1
 * (`initialGracePeriod`) crosses it in a few periods instead of 2^31.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { RcuCallbackRegistry } from "./callbacks.js";
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
  const engine = new CallbackEngine(sh, new RcuCallbackRegistry(sh.options.maxKinds), 1000);
  return { sh, rcu, t, engine };
}

const NEAR_WRAP = 0x7fffffff - 2;

/** Runs `fn`, failing (instead of hanging) if it starts more than `max` grace periods. */
function withGpBudget(max: number, fn: () => void): void {
  let started = 0;
  setRaceHook((p) => {
    if (p === RacePoint.RCU_GP_STARTED && ++started > max)
      throw new Error(`more than ${max} grace periods started: the engine drives them back to back`);
  });
  try {
    fn();
  } finally {
    setRaceHook(null);
  }
}

for (const flavor of ["mb", "qsbr"] as const) {
  test(`${flavor}: past 2^31 grace periods an idle engine drives no grace period`, () => {
    const { sh, rcu, t, engine } = setup({ flavor, initialGracePeriod: NEAR_WRAP });
    for (let i = 0; i < 6; i++) t.synchronize(); // crosses the Int32 wrap
    t.offline(); // qsbr: the engine steps in this thread; its grace periods must not wait for it
    assert.ok(Atomics.load(sh.ctl, Ctl.GP_COMPLETED) < 0, "the sequence wrapped");
    const gps = rcu.stats().gracePeriods;
    withGpBudget(10, () => {
      for (let i = 0; i < 5; i++) {
        assert.equal(engine.step(), Number.POSITIVE_INFINITY, `step ${i}: nothing to do, so sleep`);
      }
    });
    assert.equal(rcu.stats().gracePeriods, gps, "no grace period without a request");
    engine.release();
  });

  test(`${flavor}: past 2^31 grace periods a startPoll() cookie is driven to expiry by the engine`, () => {
    const { sh, rcu, t, engine } = setup({ flavor, initialGracePeriod: NEAR_WRAP });
    for (let i = 0; i < 6; i++) t.synchronize();
    t.offline();
    const cookie = t.startPoll();
    assert.ok(cookie < 0, "a cookie past the wrap");
    assert.equal(Atomics.load(sh.ctl, Ctl.GP_REQUESTED), cookie, "startPoll() recorded its request");
    assert.equal(t.pollState(cookie), false);
    withGpBudget(10, () => {
      for (let i = 0; i < 3 && !t.pollState(cookie); i++) engine.step();
      assert.equal(t.pollState(cookie), true, "the engine drove the requested period");
      assert.equal(engine.step(), Number.POSITIVE_INFINITY, "and then sleeps");
    });
    assert.ok(rcu.stats().gracePeriods >= 7);
    engine.release();
  });
}

test("initialGracePeriod is checked", () => {
  assert.throws(() => RcuShared.create({ initialGracePeriod: -1 }), RangeError);
  assert.throws(() => RcuShared.create({ initialGracePeriod: 2 ** 31 }), RangeError);
  const sh = RcuShared.create({ callbackWorker: false, initialGracePeriod: 5 });
  assert.equal(sh.ctl[Ctl.GP_COMPLETED], 5);
  assert.equal(sh.ctl[Ctl.GP_STARTED], 5);
});
