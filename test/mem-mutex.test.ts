import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import type { MutexWorkerData } from "./mem-mutex-worker.js";

function runWorker(data: MutexWorkerData): Promise<number> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./mem-mutex-worker.js", import.meta.url), { workerData: data });
    worker.once("message", resolve);
    worker.once("error", reject);
    worker.once("exit", (code) => {
      if (code !== 0) reject(new Error(`mutex worker exited with code ${code}`));
    });
  });
}

test("spin mutex: 3 workers incrementing a plain counter under the lock lose no update", async (t) => {
  const workers = 3;
  const rounds = 100_000;
  const words = new SharedArrayBuffer(12);
  const data: MutexWorkerData = { words, workers, rounds };
  const contended = await Promise.all(Array.from({ length: workers }, () => runWorker(data)));
  const view = new Int32Array(words);
  assert.equal(view[1], workers * rounds);
  assert.equal(view[0], 0, "the mutex is left unlocked");
  t.diagnostic(`contended acquisitions per worker: ${contended.join(", ")}`);
});
