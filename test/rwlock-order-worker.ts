/**
 * Worker of rwlock-order.test.ts: a puppet that runs one lock operation per command from the test,
 * so the test can stage exact interleavings (who holds, who waits) across real threads.
 *
 * Shared words (Int32Array, every access atomic), per worker `id` at base = id * Order.STRIDE:
 *
 *     base + SEQ     written by the test: it stores OP, then increments SEQ and notifies it
 *     base + OP      written by the test: the operation to run (Op)
 *     base + DONE    written by the worker: SEQ, stored once the operation has returned
 *     base + RESULT  written by the worker: 1 if the last yield*() yielded, else 0 (before DONE)
 */
import { isMainThread, workerData } from "node:worker_threads";
import { RwLock, type RwLockHandle } from "../src/sync/mod.js";

export const enum Order {
  STRIDE = 16,
  SEQ = 0,
  OP = 1,
  DONE = 2,
  RESULT = 3,
}

export const enum Op {
  READ_LOCK = 1,
  READ_UNLOCK = 2,
  WRITE_LOCK = 3,
  WRITE_UNLOCK = 4,
  YIELD_READ = 5,
  YIELD_WRITE = 6,
  EXIT = 7,
}

export interface OrderWorkerData {
  handle: RwLockHandle;
  shared: SharedArrayBuffer;
  id: number;
  /** This worker's spin count before it sleeps (RwLock.attach's per-thread policy). */
  spins: number;
}

function run(lock: RwLock, shared: Int32Array, base: number): void {
  for (let seq = 0; ; ) {
    // Wait for the next command; the timeout only bounds a lost notify.
    while (Atomics.load(shared, base + Order.SEQ) === seq) Atomics.wait(shared, base + Order.SEQ, seq, 50);
    seq = Atomics.load(shared, base + Order.SEQ);
    const op = Atomics.load(shared, base + Order.OP);
    if (op === Op.EXIT) return;
    Atomics.store(shared, base + Order.RESULT, perform(lock, op) ? 1 : 0);
    Atomics.store(shared, base + Order.DONE, seq); // the test reads RESULT after seeing DONE
  }
}

function perform(lock: RwLock, op: number): boolean {
  switch (op) {
    case Op.READ_LOCK:
      lock.readLock();
      return true;
    case Op.READ_UNLOCK:
      lock.readUnlock();
      return true;
    case Op.WRITE_LOCK:
      lock.writeLock();
      return true;
    case Op.WRITE_UNLOCK:
      lock.writeUnlock();
      return true;
    case Op.YIELD_READ:
      return lock.yieldRead();
    case Op.YIELD_WRITE:
      return lock.yieldWrite();
    default:
      throw new RangeError(`rwlock order worker: unknown operation ${op}`);
  }
}

// The test imports this file for `Order` and `Op`; only a worker runs it.
if (!isMainThread) {
  const data = workerData as OrderWorkerData;
  run(RwLock.attach(data.handle, { spins: data.spins }), new Int32Array(data.shared), data.id * Order.STRIDE);
}
