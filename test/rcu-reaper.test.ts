/**
 * The RCU reaper thread (src/rcu/watch.ts): a watched thread terminated inside a read-side section
 * is reaped while its watcher is blocked in a synchronous synchronize(), and a callback worker
 * terminated while its creator is blocked in barrier() fails the barrier. The negative control
 * watches the same reader the old way (the "exit" event only) and the same wait times out: the
 * test can tell the two apart. A reader that runs out of memory in its section is reaped the same way.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { Errno } from "../src/common/errno.js";
import { Rcu, type RcuFlavor, type RcuStallReport, StallWhat } from "../src/rcu/mod.js";
import type { Step } from "./rcu-script-worker.js";

const FLAVORS: RcuFlavor[] = ["mb", "qsbr"];

/** Waits (on the event loop, where onStall reports arrive) until `list` has `n` entries, or 30 s. */
async function until<T>(list: T[], n: number): Promise<void> {
  for (let i = 0; i < 3000 && list.length < n; i++) await new Promise((resolve) => setTimeout(resolve, 10));
}

/** A script worker (rcu-script-worker.ts) that enters a read-side section, says so, and spins. */
function startReader(rcu: Rcu, withPort: boolean): { worker: Worker; locked: Promise<void> } {
  const steps: Step[] = [{ op: "lock" }, { op: "post", msg: "locked" }, { op: "spin" }];
  const watchPort = withPort ? rcu.watchPort() : undefined;
  const worker = new Worker(new URL("./rcu-script-worker.js", import.meta.url), {
    workerData: { handle: rcu.handle, flags: new SharedArrayBuffer(64), steps, watchPort },
    transferList: watchPort ? [watchPort] : [],
  });
  rcu.watch(worker, watchPort);
  worker.on("error", (e) => console.error("reader failed:", e));
  const locked = new Promise<void>((resolve) => worker.once("message", () => resolve()));
  return { worker, locked };
}

for (const flavor of FLAVORS) {
  test(`${flavor}: watch(worker, watchPort()) reaps a reader terminated in a section while the watcher blocks in synchronize()`, async () => {
    const rcu = await Rcu.create({ flavor, callbackWorker: false, stallTimeoutMs: 60_000 });
    const t = rcu.register();
    const died: RcuStallReport[] = [];
    rcu.onStall = (r) => {
      if (r.what === StallWhat.DIED) died.push(r);
    };
    const r = startReader(rcu, true);
    await r.locked;
    const tid = r.worker.threadId;
    const exited = new Promise((resolve) => r.worker.once("exit", resolve));
    void r.worker.terminate();
    // From here this thread blocks: the worker's "exit" event cannot run until the wait returns.
    assert.equal(t.trySynchronize(60_000), Errno.OK, "the reaper thread released the dead reader's slot");
    await exited;
    await until(died, 1); // the DIED report reaches onStall on this event loop
    assert.equal(died.length, 1, "one death reported");
    assert.equal(died[0]?.threadId, tid);
    assert.equal(died[0]?.slot, 1, "one reader slot released");
    rcu.onStall = null;
    t.unregister();
    await rcu.close();
  });

  test(`${flavor}: watch(worker) without a port cannot reap while the watcher blocks (negative control)`, async () => {
    const rcu = await Rcu.create({ flavor, callbackWorker: false, stallTimeoutMs: 60_000 });
    const t = rcu.register();
    const died: RcuStallReport[] = [];
    rcu.onStall = (r) => {
      if (r.what === StallWhat.DIED) died.push(r);
    };
    const r = startReader(rcu, false);
    await r.locked;
    const exited = new Promise((resolve) => r.worker.once("exit", resolve));
    void r.worker.terminate();
    assert.equal(t.trySynchronize(1500), Errno.TIMEDOUT, "nobody reaped it while this thread was blocked");
    await exited; // the "exit" event reaps it now
    assert.equal(t.trySynchronize(60_000), Errno.OK);
    assert.equal(died.length, 0, "the event-loop reaper reaps silently");
    rcu.onStall = null;
    t.unregister();
    await rcu.close();
  });

  test(`${flavor}: a callback worker terminated while its creator blocks in barrier() fails the barrier`, async () => {
    const w = new Worker(new URL("./rcu-reaper-creator-worker.js", import.meta.url), {
      workerData: { flavor, counters: new SharedArrayBuffer(64) },
    });
    const exited = new Promise((resolve) => w.once("exit", resolve));
    const m = await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error("no answer in 60 s: the creator hangs in barrier()")),
        60_000,
      );
      w.once("message", (msg) => {
        clearTimeout(timer);
        resolve(msg);
      });
      w.once("error", reject);
    });
    assert.deepEqual(m, { outcome: "RcuCallbackWorkerLostError", call: "EINVAL" });
    await exited;
  });
}

test("mb: the reaper releases a reader that ran out of memory in a section while the watcher blocks", async () => {
  const rcu = await Rcu.create({ flavor: "mb", callbackWorker: false, stallTimeoutMs: 60_000 });
  const t = rcu.register();
  const died: RcuStallReport[] = [];
  rcu.onStall = (r) => {
    if (r.what === StallWhat.DIED) died.push(r);
  };
  const watchPort = rcu.watchPort();
  const worker = new Worker(new URL("./rcu-reaper-oom-worker.js", import.meta.url), {
    workerData: { handle: rcu.handle, watchPort },
    transferList: [watchPort],
    resourceLimits: { maxOldGenerationSizeMb: 16 },
  });
  rcu.watch(worker, watchPort);
  const failed = new Promise<string>((resolve) =>
    worker.once("error", (e) => resolve((e as { code?: string }).code ?? "")),
  );
  await new Promise((resolve) => worker.once("message", resolve));
  // Blocked from here until the reader's slot is released: no "exit" handler runs on OOM.
  assert.equal(
    t.trySynchronize(60_000),
    Errno.OK,
    "the reaper released the slot of the reader that ran out of memory",
  );
  assert.equal(await failed, "ERR_WORKER_OUT_OF_MEMORY");
  await until(died, 1);
  assert.equal(died[0]?.slot, 1, "the reaper (not the dying thread) released one slot");
  rcu.onStall = null;
  t.unregister();
  await rcu.close();
});

test("watch() rejects a port that is not the domain's", async () => {
  const rcu = await Rcu.create({ callbackWorker: false });
  const other = await Rcu.create({ callbackWorker: false });
  const port = other.watchPort();
  const w = new Worker("setInterval(() => {}, 1000)", { eval: true });
  assert.throws(() => rcu.watch(w, port), RangeError);
  rcu.watchPort();
  assert.throws(() => rcu.watch(w, port), /not one of this domain's watchPort/);
  await w.terminate();
  await rcu.close();
  await other.close();
});
