/**
 * Worker of mem-mutex.test.ts: increments a plain (non-atomic) counter under the pool's spin mutex.
 * Lost updates in the final count mean two threads were inside the critical section at once.
 */
import { parentPort, workerData } from "node:worker_threads";
import { mutexLock, mutexUnlock } from "../src/mem/spin-mutex.js";

export interface MutexWorkerData {
  /** Word 0: the mutex; word 1: the counter; word 2: start barrier. */
  words: SharedArrayBuffer;
  workers: number;
  rounds: number;
}

const data = workerData as MutexWorkerData;
const words = new Int32Array(data.words);
Atomics.add(words, 2, 1);
while (Atomics.load(words, 2) < data.workers) Atomics.wait(words, 2, Atomics.load(words, 2), 1);
let contended = 0;
for (let i = 0; i < data.rounds; i++) {
  if (mutexLock(words, 0)) contended++;
  // Deliberately a plain read-modify-write, spread over a few statements to widen the race window.
  const value = words[1]!;
  if ((i & 63) === 0) Atomics.load(words, 2);
  words[1] = value + 1;
  mutexUnlock(words, 0);
}
parentPort!.postMessage(contended);
