/**
 * Several workers allocate and free pages of one small pool concurrently (so the pool runs dry and the
 * free-list lock is contended), each claiming its pages in a shared owner table; afterwards the
 * statistics must balance and no page may be left allocated. Replay a run with STAGE2_SEED=<seed>.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Worker } from "node:worker_threads";
import { type Granule, PagePool } from "../src/mem/mod.js";
import type { AllocatorWorkerData, AllocatorWorkerResult } from "./mem-allocator-worker.js";

const seed = process.env.STAGE2_SEED ? Number(process.env.STAGE2_SEED) : (Math.random() * 2 ** 32) >>> 0;

function runWorker(data: AllocatorWorkerData): Promise<AllocatorWorkerResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./mem-allocator-worker.js", import.meta.url), { workerData: data });
    worker.once("message", resolve);
    worker.once("error", reject);
    worker.once("exit", (code) => {
      if (code !== 0) reject(new Error(`allocator worker ${data.id} exited with code ${code}`));
    });
  });
}

interface Scenario {
  granule: Granule;
  pages: number;
  debug: boolean;
  workers: number;
  ops: number;
  maxOwned: number;
}

async function runScenario(s: Scenario): Promise<string> {
  const pool = PagePool.create({ granule: s.granule, pages: s.pages, debug: s.debug, basePa: 2 ** 40 });
  const owners = new SharedArrayBuffer(4 * s.pages);
  const start = new SharedArrayBuffer(4);
  const jobs: Promise<AllocatorWorkerResult>[] = [];
  for (let id = 0; id < s.workers; id++) {
    const workerSeed = (seed + Math.imul(id + 1, 0x9e3779b9)) >>> 0;
    jobs.push(
      runWorker({
        handle: pool.handle,
        owners,
        start,
        workers: s.workers,
        id,
        seed: workerSeed,
        ops: s.ops,
        maxOwned: s.maxOwned,
      }),
    );
  }
  const results = await Promise.all(jobs);
  const replay = `(seed ${seed}: replay with STAGE2_SEED=${seed})`;
  assert.deepEqual(
    results.flatMap((r) => r.errors),
    [],
    `workers found errors ${replay}`,
  );
  const stats = pool.stats();
  const allocated = results.reduce((n, r) => n + r.allocated + r.drained, 0);
  assert.deepEqual(pool.allocatedPages(), [], `pages leaked ${replay}:\n${pool.leakReport()}`);
  assert.deepEqual(pool.audit(), [], `allocator invariants broken ${replay}`);
  assert.equal(stats.allocated, 0, replay);
  assert.equal(stats.allocs, stats.frees, replay);
  assert.equal(stats.allocs, allocated, `allocs counted by the pool vs by the workers ${replay}`);
  assert.equal(stats.doubleFrees + stats.poisonViolations + stats.refcountUnderflows, 0, replay);
  assert.ok(stats.peakAllocated <= s.pages, replay);
  assert.ok(
    new Int32Array(owners).every((o) => o === 0),
    `owner table not empty ${replay}`,
  );
  const exhausted = results.reduce((n, r) => n + r.exhausted, 0);
  return (
    `${s.workers} workers x ${s.ops} ops on ${s.pages} pages: ${allocated} pages handed out, ` +
    `${exhausted} exhausted allocations, peak ${stats.peakAllocated}, ${stats.lockContended} contended locks`
  );
}

describe("page allocator under concurrent workers", () => {
  test(`allocations and frees from 3 workers balance, with no page handed out twice (seed ${seed})`, async (t) => {
    t.diagnostic(`seed ${seed} (replay with STAGE2_SEED=${seed})`);
    t.diagnostic(
      await runScenario({ granule: 4096, pages: 40, debug: false, workers: 3, ops: 30_000, maxOwned: 12 }),
    );
  });

  test(`a large pool is carved from the bump region by racing workers (seed ${seed})`, async (t) => {
    t.diagnostic(`seed ${seed} (replay with STAGE2_SEED=${seed})`);
    t.diagnostic(
      await runScenario({
        granule: 4096,
        pages: 12_000,
        debug: false,
        workers: 3,
        ops: 30_000,
        maxOwned: 4000,
      }),
    );
  });

  test(`debug mode: poisoning and generation checks hold under concurrency (seed ${seed})`, async (t) => {
    t.diagnostic(`seed ${seed} (replay with STAGE2_SEED=${seed})`);
    t.diagnostic(
      await runScenario({ granule: 16384, pages: 48, debug: true, workers: 2, ops: 8_000, maxOwned: 12 }),
    );
  });
});
