/**
 * A grace-period driver asleep on GP_FUTEX is woken by the reader that lets it go: mb readUnlock()
 * (the driver marked its slot MB_WAKE), qsbr quiescentState() and offline() (they load GP_FUTEX).
 * A sleeper worker waits on GP_FUTEX = -1 exactly as the driver's waitSlot() does, with a timeout
 * far above any scheduling delay; a lost wakeup shows as "timed-out". (The reordering these paths
 * rule out, a plain GP_FUTEX load passing the SC slot store, cannot be provoked on x86-64, where a
 * plain and an atomic load compile to the same instruction.)
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { Ctl, MB_WAKE, Slot } from "../src/rcu/layout.js";
import { Rcu, type RcuThread } from "../src/rcu/mod.js";

const SLEEP_MS = 20_000;

async function wakesSleeper(rcu: Rcu, t: RcuThread, enter: () => void, leave: () => void): Promise<string> {
  const ctl = new Int32Array(rcu.handle.ctl);
  const slots = new Int32Array(rcu.handle.slots);
  enter();
  // As the driver's waitSlot() does before it sleeps: GP_FUTEX = -1, and (mb) the slot marked.
  Atomics.store(ctl, Ctl.GP_FUTEX, -1);
  if (rcu.flavor === "mb") {
    const i = t.slot * Slot.STRIDE + Slot.CTR;
    const v = Atomics.load(slots, i);
    assert.notEqual(v, 0, "inside a section");
    assert.equal(Atomics.compareExchange(slots, i, v, v | MB_WAKE), v);
  }
  const w = new Worker(new URL("./rcu-futex-sleeper-worker.js", import.meta.url), {
    workerData: { ctl: rcu.handle.ctl, index: Ctl.GP_FUTEX, ms: SLEEP_MS },
  });
  const result = new Promise<string>((resolve) =>
    w.once("message", (m: { result: string }) => resolve(m.result)),
  );
  await new Promise<void>((resolve) => w.once("online", () => resolve()));
  // The sleeper waits (or is about to): "ok" if woken, "not-equal" if the reader came first.
  leave();
  const r = await result;
  await w.terminate();
  assert.equal(Atomics.load(ctl, Ctl.GP_FUTEX), 0, "the reader reset GP_FUTEX");
  return r;
}

const CASES: [string, "mb" | "qsbr", (t: RcuThread) => void, (t: RcuThread) => void][] = [
  ["mb readUnlock()", "mb", (t) => t.readLock(), (t) => t.readUnlock()],
  ["qsbr quiescentState()", "qsbr", () => {}, (t) => t.quiescentState()],
  ["qsbr offline()", "qsbr", () => {}, (t) => t.offline()],
];

for (const [name, flavor, enter, leave] of CASES) {
  test(`${name} wakes a grace-period driver asleep on GP_FUTEX`, async () => {
    const rcu = await Rcu.create({ flavor, callbackWorker: false });
    const t = rcu.register();
    const ctl = new Int32Array(rcu.handle.ctl);
    // qsbr: the counter moves (as a driver's waitQsbr() does), so quiescentState() must store.
    if (flavor === "qsbr") Atomics.add(ctl, Ctl.GP_CTR, 2);
    const r = await wakesSleeper(
      rcu,
      t,
      () => enter(t),
      () => leave(t),
    );
    assert.notEqual(r, "timed-out", "the driver slept through the reader's exit: a lost wakeup");
    t.unregister();
  });
}
