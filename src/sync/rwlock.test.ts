import assert from "node:assert/strict";
import { test } from "node:test";
import { RacePoint, setRaceHook } from "../common/race-points.js";
import { Hold, inhibited, RwLock, type RwLockHandle, RwLockUsageError } from "./rwlock.js";

test("readLock() admits several readers and keeps writers out", () => {
  const a = RwLock.create();
  const b = RwLock.attach(a.handle);
  a.readLock();
  assert.equal(b.tryReadLock(), true);
  assert.equal(a.readerCount(), 2);
  assert.equal(b.tryWriteLock(), false);
  assert.equal(a.isWriteLocked(), false);
  b.readUnlock();
  a.readUnlock();
  assert.equal(a.readerCount(), 0);
  assert.equal(b.tryWriteLock(), true);
  b.writeUnlock();
});

test("writeLock() excludes readers and other writers until writeUnlock()", () => {
  const a = RwLock.create();
  const b = RwLock.attach(a.handle);
  a.writeLock();
  assert.equal(a.isWriteLocked(), true);
  assert.equal(b.tryReadLock(), false);
  assert.equal(b.tryWriteLock(), false);
  assert.equal(a.readerCount(), 0, "a failed tryReadLock() leaves no reader count behind");
  a.writeUnlock();
  assert.equal(a.isWriteLocked(), false);
  assert.equal(b.tryReadLock(), true);
  b.readUnlock();
});

test("stats() sums the acquisitions of every view", () => {
  const a = RwLock.create();
  const b = RwLock.attach(a.handle);
  for (let i = 0; i < 5; i++) {
    a.readLock();
    a.readUnlock();
  }
  b.writeLock();
  b.writeUnlock();
  assert.equal(b.tryReadLock(), true);
  b.readUnlock();
  const s = b.stats();
  assert.equal(s.readAcquisitions, 6);
  assert.equal(s.writeAcquisitions, 1);
  assert.equal(s.readContended + s.writeContended + s.sleeps + s.yields, 0);
  assert.equal(s.threads, 2);
});

test("attach() works on a structured clone of the handle", () => {
  const a = RwLock.create({ name: "mmu_lock", maxThreads: 4 });
  const b = RwLock.attach(structuredClone(a.handle));
  a.writeLock();
  assert.equal(b.isWriteLocked(), true, "the clone shares the memory");
  a.writeUnlock();
  assert.equal(b.name, "mmu_lock");
});

test("create() and attach() reject bad options and handles", () => {
  assert.throws(() => RwLock.create({ maxThreads: 0 }), RangeError);
  assert.throws(() => RwLock.create({ maxThreads: 5000 }), /maxThreads 5000 is not an integer in 1\.\.2047/);
  assert.throws(() => RwLock.create({ name: "" }), TypeError);
  assert.throws(() => RwLock.create({ spins: -3 }), RangeError);
  assert.throws(() => RwLock.attach({} as RwLockHandle), TypeError);
  const h = RwLock.create().handle;
  assert.throws(() => RwLock.attach({ ...h, maxThreads: h.maxThreads + 1 }), TypeError);
});

test("attach() throws once every thread slot is taken", () => {
  const a = RwLock.create({ maxThreads: 2, name: "tiny" });
  RwLock.attach(a.handle);
  assert.throws(
    () => RwLock.attach(a.handle),
    /Cannot attach to rwlock "tiny": all 2 thread slots are taken/,
  );
});

test("needsResched() and yield*() do nothing when nobody waits", () => {
  const a = RwLock.create();
  a.readLock();
  assert.equal(a.needsResched(), false);
  assert.equal(a.yieldRead(), false);
  a.readUnlock();
  a.writeLock();
  assert.equal(a.yieldWrite(), false);
  a.writeUnlock();
  assert.equal(a.stats().yields, 0);
});

test("readUnlock() and writeUnlock() without the lock throw and leave the state intact", () => {
  const a = RwLock.create({ name: "mmu_lock" });
  assert.throws(() => a.readUnlock(), /Cannot release mmu_lock for read: no reader holds it/);
  assert.throws(() => a.writeUnlock(), /Cannot release mmu_lock for write: no writer holds it/);
  // Misuse is a typed error, distinct from the RangeError/TypeError of bad options.
  assert.throws(() => a.readUnlock(), RwLockUsageError);
  assert.equal(a.tryWriteLock(), true, "the failed unlocks did not corrupt the lock word");
  assert.throws(() => a.readUnlock(), /no reader holds it/);
  a.writeUnlock();
});

test("debug mode: unlocking what this thread does not hold throws a clear error", () => {
  const a = RwLock.create({ name: "mmu_lock", debug: true });
  const b = RwLock.attach(a.handle);
  assert.throws(() => a.readUnlock(), /Cannot release mmu_lock for read: this thread holds nothing/);
  a.writeLock();
  assert.throws(() => b.writeUnlock(), /Cannot release mmu_lock for write: this thread holds nothing/);
  assert.throws(() => a.readUnlock(), /for read: this thread holds write/);
  a.writeUnlock();
  b.readLock();
  assert.throws(() => a.readUnlock(), /this thread holds nothing/, "another view's read lock is not ours");
  b.readUnlock();
});

test("debug mode: nested locking throws instead of deadlocking", () => {
  const a = RwLock.create({ name: "mmu_lock", debug: true });
  a.readLock();
  assert.throws(() => a.readLock(), /Cannot take mmu_lock for read: this thread already holds it for read/);
  assert.throws(() => a.writeLock(), /Cannot take mmu_lock for write: this thread already holds it for read/);
  assert.throws(() => a.tryReadLock(), /already holds it/);
  a.readUnlock();
  a.writeLock();
  assert.throws(() => a.tryWriteLock(), /already holds it for write/);
  a.writeUnlock();
});

test("debug mode: assert*Held() check this thread's holding", () => {
  const a = RwLock.create({ name: "mmu_lock", debug: true });
  const b = RwLock.attach(a.handle);
  assert.throws(() => a.assertHeld(), /mmu_lock must be held here, but this thread holds nothing/);
  a.writeLock();
  a.assertWriteHeld();
  a.assertHeld();
  assert.throws(() => a.assertReadHeld(), /must be held for read here, but this thread holds write/);
  assert.throws(() => a.assertNotHeld(), /must not be held here, but this thread holds it for write/);
  assert.throws(() => b.assertWriteHeld(), /must be held for write here, but this thread holds nothing/);
  b.assertNotHeld();
  a.writeUnlock();
  a.readLock();
  a.assertReadHeld();
  assert.throws(() => a.assertWriteHeld(), /but this thread holds read/);
  a.readUnlock();
});

test("without debug mode, assert*Held() check that anyone holds the lock", () => {
  const a = RwLock.create({ name: "mmu_lock" });
  const b = RwLock.attach(a.handle);
  assert.throws(() => b.assertWriteHeld(), /must be held for write here, but nobody holds it/);
  a.writeLock();
  b.assertWriteHeld();
  assert.throws(() => b.assertReadHeld(), /but a writer holds it/);
  a.writeUnlock();
  a.readLock();
  b.assertReadHeld();
  b.assertHeld();
  b.assertNotHeld(); // a no-op without debug mode
  a.readUnlock();
});

test("snapshot() shows who holds the lock", () => {
  const a = RwLock.create();
  const idle = {
    readers: 0,
    waitingReaders: 0,
    waitingWriters: 0,
    writerDraining: false,
    writeLocked: false,
    ownerDead: false,
  };
  assert.deepEqual(a.snapshot(), idle);
  a.readLock();
  assert.deepEqual(a.snapshot(), { ...idle, readers: 1 });
  a.readUnlock();
  a.writeLock();
  assert.deepEqual(a.snapshot(), { ...idle, writeLocked: true });
  a.writeUnlock();
  assert.deepEqual(a.snapshot(), idle);
});

test("attach() takes a per-thread waiting policy and checks it", () => {
  const a = RwLock.create({ spins: 100, sleepMs: 5 });
  assert.doesNotThrow(() => RwLock.attach(a.handle, { spins: 0 }));
  assert.throws(() => RwLock.attach(a.handle, { sleepMs: -1 }), RangeError);
});

// Views in one thread stand in for threads here: reapHolder() only reads the HOLD word another
// view wrote, as it would after that view's thread died.
test("reapHolder() takes back a dead reader's hold and the next writer repairs first", () => {
  const a = RwLock.create();
  const dead = RwLock.attach(a.handle);
  dead.readLock();
  assert.equal(a.holdOf(dead.slot), Hold.R);
  assert.equal(a.tryWriteLock(), false, "the dead reader keeps writers out until reaped");
  let repairs = 0;
  a.onOwnerDead = () => {
    a.assertWriteHeld();
    repairs++;
  };
  assert.equal(a.reapHolder(dead.slot), Hold.R);
  assert.deepEqual(
    { readers: a.readerCount(), ownerDead: a.snapshot().ownerDead },
    { readers: 0, ownerDead: true },
  );
  a.writeLock(); // the uncontended CAS fails on OWNER_DEAD: the slow path repairs
  assert.equal(repairs, 1);
  assert.equal(a.snapshot().ownerDead, false);
  a.writeUnlock();
  a.writeLock();
  assert.equal(repairs, 1, "the repair runs once per death");
  a.writeUnlock();
  assert.equal(a.reapHolder(dead.slot), Hold.NONE, "reaping twice takes nothing twice");
});

test("reapHolder() releases a dead writer and leaves no OWNER_DEAD when told not to mark it", () => {
  const a = RwLock.create({ debug: true });
  const dead = RwLock.attach(a.handle);
  dead.writeLock();
  assert.equal(a.holdOf(dead.slot), Hold.OWNED | Hold.ACTIVE);
  assert.equal(a.reapHolder(dead.slot, false), Hold.OWNED | Hold.ACTIVE);
  assert.equal(a.isWriteLocked(), false);
  assert.equal(a.snapshot().ownerDead, false);
  assert.equal(a.tryWriteLock(), true, "debug OWNER was cleared with the hold");
  a.writeUnlock();
});

test("a writer without an onOwnerDead hook leaves OWNER_DEAD for one that has it", () => {
  const a = RwLock.create();
  const b = RwLock.attach(a.handle);
  const dead = RwLock.attach(a.handle);
  dead.readLock();
  a.reapHolder(dead.slot);
  b.writeLock();
  b.writeUnlock();
  assert.equal(a.snapshot().ownerDead, true);
  let repaired = false;
  a.onOwnerDead = () => {
    repaired = true;
  };
  a.writeLock();
  a.writeUnlock();
  assert.equal(repaired, true);
  assert.equal(a.snapshot().ownerDead, false);
});

test("HOLD follows every lock and unlock, and reapHolder() refuses bad slots", () => {
  const a = RwLock.create();
  const b = RwLock.attach(a.handle);
  assert.equal(a.holdOf(b.slot), Hold.NONE);
  assert.equal(b.tryReadLock(), true);
  assert.equal(a.holdOf(b.slot), Hold.R);
  b.readUnlock();
  assert.equal(a.holdOf(b.slot), Hold.NONE);
  a.writeLock();
  assert.equal(b.tryReadLock(), false);
  assert.equal(a.holdOf(b.slot), Hold.NONE, "a failed tryReadLock() leaves no hold");
  a.writeUnlock();
  assert.equal(b.tryWriteLock(), true);
  b.writeUnlock();
  assert.equal(a.holdOf(b.slot), Hold.NONE);
  assert.throws(() => a.reapHolder(a.slot), RangeError);
  assert.throws(() => a.reapHolder(7), RangeError);
});

test("tryWriteLock() takes a free lock over OWNER_DEAD and repairs, but never a held one", () => {
  const a = RwLock.create();
  const b = RwLock.attach(a.handle);
  const dead = RwLock.attach(a.handle);
  let repairs = 0;
  a.onOwnerDead = () => {
    repairs++;
  };
  dead.readLock();
  a.reapHolder(dead.slot);
  b.readLock();
  assert.equal(a.tryWriteLock(), false, "a live reader is inside");
  b.readUnlock();
  assert.equal(a.tryWriteLock(), true);
  assert.equal(repairs, 1);
  assert.equal(a.snapshot().ownerDead, false);
  a.writeUnlock();
});

// Reader bias: views in one thread stand in for threads, as above.

/**
 * Read pairs by `v` until one goes in through the bias (as `observer` sees it), for at most `ms`:
 * the bias comes back once the last revocation's inhibit has passed.
 */
function biasedWithin(v: RwLock, observer: RwLock, ms: number): boolean {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    v.readLock();
    const fast = observer.holdOf(v.slot) === Hold.FAST;
    v.readUnlock();
    if (fast) return true;
  }
  return false;
}

/** A view's first read lock is counted and opens its gate (every gate starts shut). */
function openGate(...views: RwLock[]): void {
  for (const v of views) {
    v.readLock();
    v.readUnlock();
  }
}
test("reader bias: readers get in on their own line; a writer turns the bias off and waits for them", () => {
  const a = RwLock.create({ readerBias: true, debug: true });
  const b = RwLock.attach(a.handle);
  const c = RwLock.attach(a.handle);
  a.readLock();
  assert.equal(c.holdOf(a.slot), Hold.R, "a view's first read lock is counted");
  a.readUnlock();
  openGate(b);
  a.readLock();
  b.readLock();
  assert.equal(c.holdOf(a.slot), Hold.FAST, "in through the bias");
  assert.equal(c.readerCount(), 2, "biased readers are counted by a scan");
  assert.equal(c.snapshot().readers, 2);
  a.assertReadHeld();
  assert.equal(c.tryWriteLock(), false, "a biased reader is inside");
  assert.equal(c.snapshot().writeLocked, false, "the failed try left nothing claimed");
  // The failed try turned the bias off: a reader that comes now is counted in STATE.
  a.readUnlock();
  a.readLock();
  assert.equal(c.holdOf(a.slot), Hold.R);
  a.readUnlock();
  b.readUnlock();
  assert.equal(c.readerCount(), 0);
  assert.equal(c.tryWriteLock(), true);
  assert.equal(a.tryReadLock(), false, "no reader gets in past a writer");
  c.writeUnlock();
  // Once the inhibit time (nine times the revocation's drain) has passed, a counted reader turns
  // the bias back on and the next readers are biased again.
  assert.equal(biasedWithin(a, c, 20), true, "the bias came back within 20 ms");
  const stats = c.stats();
  assert.equal(stats.writeAcquisitions, 1);
});

test("reader bias: a dead biased reader is reaped like a counted one, and the writer repairs first", () => {
  const a = RwLock.create({ readerBias: true });
  const dead = RwLock.attach(a.handle);
  openGate(dead);
  dead.readLock();
  assert.equal(a.holdOf(dead.slot), Hold.FAST);
  assert.equal(a.tryWriteLock(), false, "the dead reader keeps writers out until reaped");
  let repairs = 0;
  a.onOwnerDead = () => {
    a.assertWriteHeld();
    repairs++;
  };
  // The failed try asked the reader to shut its gate as it leaves (WAKE): the reap shuts it.
  assert.equal(a.reapHolder(dead.slot), Hold.FAST | Hold.WAKE);
  assert.equal(a.holdOf(dead.slot), Hold.NONE);
  assert.equal(a.snapshot().ownerDead, true);
  assert.equal(a.readerCount(), 0);
  a.writeLock();
  assert.equal(repairs, 1);
  a.writeUnlock();
});

test("reader bias: a view attached while a writer is inside is not let in past it, and opens its gate later", () => {
  // Every gate starts shut: a view that attaches after the writer read the number of views is
  // not in its scan, and must not find its gate open.
  const w = RwLock.create({ readerBias: true });
  const early = RwLock.attach(w.handle);
  openGate(early);
  early.readLock();
  assert.equal(w.holdOf(early.slot), Hold.FAST, "attached before any writer: its gate is open");
  early.readUnlock();
  w.writeLock();
  const late = RwLock.attach(w.handle);
  assert.equal(late.tryReadLock(), false, "no reader gets in past the writer inside");
  assert.equal(early.tryReadLock(), false);
  w.writeUnlock();
  // Its first read lock is counted; once the inhibit has passed, a counted one opens its gate
  // (with the bias back on, or turning it back on) and the next read locks are biased.
  late.readLock();
  assert.equal(w.holdOf(late.slot), Hold.R);
  late.readUnlock();
  assert.equal(biasedWithin(late, w, 20), true, "the late view's gate opened within 20 ms");
  // A view attached while the bias is on opens its gate at its first, counted, read lock.
  const fresh = RwLock.attach(w.handle);
  fresh.readLock();
  assert.equal(w.holdOf(fresh.slot), Hold.R);
  fresh.readUnlock();
  fresh.readLock();
  assert.equal(w.holdOf(fresh.slot), Hold.FAST);
  fresh.readUnlock();
});

test("reader bias: the handle says so, and attach() refuses a handle without it", () => {
  const a = RwLock.create({ readerBias: true });
  assert.equal(a.handle.readerBias, true);
  assert.equal(RwLock.create().handle.readerBias, false);
  const { readerBias: _, ...old } = a.handle;
  assert.throws(() => RwLock.attach(old as RwLockHandle), /does not come from RwLock.create/);
});

test("reader bias: after a tryWriteLock() gave up on a biased reader, the next writer still waits for it", () => {
  // Found by the soak: a death watch's tryWriteLock() turned the bias off and gave up; the host's
  // writeLock() then saw the bias off, skipped the scan and went in past a vCPU inside for read.
  const a = RwLock.create({ readerBias: true });
  const b = RwLock.attach(a.handle);
  const c = RwLock.attach(a.handle);
  openGate(a);
  a.readLock();
  assert.equal(c.holdOf(a.slot), Hold.FAST);
  assert.equal(b.tryWriteLock(), false, "gives up: a biased reader is inside");
  assert.equal(c.tryWriteLock(), false, "the bias is off now, but the reader is still inside");
  assert.equal(b.snapshot().writeLocked, false);
  a.readUnlock();
  assert.equal(c.tryWriteLock(), true);
  c.writeUnlock();
});

test("reader bias: a biased reader reaped while the writer waits for it makes that writer repair first", () => {
  // The writer's uncontended claim found OWNER_DEAD clear; the death is marked while it waits in
  // its scan (here: a race hook at the scan's wait loop plays the reaper). The writer must see
  // the mark when it enters, as a writer draining a dead counted reader does.
  const a = RwLock.create({ readerBias: true, spins: 4 });
  const dead = RwLock.attach(a.handle);
  const reaper = RwLock.attach(a.handle);
  openGate(dead);
  dead.readLock();
  let repairs = 0;
  a.onOwnerDead = () => {
    repairs++;
  };
  setRaceHook((point) => {
    if (point !== RacePoint.WAIT_LOOP) return;
    setRaceHook(null);
    reaper.markOwnerDead();
    // The writer has shut the bias and marked the reader's gate (WAKE) before it waits.
    assert.equal(reaper.reapHolder(dead.slot), Hold.FAST | Hold.WAKE);
  });
  try {
    a.writeLock();
  } finally {
    setRaceHook(null);
  }
  assert.equal(repairs, 1, "the repair ran inside writeLock()");
  assert.equal(a.snapshot().ownerDead, false);
  a.writeUnlock();
});

test("reader bias: an inhibit holds until its end, across the 32-bit wrap of its microseconds", () => {
  assert.equal(inhibited(1000, 0), true, "1 ms left");
  assert.equal(inhibited(1000, 1000), false, "ends now");
  assert.equal(inhibited(0, 1000), false, "ended 1 ms ago");
  // Times just below and just above 2^31 us (35.8 minutes) after the epoch, as Int32s.
  const before = (2 ** 31 - 10) | 0;
  const after = (2 ** 31 + 100) | 0;
  assert.ok(after < 0 && before > 0, "the second one wrapped");
  assert.equal(inhibited(after, before), true, "110 us left across the wrap");
  assert.equal(inhibited(before, after), false, "ended 110 us ago across the wrap");
  // Never longer than 1 s: a time 'left' beyond that is a revocation long past, read across a wrap.
  assert.equal(inhibited(1_000_000, 0), true);
  assert.equal(inhibited(1_000_001, 0), false);
  assert.equal(inhibited(0, (2 ** 31 + 5) | 0), false, "36 minutes after a revocation at 0");
});

test("stats: readCounted counts the read locks taken through the shared word, not through the bias", () => {
  const c = RwLock.create({ readerBias: true });
  const a = RwLock.attach(c.handle);
  a.readLock();
  assert.equal(c.holdOf(a.slot), Hold.R, "the first read lock is counted: it opens the view's gate");
  a.readUnlock();
  a.readLock();
  assert.equal(c.holdOf(a.slot), Hold.FAST);
  a.readUnlock();
  assert.equal(c.stats().readCounted, 1, "the second one went in through the bias");
  c.writeLock(); // turns the bias off; only a counted reader turns it back on
  c.writeUnlock();
  assert.equal(a.tryReadLock(), true);
  assert.equal(c.holdOf(a.slot), Hold.R);
  a.readUnlock();
  a.readLock();
  assert.ok(c.holdOf(a.slot) === Hold.R || c.holdOf(a.slot) === Hold.FAST);
  const counted = c.holdOf(a.slot) === Hold.R ? 3 : 2;
  a.readUnlock();
  const s = c.stats();
  assert.equal(s.readAcquisitions, 4);
  assert.equal(s.readCounted, counted);
  // Without the bias every read lock is counted.
  const plain = RwLock.create();
  plain.readLock();
  plain.readUnlock();
  assert.equal(plain.tryReadLock(), true);
  plain.readUnlock();
  assert.deepEqual([plain.stats().readAcquisitions, plain.stats().readCounted], [2, 2]);
});
