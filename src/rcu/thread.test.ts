/**
 * Single-thread checks of the registered-thread API: nesting, misuse errors, polling, call() codes.
 * Multi-worker behaviour is in test/rcu-*.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Errno } from "../common/errno.js";
import { RcuCallbackRegistry } from "./callbacks.js";
import { CallbackEngine } from "./engine.js";
import { RcuUsageError } from "./errors.js";
import type { RcuFlavor } from "./options.js";
import { Slot } from "./layout.js";
import { Rcu } from "./rcu.js";
import { RcuShared } from "./shared.js";
import type { RcuThreadBase } from "./thread.js";

for (const flavor of ["mb", "qsbr"] as RcuFlavor[]) {
  test(`${flavor}: readLock() nests and only the outermost unlock ends the section`, async () => {
    const rcu = await Rcu.create({ flavor, callbackWorker: false });
    const t = rcu.register();
    t.readLock();
    t.readLock();
    assert.equal(t.nesting, 2);
    t.readUnlock();
    assert.throws(() => t.synchronize(), RcuUsageError);
    t.readUnlock();
    assert.equal(t.nesting, 0);
    t.synchronize();
    t.unregister();
  });

  test(`${flavor}: an unbalanced readUnlock() throws and leaves the thread usable`, async () => {
    const rcu = await Rcu.create({ flavor, callbackWorker: false });
    const t = rcu.register();
    assert.throws(() => t.readUnlock(), /readUnlock\(\) without a matching readLock\(\)/);
    assert.equal(t.nesting, 0);
    t.readLock();
    t.readUnlock();
    t.unregister();
  });

  test(`${flavor}: synchronize, trySynchronize, barrier and unregister inside a section throw, not hang`, async () => {
    const rcu = await Rcu.create({ flavor, callbackWorker: false });
    const t = rcu.register();
    t.readLock();
    assert.throws(() => t.synchronize(), /inside a read-side section/);
    assert.throws(() => t.trySynchronize(10), /inside a read-side section/);
    assert.throws(() => t.barrier(), /inside a read-side section/);
    assert.throws(() => rcu.synchronize(), /inside a read-side section/);
    assert.throws(() => t.unregister(), /inside a read-side section/);
    t.readUnlock();
    t.unregister();
  });

  test(`${flavor}: a handle used after unregister() throws and cannot touch the slot's next owner`, async () => {
    const rcu = await Rcu.create({ flavor, callbackWorker: false });
    const stale = rcu.register();
    stale.unregister();
    const owner = rcu.register();
    assert.equal(owner.slot, stale.slot, "the freed slot is claimed again");
    const slots = new Int32Array(rcu.handle.slots);
    const ctr = owner.slot * Slot.STRIDE + Slot.CTR;
    if (flavor === "qsbr") owner.quiescentState();
    owner.readLock();
    const inSection = slots[ctr];
    assert.notEqual(inSection, 0, "the owner's slot shows it as a reader");
    if (flavor === "mb") assert.throws(() => stale.readLock(), /unregistered/);
    else assert.throws(() => stale.online(), /unregistered/);
    assert.throws(() => stale.readUnlock(), /without a matching readLock/);
    stale.offline();
    stale.quiescentState();
    assert.equal(slots[ctr], inSection, "the stale handle left the owner's slot alone");
    owner.readUnlock();
    owner.unregister();
  });

  test(`${flavor}: barrier() without a callback worker throws`, async () => {
    const rcu = await Rcu.create({ flavor, callbackWorker: false });
    const t = rcu.register();
    assert.throws(() => t.barrier(), /no callback worker runs/);
    t.unregister();
  });

  test(`${flavor}: pollState() turns true once a grace period after getState() completes`, async () => {
    const rcu = await Rcu.create({ flavor, callbackWorker: false });
    const t = rcu.register();
    const cookie = t.getState();
    assert.equal(t.pollState(cookie), false);
    const later = rcu.getState();
    assert.equal(later, cookie, "cookies taken with no grace period in between name the same period");
    t.synchronize();
    assert.equal(t.pollState(cookie), true);
    assert.equal(rcu.pollState(cookie), true);
    assert.equal(t.pollState(t.getState()), false);
    t.unregister();
  });

  test(`${flavor}: startPoll() without a callback worker throws; condSynchronize() ends a getState() cookie`, async () => {
    const rcu = await Rcu.create({ flavor, callbackWorker: false });
    const t = rcu.register();
    assert.throws(() => t.startPoll(), /no callback worker runs for this RCU domain/);
    assert.throws(() => rcu.startPoll(), RcuUsageError);
    const cookie = t.getState();
    t.condSynchronize(cookie);
    assert.equal(t.pollState(cookie), true);
    const gps = rcu.stats().gracePeriods;
    t.condSynchronize(cookie);
    assert.equal(rcu.stats().gracePeriods, gps, "an expired cookie needs no grace period");
    assert.equal(t.isOnline, flavor === "qsbr", "condSynchronize() left the thread as it found it");
    t.readLock();
    assert.throws(() => t.condSynchronize(t.getState()), /inside a read-side section/);
    t.readUnlock();
    t.unregister();
  });

  test(`${flavor}: call() and callHead() after unregister() throw and queue nothing`, async () => {
    const rcu = await Rcu.create({ flavor, callbackWorker: false, staticHeads: 1, gpDelayMs: 0 });
    const { engine } = defineKinds(rcu, 1);
    const head = rcu.reserveHeads(1);
    const stale = rcu.register();
    assert.equal(stale.call(0), Errno.OK, "the stale handle's cache held heads");
    stale.unregister();
    const owner = rcu.register();
    assert.equal(owner.call(0), Errno.OK);
    const queued = rcu.stats().queued;
    assert.throws(() => stale.call(0), /Cannot call call\(\): thread \d+ is unregistered/);
    assert.throws(() => stale.callHead(head, 0), /Cannot call callHead\(\)/);
    assert.equal(rcu.stats().queued, queued, "nothing was queued through the stale handle");
    owner.offline(); // qsbr: the engine below runs grace periods in this very thread
    for (let i = 0; i < 100 && !engine.idle(); i++) engine.step();
    assert.ok(engine.idle(), "the engine drained the queue (no foreign head linked into it)");
    assert.equal(rcu.stats().run, 2);
    owner.unregister();
    engine.release();
  });
}

/** Runs a callback engine in this thread (stepped by hand) whose kinds 0..n-1 do nothing. */
function defineKinds(rcu: Rcu, n: number) {
  const registry = new RcuCallbackRegistry(n);
  for (let k = 0; k < n; k++) registry.define(k, () => {});
  const engine = new CallbackEngine(RcuShared.attach(rcu.handle), registry, 1000);
  return { engine };
}

test("isOnline is on the common thread type: qsbr online/offline, mb never", async () => {
  const online = (t: RcuThreadBase): boolean => t.isOnline; // generic code: no flavor test
  const mb = await Rcu.create({ flavor: "mb", callbackWorker: false });
  const m = mb.register();
  assert.equal(online(m), false);
  m.unregister();
  const qsbr = await Rcu.create({ flavor: "qsbr", callbackWorker: false });
  const q = qsbr.register();
  assert.equal(online(q), true, "qsbr threads register online");
  q.offline();
  assert.equal(online(q), false);
  q.synchronize();
  assert.equal(online(q), false, "a wait leaves an offline thread offline");
  q.online();
  q.synchronize();
  assert.equal(online(q), true, "a wait brings an online thread back online");
  q.unregister();
  assert.equal(online(q), false);
});

test("register() twice on one thread throws", async () => {
  const rcu = await Rcu.create({ callbackWorker: false });
  const t = rcu.register();
  assert.throws(() => rcu.register(), /registered already/);
  t.unregister();
  rcu.register().unregister();
});

test("qsbr: readLock() while offline and quiescentState() inside a section throw", async () => {
  const rcu = await Rcu.create({ flavor: "qsbr", callbackWorker: false });
  const t = rcu.register();
  t.offline();
  assert.throws(() => t.readLock(), /while it is offline/);
  assert.equal(t.nesting, 0);
  t.online();
  t.readLock();
  assert.throws(() => t.quiescentState(), /inside a read-side section/);
  assert.throws(() => t.offline(), /inside a read-side section/);
  t.readUnlock();
  t.quiescentState();
  t.unregister();
});

test("call() returns INVAL for a bad or undefined kind and NOMEM (counted) when the pool is empty", async () => {
  const rcu = await Rcu.create({ callbackWorker: false, poolHeads: 100, maxKinds: 4 });
  const t = rcu.register();
  assert.equal(t.call(1, 1), Errno.INVAL, "no engine defines any kind yet");
  const { engine } = defineKinds(rcu, 2);
  assert.equal(t.call(4, 1), Errno.INVAL);
  assert.equal(t.call(-1, 1), Errno.INVAL);
  assert.equal(t.call(2, 1), Errno.INVAL, "kind 2 is in range but not defined");
  assert.equal(t.call(1.5, 1), Errno.INVAL);
  let queued = 0;
  while (t.call(1, queued) === Errno.OK) queued++;
  assert.equal(queued, 100);
  assert.equal(t.call(1), Errno.NOMEM);
  const s = rcu.stats();
  assert.equal(s.queued, 100);
  assert.equal(s.pending, 100);
  assert.equal(s.nomem, 2);
  t.unregister();
  engine.release();
});

test("callHead() queues a reserved head once: BUSY until it has run, INVAL outside the reservation", async () => {
  const rcu = await Rcu.create({ callbackWorker: false, staticHeads: 8 });
  const { engine } = defineKinds(rcu, 1);
  const t = rcu.register();
  const base = rcu.reserveHeads(8);
  assert.throws(() => rcu.reserveHeads(1), /only 0 of staticHeads are left/);
  assert.equal(t.callHead(base + 3, 0, 42), Errno.OK);
  assert.equal(t.callHead(base + 3, 0, 42), Errno.BUSY);
  assert.equal(t.callHead(base + 8, 0), Errno.INVAL);
  assert.equal(t.callHead(0, 0), Errno.INVAL);
  assert.equal(t.callHead(base + 4, 1), Errno.INVAL, "undefined kind");
  t.unregister();
  engine.release();
});

test("trySynchronize() succeeds at once with no reader in a section", async () => {
  const rcu = await Rcu.create({ callbackWorker: false });
  const t = rcu.register();
  assert.equal(t.trySynchronize(1000), Errno.OK);
  assert.equal(rcu.trySynchronize(1000), Errno.OK);
  assert.ok(rcu.stats().gracePeriods >= 2);
  t.unregister();
});
