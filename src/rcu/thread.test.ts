/**
 * Single-thread checks of the registered-thread API: nesting, misuse errors, polling, call() codes.
 * Multi-worker behaviour is in test/rcu-*.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Errno } from "../common/errno.js";
import { RcuUsageError } from "./errors.js";
import type { RcuFlavor } from "./options.js";
import { Slot } from "./layout.js";
import { Rcu } from "./rcu.js";

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

  test(`${flavor}: pollState() turns true once a grace period after startPoll() completes`, async () => {
    const rcu = await Rcu.create({ flavor, callbackWorker: false });
    const t = rcu.register();
    const cookie = t.startPoll();
    assert.equal(t.pollState(cookie), false);
    const later = t.startPoll();
    assert.equal(later, cookie, "cookies taken with no grace period in between name the same period");
    t.synchronize();
    assert.equal(t.pollState(cookie), true);
    assert.equal(rcu.pollState(cookie), true);
    assert.equal(t.pollState(t.startPoll()), false);
    t.unregister();
  });
}

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

test("call() returns INVAL for a bad kind and NOMEM (counted) when the pool is empty", async () => {
  const rcu = await Rcu.create({ callbackWorker: false, poolHeads: 100, maxKinds: 4 });
  const t = rcu.register();
  assert.equal(t.call(4, 1), Errno.INVAL);
  assert.equal(t.call(-1, 1), Errno.INVAL);
  let queued = 0;
  while (t.call(1, queued) === Errno.OK) queued++;
  assert.equal(queued, 100);
  assert.equal(t.call(1), Errno.NOMEM);
  const s = rcu.stats();
  assert.equal(s.queued, 100);
  assert.equal(s.pending, 100);
  assert.equal(s.nomem, 2);
  t.unregister();
});

test("callHead() queues a reserved head once: BUSY until it has run, INVAL outside the reservation", async () => {
  const rcu = await Rcu.create({ callbackWorker: false, staticHeads: 8 });
  const t = rcu.register();
  const base = rcu.reserveHeads(8);
  assert.throws(() => rcu.reserveHeads(1), /only 0 of staticHeads are left/);
  assert.equal(t.callHead(base + 3, 0, 42), Errno.OK);
  assert.equal(t.callHead(base + 3, 0, 42), Errno.BUSY);
  assert.equal(t.callHead(base + 8, 0), Errno.INVAL);
  assert.equal(t.callHead(0, 0), Errno.INVAL);
  t.unregister();
});

test("trySynchronize() succeeds at once with no reader in a section", async () => {
  const rcu = await Rcu.create({ callbackWorker: false });
  const t = rcu.register();
  assert.equal(t.trySynchronize(1000), Errno.OK);
  assert.equal(rcu.trySynchronize(1000), Errno.OK);
  assert.ok(rcu.stats().gracePeriods >= 2);
  t.unregister();
});
