/**
 * Who gets the lock first, staged step by step with real workers: writer preference, the read phase
 * after a write phase, and the yield*() rescheduling points.
 *
 * Three puppet workers run one lock operation per command (rwlock-order-worker.ts). The test waits
 * until the lock's shared state shows a worker waiting, then releases the holder and checks which
 * waiter returned first. Each scenario runs several rounds; a seeded random pause before the release
 * lets the waiters be spinning in some rounds and asleep in others. Replay with STAGE2_SEED=<seed>.
 * The test thread never takes the lock itself, so a deadlock ends in a clear failure at the deadline.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Worker } from "node:worker_threads";
import { Rng } from "../src/common/rng.js";
import { RwLock } from "../src/sync/mod.js";
import { Op, Order, type OrderWorkerData } from "./rwlock-order-worker.js";

const seed = process.env.STAGE2_SEED
  ? Number(process.env.STAGE2_SEED) >>> 0
  : (Math.random() * 2 ** 32) >>> 0;
const replay = `seed ${seed}: replay with STAGE2_SEED=${seed}`;
const ROUNDS = 20;
/** Longest wait for one step; steps take micro- to milliseconds unless the lock is broken. */
const STEP_DEADLINE_MS = 10_000;
/**
 * Spins before sleeping, per worker: 0 and 0 sleep at once, worker 2 spins for ~10 ms. A waiter that
 * spins sees a release long before a sleeping one wakes (~70 us), so a lock that let worker 2 in
 * whenever it is merely fastest would fail the ordering checks below.
 */
const SPINS = [0, 0, 1_000_000];
const OP_NAMES = [
  "",
  "readLock",
  "readUnlock",
  "writeLock",
  "writeUnlock",
  "yieldRead",
  "yieldWrite",
  "exit",
];

const rng = new Rng(seed);
function random(): number {
  return rng.next();
}

/** Three puppet workers sharing one lock, and the commands sent to them. */
class Puppets {
  readonly lock = RwLock.create({ name: "mmu_lock", debug: true, maxThreads: 4 });
  private readonly shared = new Int32Array(new SharedArrayBuffer(4 * 3 * Order.STRIDE));
  private readonly workers: Worker[] = [];
  private readonly seqs = [0, 0, 0];
  private readonly pending: string[] = ["", "", ""];
  private failure: Error | undefined;

  start(): void {
    for (let id = 0; id < 3; id++) {
      const workerData: OrderWorkerData = {
        handle: this.lock.handle,
        shared: this.shared.buffer,
        id,
        spins: SPINS[id]!,
      };
      const w = new Worker(new URL("./rwlock-order-worker.js", import.meta.url), { workerData });
      w.on("error", (e) => {
        this.failure = e;
      });
      this.workers.push(w);
    }
  }

  /** Sends `op` to worker `id`; it must have finished its previous command. */
  send(id: number, op: Op): void {
    assert.ok(this.done(id), `worker ${id} is still in ${this.pending[id]} (${replay})`);
    const base = id * Order.STRIDE;
    Atomics.store(this.shared, base + Order.OP, op);
    this.seqs[id]!++;
    this.pending[id] = OP_NAMES[op]!;
    Atomics.store(this.shared, base + Order.SEQ, this.seqs[id]!);
    Atomics.notify(this.shared, base + Order.SEQ);
  }

  /** True once worker `id` has returned from its last command. */
  done(id: number): boolean {
    return Atomics.load(this.shared, id * Order.STRIDE + Order.DONE) === this.seqs[id];
  }

  result(id: number): boolean {
    return Atomics.load(this.shared, id * Order.STRIDE + Order.RESULT) === 1;
  }

  /** Polls `cond` every millisecond; fails with `what` and the lock state after the deadline. */
  async until(cond: () => boolean, what: string): Promise<void> {
    const deadline = performance.now() + STEP_DEADLINE_MS;
    while (!cond()) {
      if (this.failure) throw this.failure;
      if (performance.now() > deadline) {
        const state = JSON.stringify(this.lock.snapshot());
        throw new Error(`timed out waiting for ${what}; lock state ${state}; ${this.status()} (${replay})`);
      }
      await sleep(1);
    }
  }

  /** Runs `op` on worker `id` and waits for it to return. */
  async run(id: number, op: Op): Promise<void> {
    this.send(id, op);
    await this.until(() => this.done(id), `worker ${id} to return from ${OP_NAMES[op]}`);
  }

  status(): string {
    return this.pending
      .map((op, id) => `worker ${id} ${this.done(id) ? "returned from" : "in"} ${op}`)
      .join(", ");
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** A pause of 0-3 ms before a release: waiters are then spinning or already asleep. */
function pause(): Promise<void> {
  return sleep(Math.floor(random() * 4));
}

describe("RwLock ordering between workers", () => {
  // Fresh workers and lock for every test, so that one failure does not cascade.
  let p: Puppets;
  beforeEach(() => {
    p = new Puppets();
    p.start();
  });
  afterEach(() => p.stop());

  test(`once a writer waits, new readers wait behind it (seed ${seed})`, async (t) => {
    t.diagnostic(replay);
    const [r1, w, r2] = [0, 1, 2];
    for (let round = 0; round < ROUNDS; round++) {
      await p.run(r1, Op.READ_LOCK);
      p.send(w, Op.WRITE_LOCK);
      await p.until(
        () => p.lock.snapshot().writerDraining,
        "the writer to claim the lock and wait for reader 0",
      );
      assert.equal(p.lock.needsResched(), true, "the reader inside must be told that a writer waits");
      p.send(r2, Op.READ_LOCK);
      await p.until(() => p.lock.snapshot().waitingReaders === 1 || p.done(r2), "reader 2 to wait");
      assert.equal(p.done(r2), false, `round ${round}: a new reader overtook a waiting writer (${replay})`);
      await pause();
      await p.run(r1, Op.READ_UNLOCK);
      await p.until(() => p.done(w), "the writer to get in after the last reader left");
      assert.equal(p.done(r2), false, `round ${round}: reader 2 got in while the writer held the lock`);
      await p.run(w, Op.WRITE_UNLOCK);
      await p.until(() => p.done(r2), "reader 2 to get in after the writer");
      await p.run(r2, Op.READ_UNLOCK);
    }
  });

  test(`readers that waited for a writer get in before the next writer (seed ${seed})`, async (t) => {
    t.diagnostic(replay);
    const [w1, r, w2] = [0, 1, 2];
    for (let round = 0; round < ROUNDS; round++) {
      await p.run(w1, Op.WRITE_LOCK);
      p.send(r, Op.READ_LOCK);
      await p.until(() => p.lock.snapshot().waitingReaders === 1, "the reader to wait for writer 0");
      p.send(w2, Op.WRITE_LOCK);
      await p.until(() => p.lock.snapshot().waitingWriters === 1, "writer 2 to wait for writer 0");
      // No pause: release while writer 2 still spins and the reader sleeps, the worst case for the
      // reader. A lock without the read phase would let writer 2 in first.
      await p.run(w1, Op.WRITE_UNLOCK);
      await p.until(() => p.done(r) || p.done(w2), "the reader or writer 2 to get in");
      assert.equal(p.done(w2), false, `round ${round}: writer 2 overtook a reader that waited (${replay})`);
      await pause();
      await p.run(r, Op.READ_UNLOCK);
      await p.until(() => p.done(w2), "writer 2 to get in after the reader");
      await p.run(w2, Op.WRITE_UNLOCK);
    }
  });

  test(`yieldRead() lets a waiting writer in, then retakes the read lock (seed ${seed})`, async (t) => {
    t.diagnostic(replay);
    const [r, w] = [0, 1];
    for (let round = 0; round < ROUNDS; round++) {
      await p.run(r, Op.READ_LOCK);
      await p.run(r, Op.YIELD_READ);
      assert.equal(p.result(r), false, "yieldRead() with nobody waiting must not yield");
      p.send(w, Op.WRITE_LOCK);
      await p.until(() => p.lock.snapshot().writerDraining, "the writer to wait for the reader");
      await pause();
      p.send(r, Op.YIELD_READ);
      await p.until(() => p.done(w) || p.done(r), "the writer to get in");
      assert.equal(p.done(r), false, `round ${round}: yieldRead() returned before the writer got in`);
      await p.run(w, Op.WRITE_UNLOCK);
      await p.until(() => p.done(r), "yieldRead() to retake the lock");
      assert.equal(p.result(r), true, "yieldRead() must report that it yielded");
      await p.run(r, Op.READ_UNLOCK);
    }
  });

  test(`yieldWrite() lets waiting readers in, then retakes the write lock (seed ${seed})`, async (t) => {
    t.diagnostic(replay);
    const [w, r] = [0, 1];
    for (let round = 0; round < ROUNDS; round++) {
      await p.run(w, Op.WRITE_LOCK);
      p.send(r, Op.READ_LOCK);
      await p.until(() => p.lock.snapshot().waitingReaders === 1, "the reader to wait for the writer");
      await pause();
      p.send(w, Op.YIELD_WRITE);
      await p.until(() => p.done(r) || p.done(w), "the reader to get in");
      assert.equal(p.done(w), false, `round ${round}: yieldWrite() retook the lock before the reader got in`);
      await p.run(r, Op.READ_UNLOCK);
      await p.until(() => p.done(w), "yieldWrite() to retake the lock");
      assert.equal(p.result(w), true, "yieldWrite() must report that it yielded");
      await p.run(w, Op.WRITE_UNLOCK);
    }
  });

  test(`yieldWrite() hands the lock to a waiting writer (seed ${seed})`, async (t) => {
    t.diagnostic(replay);
    const [w1, w2] = [0, 1];
    let handedOver = 0;
    for (let round = 0; round < ROUNDS; round++) {
      await p.run(w1, Op.WRITE_LOCK);
      p.send(w2, Op.WRITE_LOCK);
      await p.until(() => p.lock.snapshot().waitingWriters === 1, "writer 1 to wait");
      await pause();
      p.send(w1, Op.YIELD_WRITE);
      // The handover is best effort (bounded at 10 ms), so the order is reported, not asserted.
      await p.until(() => p.done(w1) || p.done(w2), "one of the writers to get in");
      if (p.done(w2)) {
        handedOver++;
        await p.run(w2, Op.WRITE_UNLOCK);
        await p.until(() => p.done(w1), "yieldWrite() to retake the lock");
        assert.equal(p.result(w1), true, "yieldWrite() must report that it yielded");
        await p.run(w1, Op.WRITE_UNLOCK);
      } else {
        await p.run(w1, Op.WRITE_UNLOCK);
        await p.until(() => p.done(w2), "writer 1 to get in");
        await p.run(w2, Op.WRITE_UNLOCK);
      }
    }
    t.diagnostic(`the waiting writer got in first in ${handedOver} of ${ROUNDS} rounds`);
    assert.equal(p.lock.snapshot().writeLocked, false);
  });
});
