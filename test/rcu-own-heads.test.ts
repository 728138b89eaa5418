/**
 * barrier() on a reused reader slot: the old owner died while its barrier marker was queued, a new
 * thread took the slot and calls barrier() with the same marker head. The engine must publish the
 * old marker's DONE before it marks the head idle, or the new owner claims the head in between,
 * picks the old target as its own and returns before the callbacks queued ahead of its barrier
 * have run. The engine is stepped by hand in this thread; a race hook at
 * RacePoint.RCU_ENGINE_OWN_HEAD_GAP holds it between the two publications while the new owner runs.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { RcuCallbackRegistry } from "../src/rcu/callbacks.js";
import { CallbackEngine } from "../src/rcu/engine.js";
import { Ctl } from "../src/rcu/layout.js";
import { Rcu } from "../src/rcu/mod.js";
import { RacePoint, setRaceHook } from "../src/common/race-points.js";
import { RcuShared } from "../src/rcu/shared.js";
import { startScript } from "./rcu-helpers-worker.js";

const nap = new Int32Array(new SharedArrayBuffer(4));

/** Sleeps (blocking this thread) until `cond()` or `ms` have passed; returns cond(). */
function blockUntil(cond: () => boolean, ms: number): boolean {
  for (let i = 0; i < ms && !cond(); i++) Atomics.wait(nap, 0, 0, 1);
  return cond();
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

for (const flavor of ["mb", "qsbr"] as const) {
  test(`${flavor}: barrier() on a slot whose old owner died mid-barrier waits for its own callbacks`, async () => {
    const sh = RcuShared.create({ flavor, callbackWorker: false, gpDelayMs: 0, stallTimeoutMs: 60_000 });
    const rcu = Rcu.attach(sh.handle);
    const flags = new SharedArrayBuffer(64);
    const f = new Int32Array(flags);
    const registry = new RcuCallbackRegistry(sh.options.maxKinds);
    registry.define(0, () => {
      Atomics.add(f, 2, 1); // callbacks run so far
    });
    const engine = new CallbackEngine(sh, registry, 1_000_000);
    // The old owner: queues its barrier marker, then dies waiting for it.
    const a = startScript(rcu, flags, [{ op: "barrier" }]);
    const marker = sh.markerBase; // slot 0: this thread registers nothing
    for (let i = 0; i < 10_000 && Atomics.load(sh.ctl, Ctl.CB_TOP) !== marker; i++) await tick();
    assert.equal(Atomics.load(sh.ctl, Ctl.CB_TOP), marker, "the old owner queued its marker");
    await a.worker.terminate();
    await a.exited; // rcu.watch() reaped slot 0
    // The new owner of slot 0: one callback, then barrier(); flags[4] = callbacks run at its return + 1.
    const b = startScript(rcu, flags, [
      { op: "call", kind: 0, a0: 0, n: 1 },
      { op: "post", msg: "barrier" },
      { op: "barrier" },
      { op: "snapshotFlag", from: 2, to: 4 },
    ]);
    await b.next("barrier");
    let claimedInGap = false;
    let gaps = 0;
    setRaceHook((p) => {
      if (p === RacePoint.RCU_ENGINE_OWN_HEAD_GAP && gaps++ === 0) {
        // The old marker is being completed. Give the new owner every chance to claim the head.
        claimedInGap = blockUntil(() => Atomics.load(sh.ctl, Ctl.CB_TOP) === marker, 500);
      } else if (p === RacePoint.RCU_ENGINE_BEFORE_CALLBACK && claimedInGap) {
        blockUntil(() => Atomics.load(f, 4) !== 0, 5000); // let an early return show itself
      }
    });
    try {
      for (let i = 0; i < 20_000 && Atomics.load(f, 4) === 0; i++) {
        engine.step();
        await tick();
      }
    } finally {
      setRaceHook(null);
    }
    await b.exited;
    engine.release();
    assert.equal(Atomics.load(f, 4) - 1, 1, "barrier() returned after the callback queued before it");
    assert.equal(claimedInGap, false, "the new owner claimed the marker before the old DONE was published");
  });
}
