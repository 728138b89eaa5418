/**
 * Callbacks across threads with the real callback worker: barrier semantics (callbacks from any
 * thread, sliced callbacks, concurrent barriers, barrier inside a callback), polling driven by the
 * worker alone, and reserved heads.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Rcu, type RcuFlavor } from "../src/rcu/mod.js";
import { startScript, testPlugin } from "./rcu-helpers-worker.js";
import { TestKind } from "./rcu-test-plugin-worker.js";

const FLAVORS: RcuFlavor[] = ["mb", "qsbr"];

async function domain(flavor: RcuFlavor, counters: SharedArrayBuffer, extra = {}) {
  return Rcu.create({ flavor, plugins: [testPlugin(counters)], stallTimeoutMs: 30_000, ...extra });
}

for (const flavor of FLAVORS) {
  test(`${flavor}: barrier() waits for slow callbacks queued by other threads`, async () => {
    const counters = new SharedArrayBuffer(64);
    const flags = new SharedArrayBuffer(64);
    const rcu = await domain(flavor, counters);
    const t = rcu.register();
    const workers = [0, 1].map((i) =>
      startScript(rcu, flags, [
        { op: "call", kind: TestKind.INC, a0: i, a1: 200, n: 40 },
        { op: "post", msg: "queued" },
        { op: "offline" },
        { op: "waitFlag", index: 0 },
      ]),
    );
    await Promise.all(workers.map((w) => w.next("queued")));
    t.barrier();
    const c = new Int32Array(counters);
    assert.deepEqual([c[0], c[1]], [40, 40], "every callback queued before barrier() has run");
    Atomics.store(new Int32Array(flags), 0, 1);
    await Promise.all(workers.map((w) => w.exited));
    t.unregister();
    await rcu.close();
  });

  test(`${flavor}: barrier() waits for every slice of a sliced callback`, async () => {
    const counters = new SharedArrayBuffer(64);
    const rcu = await domain(flavor, counters);
    const t = rcu.register();
    for (let i = 0; i < 5; i++) assert.equal(t.call(TestKind.SLICED, 20, 3), 0);
    t.barrier();
    assert.equal(new Int32Array(counters)[3], 5);
    const s = rcu.stats();
    assert.equal(s.slices, 100);
    assert.equal(s.pending, 0);
    t.unregister();
    await rcu.close();
  });

  test(`${flavor}: concurrent barrier() calls from several threads each see their own callbacks done`, async () => {
    const counters = new SharedArrayBuffer(64);
    const flags = new SharedArrayBuffer(64);
    const rcu = await domain(flavor, counters);
    const workers = [0, 1, 2].map((i) =>
      startScript(rcu, flags, [
        { op: "call", kind: TestKind.INC, a0: i, a1: 20, n: 100 },
        { op: "barrier" },
        { op: "post", msg: "barrier-done" },
      ]),
    );
    const c = new Int32Array(counters);
    await Promise.all(
      workers.map(async (w, i) => {
        await w.next("barrier-done");
        assert.ok(Atomics.load(c, i) === 100, `worker ${i}: its barrier returned before its callbacks ran`);
      }),
    );
    await Promise.all(workers.map((w) => w.exited));
    assert.equal(rcu.stats().barriers, 3);
    await rcu.close();
  });

  test(`${flavor}: barrier() inside a callback throws instead of waiting for itself`, async () => {
    const counters = new SharedArrayBuffer(64);
    const rcu = await domain(flavor, counters);
    const t = rcu.register();
    t.call(TestKind.TRY_BARRIER, 5);
    t.barrier();
    assert.equal(new Int32Array(counters)[5], 1);
    t.unregister();
    await rcu.close();
  });

  test(`${flavor}: a startPoll() cookie expires with nobody calling synchronize()`, async () => {
    const rcu = await domain(flavor, new SharedArrayBuffer(64));
    const t = rcu.register();
    t.offline(); // qsbr: this thread only sleeps below
    const cookie = t.startPoll();
    const nap = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 0; i < 10_000 && !t.pollState(cookie); i++) Atomics.wait(nap, 0, 0, 1);
    assert.equal(t.pollState(cookie), true, "the callback worker drove the polled grace period");
    t.online();
    t.unregister();
    await rcu.close();
  });

  test(`${flavor}: close() runs every callback still queued`, async () => {
    const counters = new SharedArrayBuffer(64);
    const rcu = await domain(flavor, counters, { gpDelayMs: 50 });
    const t = rcu.register();
    for (let i = 0; i < 1000; i++) t.call(TestKind.INC, 7);
    t.unregister();
    await rcu.close();
    assert.equal(new Int32Array(counters)[7], 1000);
    assert.equal(rcu.stats().pending, 0);
  });
}

test("reserved heads: one per object, queued from several threads, each runs once", async () => {
  const counters = new SharedArrayBuffer(4 * 64);
  const flags = new SharedArrayBuffer(64);
  const rcu = await domain("mb", counters, { staticHeads: 64, poolHeads: 0 });
  const base = rcu.reserveHeads(64);
  const t = rcu.register();
  for (let i = 0; i < 32; i++) assert.equal(t.callHead(base + i, TestKind.INC, i), 0);
  const w = startScript(rcu, flags, [{ op: "barrier" }]);
  await w.exited;
  t.barrier();
  assert.deepEqual(Array.from(new Int32Array(counters).subarray(0, 32)), new Array(32).fill(1));
  for (let i = 0; i < 32; i++) assert.equal(t.callHead(base + i, TestKind.INC, i), 0, "idle again");
  t.barrier();
  assert.equal(rcu.stats().run, 64);
  t.unregister();
  await rcu.close();
});
