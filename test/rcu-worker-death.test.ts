/**
 * Threads that die under an RCU domain: the callback worker (every waiter fails with
 * RcuCallbackWorkerLostError, call() returns EINVAL, nothing hangs), and a reader that dies in a
 * read-side section while its watcher is blocked in a synchronous wait (the dying thread releases
its own slot from its "exit" handler).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { Errno } from "../src/common/errno.js";
import { Ctl } from "../src/rcu/layout.js";
import { Rcu, RcuCallbackWorkerLostError, type RcuFlavor } from "../src/rcu/mod.js";
import { startScript, testPlugin } from "./rcu-helpers-worker.js";
import { TestKind } from "./rcu-test-plugin-worker.js";

const FLAVORS: RcuFlavor[] = ["mb", "qsbr"];

/** Resolves with the worker's first message, or rejects after `ms` (a hang fails, not stalls). */
function firstMessage<T>(w: Worker, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms: the thread hangs`)), ms);
    w.once("message", (m: T) => {
      clearTimeout(timer);
      resolve(m);
    });
    w.once("error", reject);
  });
}

for (const flavor of FLAVORS) {
  test(`${flavor}: a callback worker that exits inside a callback fails barrier(), startPoll() and call() clearly`, async () => {
    const counters = new SharedArrayBuffer(64);
    const rcu = await Rcu.create({ flavor, plugins: [testPlugin(counters)] });
    const t = rcu.register();
    t.offline(); // qsbr: this thread awaits below; its grace periods must not wait for it
    const flags = new SharedArrayBuffer(64);
    // Another thread waits in barrier() behind the callback that kills the worker.
    const w = startScript(rcu, flags, [
      { op: "call", kind: TestKind.INC, a0: 0, n: 5 },
      { op: "call", kind: TestKind.EXIT, a0: 0, n: 1 },
      { op: "barrier" },
    ]);
    const failure = new Promise<string>((resolve) => w.worker.once("error", (e) => resolve(e.name)));
    assert.equal(await failure, "RcuCallbackWorkerLostError", "the waiting barrier() failed with the loss");
    await w.exited;
    assert.throws(() => t.barrier(), RcuCallbackWorkerLostError);
    assert.throws(() => t.callAndWait(TestKind.INC, 0), RcuCallbackWorkerLostError);
    assert.equal(new Int32Array(counters)[0], 5, "the callbacks queued ahead of the fatal one ran");
    assert.throws(() => t.startPoll(), RcuCallbackWorkerLostError);
    assert.equal(t.call(TestKind.INC, 0), Errno.INVAL, "call() no longer reports OK for work nobody runs");
    t.synchronize(); // grace periods still work
    t.unregister();
    await rcu.close();
  });

  test(`${flavor}: a callback worker that dies fails a barrier() its blocked creator waits in`, async () => {
    const counters = new SharedArrayBuffer(64);
    const w = new Worker(new URL("./rcu-creator-worker.js", import.meta.url), {
      workerData: { flavor, counters },
    });
    const exited = new Promise((resolve) => w.once("exit", resolve));
    const m = await firstMessage<{ outcome: string; call: string }>(w, 60_000);
    assert.deepEqual(m, { outcome: "RcuCallbackWorkerLostError", call: "EINVAL" });
    await exited;
  });

  test(`${flavor}: a barrier() waiting for its slot's marker, queued by a thread that died, fails when the callback worker dies`, async () => {
    const counters = new SharedArrayBuffer(64);
    const gate = new Int32Array(counters);
    const GATE = 1;
    const rcu = await Rcu.create({ flavor, plugins: [testPlugin(counters)] });
    const t = rcu.register();
    t.offline();
    const urgent = new Int32Array(rcu.handle.ctl);
    // A holds the callback worker at a gate, queues the worker's death behind it, then its own
    // barrier marker, and is terminated while it waits: its slot goes back with the marker queued.
    const a = startScript(rcu, new SharedArrayBuffer(64), [
      { op: "call", kind: TestKind.GATE, a0: GATE, n: 1 },
      { op: "call", kind: TestKind.EXIT, a0: 0, n: 1 },
      { op: "barrier" },
    ]);
    // Pairs with barrier()'s Atomics.add of URGENT just before it pushes the marker.
    while (Atomics.load(urgent, Ctl.URGENT) === 0) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50));
    await a.worker.terminate();
    await a.exited;
    // B takes the slot A left (the lowest free one) and calls barrier(): the callback worker is
    // alive, so it waits for A's marker to finish before it queues its own.
    const b = startScript(rcu, new SharedArrayBuffer(64), [{ op: "post", msg: "in" }, { op: "barrier" }]);
    const failure = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error("barrier() still waits 30 s after the callback worker died")),
        30_000,
      );
      b.worker.once("error", (e) => {
        clearTimeout(timer);
        resolve(e.name);
      });
    });
    await b.next("in");
    await new Promise((r) => setTimeout(r, 50));
    Atomics.store(gate, GATE, 1); // the callback worker runs EXIT and dies before A's marker
    Atomics.notify(gate, GATE);
    assert.equal(await failure, "RcuCallbackWorkerLostError");
    await b.exited;
    t.unregister();
    await rcu.close();
  });

  test(`${flavor}: a reader that exits in a section frees its slot while its watcher blocks in synchronize()`, async () => {
    const rcu = await Rcu.create({ flavor, callbackWorker: false, stallTimeoutMs: 60_000 });
    const t = rcu.register();
    const flags = new SharedArrayBuffer(64);
    const w = startScript(rcu, flags, [
      { op: "lock" },
      { op: "post", msg: "locked" },
      { op: "waitFlag", index: 0 },
      { op: "exit" },
    ]);
    await w.next("locked");
    Atomics.store(new Int32Array(flags), 0, 1); // the reader exits inside its section, soon
    // From here this thread blocks: the reader's "exit" event cannot run until the wait returns.
    const r = t.trySynchronize(30_000);
    assert.equal(r, Errno.OK, "the dead reader released its slot without the watcher's event loop");
    await w.exited;
    t.unregister();
  });
}
