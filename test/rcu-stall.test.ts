/**
 * Stall reports, trySynchronize() timeouts, and grace periods that resume after a worker dies
 * inside a read-side section (its slot reaped by threadId).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Errno } from "../src/common/errno.js";
import { Rcu, type RcuStallReport, StallWhat } from "../src/rcu/mod.js";
import { startScript } from "./rcu-helpers-worker.js";

test("mb: a reader stuck in a section is reported with its thread id, and synchronize() returns after it leaves", async () => {
  const rcu = await Rcu.create({ flavor: "mb", callbackWorker: false, stallTimeoutMs: 50 });
  const flags = new SharedArrayBuffer(64);
  const w = startScript(rcu, flags, [
    { op: "lock" },
    { op: "post", msg: "locked" },
    { op: "waitStalls" },
    { op: "unlock" },
  ]);
  await w.next("locked");
  const reports: RcuStallReport[] = [];
  rcu.onStall = (r) => reports.push(r);
  rcu.synchronize(); // returns only because the worker leaves its section once it sees the report
  rcu.onStall = null;
  assert.ok(reports.length >= 1);
  assert.equal(reports[0]!.what, StallWhat.READER);
  assert.equal(reports[0]!.threadId, w.worker.threadId);
  assert.match(
    reports[0]!.message,
    new RegExp(`thread ${w.worker.threadId} \\(slot \\d+\\) has been inside a read-side section`),
  );
  const s = rcu.stats();
  assert.ok(s.stalls >= 1);
  assert.equal(s.lastStall?.threadId, w.worker.threadId);
  await w.exited;
});

test("qsbr: an online thread that reports no quiescent state is reported, then the grace period ends", async () => {
  const rcu = await Rcu.create({ flavor: "qsbr", callbackWorker: false, stallTimeoutMs: 50 });
  const flags = new SharedArrayBuffer(64);
  const w = startScript(rcu, flags, [{ op: "post", msg: "online" }, { op: "waitStalls" }, { op: "qs" }]);
  await w.next("online");
  const reports: RcuStallReport[] = [];
  rcu.onStall = (r) => reports.push(r);
  rcu.synchronize();
  rcu.onStall = null;
  assert.equal(reports[0]?.what, StallWhat.QUIESCENT);
  assert.equal(reports[0]?.threadId, w.worker.threadId);
  assert.match(reports[0]!.message, /reported no quiescent state/);
  await w.exited;
});

test("trySynchronize() times out while a reader holds its section, and succeeds once it leaves", async () => {
  const rcu = await Rcu.create({ flavor: "mb", callbackWorker: false });
  const flags = new SharedArrayBuffer(64);
  const w = startScript(rcu, flags, [
    { op: "lock" },
    { op: "post", msg: "locked" },
    { op: "waitFlag", index: 0 },
    { op: "unlock" },
  ]);
  await w.next("locked");
  const t = rcu.register();
  assert.equal(t.trySynchronize(30), Errno.TIMEDOUT);
  assert.equal(rcu.trySynchronize(10), Errno.TIMEDOUT, "a timed-out period is retried cleanly");
  Atomics.store(new Int32Array(flags), 0, 1);
  Atomics.notify(new Int32Array(flags), 0);
  assert.equal(t.trySynchronize(60_000), Errno.OK);
  t.unregister();
  await w.exited;
});

for (const how of ["exits", "is terminated"] as const) {
  for (const flavor of ["mb", "qsbr"] as const) {
    test(`${flavor}: a worker that ${how} inside a read-side section is reaped and grace periods resume`, async () => {
      const rcu = await Rcu.create({ flavor, callbackWorker: false });
      const flags = new SharedArrayBuffer(64);
      const w = startScript(rcu, flags, [
        { op: "lock" },
        { op: "post", msg: "locked" },
        { op: how === "exits" ? "exit" : "spin" },
      ]);
      await w.next("locked");
      if (how === "exits") await w.exited;
      else assert.equal(rcu.trySynchronize(20), Errno.TIMEDOUT, "the live reader blocks grace periods");
      if (how === "is terminated") await w.worker.terminate();
      await new Promise((resolve) => setImmediate(resolve)); // let watch()'s exit handler reap the slot
      assert.equal(rcu.stats().threads, 0);
      assert.equal(rcu.trySynchronize(60_000), Errno.OK);
    });
  }
}

test("reapThread() releases the grace-period lock of a dead driver; the next driver restarts the period", async () => {
  const rcu = await Rcu.create({ flavor: "mb", callbackWorker: false });
  const ctl = new Int32Array(rcu.handle.ctl);
  const cookie = rcu.getState();
  // Simulate thread 4242 dying while it drove grace period `cookie`: lock held, STARTED advanced.
  Atomics.store(ctl, 16, 4243);
  Atomics.store(ctl, 17, cookie);
  assert.equal(rcu.trySynchronize(20), Errno.TIMEDOUT);
  rcu.reapThread(4242);
  assert.equal(Atomics.load(ctl, 16), 0);
  rcu.synchronize();
  assert.equal(rcu.pollState(cookie), true);
});

test("register() throws once every reader slot is taken", async () => {
  const rcu = await Rcu.create({ callbackWorker: false, maxThreads: 1 });
  const flags = new SharedArrayBuffer(64);
  const w = startScript(rcu, flags, [
    { op: "post", msg: "registered" },
    { op: "waitFlag", index: 0 },
  ]);
  await w.next("registered");
  assert.throws(() => rcu.register(), /all 1 reader slots are taken/);
  Atomics.store(new Int32Array(flags), 0, 1);
  await w.exited;
  rcu.register().unregister();
});

test("barrier() reports a callback worker that makes no progress", async () => {
  const counters = new SharedArrayBuffer(64);
  const { testPlugin } = await import("./rcu-helpers-worker.js");
  const rcu = await Rcu.create({ plugins: [testPlugin(counters)], stallTimeoutMs: 30 });
  const t = rcu.register();
  t.call(0, 0, 150_000); // one INC callback that spins 150 ms
  const reports: RcuStallReport[] = [];
  rcu.onStall = (r) => reports.push(r);
  t.barrier();
  rcu.onStall = null;
  assert.ok(
    reports.some((r) => r.what === StallWhat.CALLBACKS),
    "barrier() did not stay silent",
  );
  assert.match(reports.find((r) => r.what === StallWhat.CALLBACKS)!.message, /running callback kind 0/);
  t.unregister();
  await rcu.close();
});
