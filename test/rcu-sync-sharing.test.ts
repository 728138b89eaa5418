/**
 * Concurrent synchronize() callers share grace periods: callers that arrive while one period is
 * held up all wait for the next one, which a single driver runs for all of them.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import { Rcu, type RcuFlavor } from "../src/rcu/mod.js";
import { startScript } from "./rcu-helpers-worker.js";

const CALLERS = 4;

for (const flavor of ["mb", "qsbr"] as RcuFlavor[]) {
  test(`${flavor}: ${CALLERS} concurrent synchronize() callers need at most two grace periods`, async () => {
    const rcu = await Rcu.create({ flavor, callbackWorker: false, stallTimeoutMs: 30_000 });
    const t = rcu.register();
    // This thread's read-side section holds the first grace period up while every caller arrives.
    t.readLock();
    const before = rcu.stats().gracePeriods;
    const flags = new SharedArrayBuffer(64);
    const callers = Array.from({ length: CALLERS }, () =>
      startScript(rcu, flags, [{ op: "post", msg: "calling" }, { op: "sync" }]),
    );
    await Promise.all(callers.map((c) => c.next("calling")));
    // Let every caller get into synchronize() (they all block on this thread's section).
    await sleep(200);
    assert.equal(rcu.stats().gracePeriods, before, "no grace period can end while this thread reads");
    t.readUnlock();
    if (flavor === "qsbr") t.offline();
    await Promise.all(callers.map((c) => c.exited));
    const periods = rcu.stats().gracePeriods - before;
    console.log(`# ${flavor}: ${CALLERS} synchronize() callers, ${periods} grace periods`);
    // The period in flight when they arrived, then one shared by every caller that queued behind
    // it. Without sharing there would be one per caller.
    assert.ok(periods >= 1 && periods <= 2, `${CALLERS} callers took ${periods} grace periods`);
    if (flavor === "qsbr") t.online();
    t.unregister();
    await rcu.close();
  });
}
