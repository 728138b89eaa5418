/**
 * The reader-writer lock under real workers: exclusion, and fairness in both directions.
 *
 * - Exclusion: reader workers hammer the read side and check a pair of words that writers update in
 *   two steps under the write lock; writers check that nobody else is inside. Any overlap shows up
 *   as a counted violation.
 * - Writers are not starved: reader workers keep overlapping read sections streaming while one
 *   writer must get its quota of write locks before the readers finish theirs.
 * (The read phase that follows a write phase is checked step by step in rwlock-order.test.ts.)
 *
 * Every run is bounded: workers stop on a shared flag or their quota, and an overall deadline
 * terminates them and fails with the progress counts instead of hanging. Random choices (hold times,
 * try-locks, yields) come from STAGE2_SEED when set; the seed is printed either way.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Worker } from "node:worker_threads";
import { RwLock, type RwLockOptions } from "../src/sync/mod.js";
import { Hold } from "../src/sync/rwlock.js";
import { Shared, type StressWorkerData, type StressWorkerResult } from "./rwlock-stress-worker.js";

const seed = process.env.STAGE2_SEED
  ? Number(process.env.STAGE2_SEED) >>> 0
  : (Math.random() * 2 ** 32) >>> 0;
const replay = `seed ${seed}: replay with STAGE2_SEED=${seed}`;
/** Far above a normal run (~1-3 s on 2 busy cores); only a hung or starved worker gets here. */
const DEADLINE_MS = 60_000;
/** Section quota of a worker that runs until another one sets STOP. */
const UNBOUNDED = 1e9;

type Role = StressWorkerData["role"];
type WorkerPlan = Omit<StressWorkerData, "handle" | "shared" | "id" | "workers" | "seed">;

interface Run {
  lock: RwLock;
  results: StressWorkerResult[];
}

/** Starts one worker per plan, waits for all of them, and enforces the deadline. */
async function runWorkers(plans: WorkerPlan[], opts: RwLockOptions = {}): Promise<Run> {
  const lock = RwLock.create({ name: "mmu_lock", maxThreads: plans.length + 1, ...opts });
  const shared = new Int32Array(new SharedArrayBuffer(4 * (Shared.PROGRESS + plans.length)));
  const workers = plans.map(
    (plan, id) =>
      new Worker(new URL("./rwlock-stress-worker.js", import.meta.url), {
        workerData: {
          ...plan,
          handle: lock.handle,
          shared: shared.buffer,
          id,
          workers: plans.length,
          seed: (seed + Math.imul(id + 1, 0x9e3779b9)) >>> 0,
        } satisfies StressWorkerData,
      }),
  );
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`deadline of ${DEADLINE_MS} ms passed; ${progress(plans, shared)} (${replay})`));
    }, DEADLINE_MS);
  });
  try {
    const all = Promise.all(workers.map(resultOf));
    all.catch(() => {}); // a late rejection, after the deadline won the race, is not news
    const results = await Promise.race([all, deadline]);
    return { lock, results };
  } finally {
    // On success every worker has exited already; after a failure, stop the others so that no
    // worker keeps the test process alive.
    clearTimeout(timer);
    Atomics.store(shared, Shared.STOP, 1);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function resultOf(worker: Worker): Promise<StressWorkerResult> {
  return new Promise((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
    worker.once("exit", (code) => {
      if (code !== 0) reject(new Error(`rwlock worker exited with code ${code} (${replay})`));
    });
  });
}

function progress(plans: WorkerPlan[], shared: Int32Array): string {
  const parts = plans.map(
    (p, id) =>
      `${p.role} ${id}: ${Atomics.load(shared, Shared.PROGRESS + id)} sections` +
      (p.sections < UNBOUNDED ? ` of ${p.sections}` : ""),
  );
  return parts.join(", ");
}

function sectionsOf(results: StressWorkerResult[], role: Role): number {
  return results.filter((r) => r.role === role).reduce((n, r) => n + r.sections, 0);
}

/** Checks what every run must satisfy: no violation, statistics that add up, a free lock at the end. */
function checkRun({ lock, results }: Run): void {
  const violations = results.flatMap((r) => r.violations);
  const count = results.reduce((n, r) => n + r.violationCount, 0);
  assert.equal(count, 0, `${count} exclusion violations (${replay}), first ones:\n${violations.join("\n")}`);
  const stats = lock.stats();
  const yields = results.reduce((n, r) => n + r.yields, 0);
  // A yield retakes the lock, which counts as one more acquisition.
  const readYields = results.filter((r) => r.role === "reader").reduce((n, r) => n + r.yields, 0);
  assert.equal(stats.readAcquisitions, sectionsOf(results, "reader") + readYields, replay);
  assert.equal(stats.writeAcquisitions, sectionsOf(results, "writer") + yields - readYields, replay);
  assert.equal(stats.yields, yields, replay);
  assert.equal(lock.readerCount(), 0, `readers left inside (${replay})`);
  assert.equal(lock.tryWriteLock(), true, `the lock is not free at the end (${replay})`);
  lock.writeUnlock();
}

function describeRun({ lock, results }: Run): string {
  const s = lock.stats();
  const tries = results.reduce((n, r) => n + r.failedTries, 0);
  return (
    `${s.readAcquisitions} reads (${s.readContended} waited, ${s.readSleeps} sleeps), ` +
    `${s.writeAcquisitions} writes (${s.writeContended} waited, ${s.writeSleeps} sleeps, ` +
    `max wait ${(s.writeWaitMaxNs / 1e3).toFixed(0)} us), ${s.yields} yields, ${tries} failed try-locks`
  );
}

const reader = (sections: number, over: Partial<WorkerPlan> = {}): WorkerPlan => ({
  role: "reader",
  sections,
  stopWhenDone: false,
  startAfter: 0,
  holdSpins: 200,
  pauseSpins: 100,
  tryRate: 0.1,
  yieldRate: 0.05,
  ...over,
});
const writer = (sections: number, over: Partial<WorkerPlan> = {}): WorkerPlan => ({
  ...reader(sections),
  role: "writer",
  holdSpins: 400,
  pauseSpins: 2000,
  ...over,
});

describe("RwLock under worker threads", () => {
  for (const [debug, readerBias] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ]) {
    const mode = `${debug ? ", debug mode" : ""}${readerBias ? ", reader bias" : ""}`;
    test(`the write lock excludes readers and other writers${mode} (seed ${seed})`, async (t) => {
      t.diagnostic(replay);
      // Readers run until both writers have finished their quota (the last writer sets STOP).
      const run = await runWorkers(
        [
          reader(UNBOUNDED),
          reader(UNBOUNDED),
          reader(UNBOUNDED),
          writer(1500),
          writer(1500, { stopWhenDone: true }),
        ],
        { debug, readerBias },
      );
      checkRun(run);
      const writes = sectionsOf(run.results, "writer");
      assert.ok(writes >= 1500, `writers completed only ${writes} sections (${replay})`);
      for (const r of run.results) assert.ok(r.sections > 0, `${r.role} ${r.id} never got in (${replay})`);
      t.diagnostic(describeRun(run));
    });
  }

  for (const readerBias of [false, true])
    test(`a writer is not starved by a stream of readers${readerBias ? ", reader bias" : ""} (seed ${seed})`, async (t) => {
      t.diagnostic(replay);
      const quota = 300;
      // Long, overlapping read sections: without writer preference the lock is almost never free.
      const streaming = { holdSpins: 4000, pauseSpins: 10, tryRate: 0, yieldRate: 0, stopWhenDone: true };
      const run = await runWorkers(
        [
          reader(100_000, streaming),
          reader(100_000, streaming),
          writer(quota, {
            stopWhenDone: true,
            startAfter: 20,
            holdSpins: 50,
            pauseSpins: 500,
            tryRate: 0,
            yieldRate: 0,
          }),
        ],
        { spins: 20_000, readerBias },
      );
      checkRun(run);
      const writes = sectionsOf(run.results, "writer");
      const reads = sectionsOf(run.results, "reader");
      assert.equal(
        writes,
        quota,
        `writer starved: ${writes} of ${quota} write locks while readers took ${reads} (${replay})`,
      );
      // The readers really were in the way: otherwise this run proved nothing.
      assert.ok(run.lock.stats().writeContended > 0, `the writer never had to wait (${replay})`);
      t.diagnostic(describeRun(run));
    });
});

test("reader bias: a writer asleep on a biased reader's word is woken by its unlock (Hold.WAKE)", async () => {
  const lock = RwLock.create({ name: "mmu_lock", readerBias: true, maxThreads: 4 });
  const reader = RwLock.attach(lock.handle);
  // The writer spins a little, then sleeps in slices of 1 s: without the wake it sleeps one out
  // and no unlock counts a wake. It writes on "go" and answers "in".
  const module = new URL("../src/sync/mod.js", import.meta.url).href;
  const writer = new Worker(
    `const { workerData, parentPort } = require("node:worker_threads");
     import(workerData.module).then(({ RwLock }) => {
       const w = RwLock.attach(workerData.handle, { spins: 16, sleepMs: 1000 });
       parentPort.on("message", () => {
         w.writeLock();
         w.writeUnlock();
         parentPort.postMessage("in");
       });
     });`,
    { eval: true, workerData: { module, handle: lock.handle } },
  );
  const next = () =>
    new Promise<string>((resolve, reject) => {
      writer.once("message", resolve);
      writer.once("error", reject);
    });
  const deadline = performance.now() + DEADLINE_MS;
  const tick = () => new Promise((r) => setTimeout(r, 1));
  try {
    // Our unlock can come before the writer is asleep (it then sees the word change and goes on,
    // and no wake is counted): a few rounds, of which one wake is enough.
    for (let round = 0; round < 5 && lock.stats().fastWakes === 0; round++) {
      // In through the bias, once the last revocation's inhibit has passed.
      for (;;) {
        reader.readLock();
        if (lock.holdOf(reader.slot) === Hold.FAST) break;
        reader.readUnlock();
        assert.ok(performance.now() < deadline, "the reader bias never came back");
        await tick();
      }
      const inside = next();
      writer.postMessage("go");
      // The writer turns the bias off, finds our FAST hold, and asks to be woken before it sleeps.
      while (lock.holdOf(reader.slot) !== (Hold.FAST | Hold.WAKE)) {
        assert.ok(
          performance.now() < deadline,
          `the writer never asked for a wake: ${lock.holdOf(reader.slot)}`,
        );
        await tick();
      }
      await tick();
      reader.readUnlock();
      assert.equal(await inside, "in");
      assert.equal(lock.holdOf(reader.slot), Hold.NONE);
    }
    assert.ok(lock.stats().fastWakes >= 1, "a biased unlock woke the sleeping writer");
  } finally {
    await writer.terminate();
  }
});
