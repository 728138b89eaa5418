/**
 * The RCU API as a library user meets it: waiting for one callback (callAndWait), the batching
 * delay it skips, kinds refused at call time, qsbr waits that go offline, and stall reports that
 * reach the domain's handler whichever thread found them. Each test is the regression test of one
 * gap of the library issue; the stepped-engine test needs no timing at all.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import { threadId } from "node:worker_threads";
import { Errno } from "../src/common/errno.js";
import {
  CallbackEngine,
  Rcu,
  RcuCallbackRegistry,
  type RcuFlavor,
  RcuShared,
  type RcuStallReport,
  StallWhat,
  setRcuStallHandler,
} from "../src/rcu/mod.js";
import { startScript, testPlugin } from "./rcu-helpers-worker.js";
import { TestKind } from "./rcu-test-plugin-worker.js";

const FLAVORS: RcuFlavor[] = ["mb", "qsbr"];

for (const flavor of FLAVORS) {
  test(`${flavor}: callAndWait() returns once its callback has run, from the main thread and a worker`, async () => {
    const counters = new SharedArrayBuffer(64);
    const c = new Int32Array(counters);
    const rcu = await Rcu.create({ flavor, plugins: [testPlugin(counters)], stallTimeoutMs: 30_000 });
    const t = rcu.register();
    assert.equal(t.callAndWait(TestKind.INC, 0, 100), Errno.OK);
    assert.equal(Atomics.load(c, 0), 1, "the callback ran before callAndWait() returned");
    assert.equal(t.callAndWait(TestKind.SLICED, 5, 1), Errno.OK);
    assert.equal(Atomics.load(c, 1), 1, "callAndWait() waited for the last slice");
    assert.equal(t.isOnline, flavor === "qsbr", "the thread is back in the state it waited in");
    const w = startScript(rcu, new SharedArrayBuffer(64), [
      { op: "callAndWait", kind: TestKind.INC, a0: 2 },
      { op: "callAndWait", kind: TestKind.INC, a0: 2 },
      { op: "post", msg: "waited" },
    ]);
    t.offline(); // qsbr: this thread idles on its event loop below (a no-op for mb)
    await w.next("waited");
    t.online();
    assert.equal(Atomics.load(c, 2), 2, "the worker's callbacks ran before its callAndWait() returned");
    await w.exited;
    const s = rcu.stats();
    assert.equal(s.pending, 0);
    assert.equal(s.errors, 0);
    t.unregister();
    await rcu.close();
  });

  test(`${flavor}: callAndWait() does not wait out the batching delay (stepped engine)`, async () => {
    // The engine runs in this thread, stepped by hand: step() returns the ms left of the batching
    // delay when it wants to wait it out. With gpDelayMs at 60 s, any such answer is the bug.
    const counters = new Int32Array(new SharedArrayBuffer(64));
    const rcu = await Rcu.create({
      flavor,
      callbackWorker: false,
      gpDelayMs: 60_000,
      stallTimeoutMs: 30_000,
    });
    const registry = new RcuCallbackRegistry(rcu.handle.options.maxKinds);
    registry.define(0, (i) => {
      Atomics.add(counters, i, 1);
    });
    const engine = new CallbackEngine(RcuShared.attach(rcu.handle), registry, threadId);
    const flags = new SharedArrayBuffer(64);
    const f = new Int32Array(flags);
    const w = startScript(rcu, flags, [
      { op: "callAndWait", kind: 0, a0: 3 },
      { op: "setFlag", index: 0 },
      { op: "waitFlag", index: 1 },
    ]);
    let delays = 0;
    while (Atomics.load(f, 0) === 0 && delays === 0) {
      const r = engine.step();
      if (r > 0 && r !== Number.POSITIVE_INFINITY) delays++;
      else if (r !== 0) Atomics.wait(f, 0, 0, 1); // idle: the worker has not queued yet
    }
    Atomics.store(f, 1, 1);
    Atomics.notify(f, 1);
    if (delays > 0) await w.worker.terminate();
    await w.exited;
    engine.release();
    assert.equal(delays, 0, "the engine asked to wait out its batching delay for a waited callback");
    assert.equal(Atomics.load(counters, 3), 1);
  });

  test(`${flavor}: call(), callHead() and callAndWait() refuse a kind the callback worker does not define`, async () => {
    const rcu = await Rcu.create({
      flavor,
      plugins: [testPlugin(new SharedArrayBuffer(64))],
      staticHeads: 1,
    });
    const t = rcu.register();
    const head = rcu.reserveHeads(1);
    assert.equal(t.call(200), Errno.INVAL);
    assert.equal(t.callHead(head, 200), Errno.INVAL);
    assert.equal(t.callAndWait(200), Errno.INVAL);
    assert.equal(t.call(TestKind.INC, 9), Errno.OK, "a defined kind is accepted");
    t.barrier();
    assert.equal(rcu.stats().errors, 0, "nothing undefined reached the callback worker");
    t.unregister();
    await rcu.close();
  });
}

test("qsbr: an online thread waiting in callAndWait() or condSynchronize() holds up no grace period", async () => {
  const counters = new SharedArrayBuffer(64);
  const rcu = await Rcu.create({ flavor: "qsbr", plugins: [testPlugin(counters)], stallTimeoutMs: 100 });
  const reports: RcuStallReport[] = [];
  rcu.onStall = (r) => reports.push(r);
  const w = startScript(rcu, new SharedArrayBuffer(64), [
    { op: "postOnline" },
    { op: "callAndWait", kind: TestKind.INC, a0: 0 },
    { op: "pollWait" },
    { op: "postOnline" },
    { op: "post", msg: "done" },
  ]);
  const tid = w.worker.threadId;
  let done = false;
  void w.next("done").then(() => {
    done = true;
  });
  const blamed = () => reports.find((r) => r.threadId === tid);
  while (!done && blamed() === undefined) await sleep(5);
  const stall = blamed();
  if (stall !== undefined) await w.worker.terminate();
  await w.exited;
  rcu.onStall = null;
  assert.equal(stall, undefined, `the waiting thread held up a grace period: ${stall?.message}`);
  assert.equal(Atomics.load(new Int32Array(counters), 0), 1);
  await rcu.close();
});

test("qsbr: an online thread's waits report it online before and after (postOnline)", async () => {
  const rcu = await Rcu.create({ flavor: "qsbr", plugins: [testPlugin(new SharedArrayBuffer(64))] });
  const w = startScript(rcu, new SharedArrayBuffer(64), [
    { op: "postOnline" },
    { op: "callAndWait", kind: TestKind.INC, a0: 0 },
    { op: "pollWait" },
    { op: "postOnline" },
    { op: "offline" },
    { op: "pollWait" },
    { op: "postOnline" },
  ]);
  await w.next("online:true");
  await w.next("online:true");
  await w.next("online:false");
  await w.exited;
  await rcu.close();
});

test("stalls found by the callback worker reach the handler the main thread set", async () => {
  const rcu = await Rcu.create({
    flavor: "mb",
    plugins: [testPlugin(new SharedArrayBuffer(64))],
    stallTimeoutMs: 50,
  });
  const reports: RcuStallReport[] = [];
  rcu.onStall = (r) => reports.push(r);
  const flags = new SharedArrayBuffer(64);
  const w = startScript(rcu, flags, [
    { op: "lock" },
    { op: "post", msg: "locked" },
    { op: "waitFlag", index: 0 },
    { op: "unlock" },
  ]);
  const readerTid = w.worker.threadId; // -1 once the worker has exited
  await w.next("locked");
  const t = rcu.register();
  assert.equal(t.call(TestKind.INC, 0), Errno.OK); // the callback worker drives its grace period
  // Stalls are reported after 50, 150, 350 ms... once two are counted, the first was due here.
  while (rcu.stats().stalls < 2) await sleep(5);
  await sleep(0);
  Atomics.store(new Int32Array(flags), 0, 1);
  Atomics.notify(new Int32Array(flags), 0);
  await w.exited;
  t.barrier();
  rcu.onStall = null;
  assert.ok(reports.length >= 1, "no stall report reached this thread's handler");
  const r = reports[0]!;
  assert.equal(r.what, StallWhat.READER);
  assert.equal(r.threadId, readerTid, "the report blames the reader");
  assert.notEqual(r.reporter, threadId, "another thread (the callback worker) found it");
  assert.match(r.message, /has been inside a read-side section/);
  t.unregister();
  await rcu.close();
});

test("once the handler's thread has exited and been reaped, reporters print stalls again", async () => {
  const rcu = await Rcu.create({ flavor: "mb", callbackWorker: false, stallTimeoutMs: 50 });
  const handler = startScript(rcu, new SharedArrayBuffer(64), [{ op: "takeStalls" }]);
  await handler.exited;
  await sleep(0); // let watch()'s exit handler reap it
  const reader = startScript(rcu, new SharedArrayBuffer(64), [
    { op: "lock" },
    { op: "post", msg: "locked" },
    { op: "waitStalls" },
    { op: "unlock" },
  ]);
  await reader.next("locked");
  const printed: RcuStallReport[] = [];
  setRcuStallHandler((r) => printed.push(r)); // this thread's default: what it prints
  try {
    rcu.synchronize(); // finds the reader; returns once the reader saw the stall counted
  } finally {
    setRcuStallHandler(null);
  }
  await reader.exited;
  assert.ok(printed.length >= 1, "the report went to a dead thread's handler instead of printing");
  assert.equal(printed[0]!.what, StallWhat.READER);
});
