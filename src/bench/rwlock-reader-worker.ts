/**
 * Reader of the contended rwlock benchmark: attaches to the lock, waits for the start word, makes
 * `pairs` read lock + unlock pairs with a little work inside (a fault's read section is never
 * empty), and posts the time they took.
 *
 * Shared memory: `go` is one Int32 word the benchmark stores 1 into (Atomics.store + notify) when
 * every reader is ready; each reader waits on it with Atomics.wait (pairs with that store).
 */
import { parentPort, workerData } from "node:worker_threads";
import { RwLock, type RwLockHandle } from "../sync/rwlock.js";

const { handle, go, pairs } = workerData as { handle: RwLockHandle; go: SharedArrayBuffer; pairs: number };
const lock = RwLock.attach(handle);
const start = new Int32Array(go);
const scratch = new Float64Array(64);
parentPort?.postMessage("ready");
Atomics.wait(start, 0, 0);
let x = 1;
const t0 = performance.now();
for (let i = 0; i < pairs; i++) {
  lock.readLock();
  // ~20 ns of private work inside the section, as a fault's walk would do.
  for (let j = 0; j < 8; j++) x = x * 1.000001 + (scratch[(i + j) & 63] as number);
  lock.readUnlock();
}
const ms = performance.now() - t0;
scratch[0] = x;
parentPort?.postMessage(ms);
