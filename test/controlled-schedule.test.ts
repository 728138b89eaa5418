/**
 * The controlled scheduler (src/sync/controlled.ts) on real worker threads:
 * - one participant runs at a time, and a waiter at a WAIT_LOOP lets the others run (random and PCT);
 * - the same seed gives the same schedule and the same outcome; a recorded schedule replays under
 *   another strategy seed; different seeds give different schedules;
 * - on the vCPU stress (runControlledStress): an unbroken run stays clean and replays to the same
 *   schedule, and a planted race (TestBug.SYNC_FREE_SHARED: a shared walk frees an unlinked table at
 *   once) is found within a bounded number of schedules, then replayed twice to the same violation
 *   at the same step, and once more from the recorded schedule alone.
 * Seeds print; STAGE2_SEED replays.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { seedFromEnv } from "../src/common/rng.js";
import { TestBug } from "../src/pgtable/stage2.js";
import { type ControlledStressReport, runControlledStress } from "../src/sim/stress-run.js";
import { ControlledScheduler, type ScheduleStrategy, type ScheduleSummary } from "../src/sync/controlled.js";
import { type ControlledWorkerData, Word } from "./controlled-worker.js";

const seed = seedFromEnv();
console.log(`# controlled-schedule: seed ${seed} (replay: STAGE2_SEED=${seed})`);
const workerUrl = new URL("./controlled-worker.js", import.meta.url);

interface ToyRun {
  summary: ScheduleSummary;
  counter: number;
  overlaps: number;
}

async function toy(
  strategy: ScheduleStrategy,
  s: number,
  opts: { threads?: number; rounds?: number; replay?: number[]; pctDepth?: number } = {},
): Promise<ToyRun> {
  const threads = opts.threads ?? 3;
  const rounds = opts.rounds ?? 200;
  const sched = ControlledScheduler.create({
    threads,
    seed: s,
    strategy,
    pctDepth: opts.pctDepth ?? 3,
    stepsHint: threads * rounds * 2,
    ...(opts.replay ? { replay: opts.replay } : {}),
  });
  const words = new SharedArrayBuffer(Word.COUNT * 4);
  const workers = Array.from({ length: threads }, (_, id) => {
    const data: ControlledWorkerData = { handle: sched.handle, id, words, rounds };
    return new Worker(workerUrl, { workerData: data });
  });
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((resolve, reject) => {
          w.once("message", () => resolve());
          w.once("error", reject);
        }),
    ),
  );
  await Promise.all(workers.map((w) => w.terminate()));
  const v = new Int32Array(words);
  return {
    summary: sched.summary(s, strategy),
    counter: v[Word.COUNTER] as number,
    overlaps: v[Word.OVERLAPS] as number,
  };
}

for (const strategy of ["random", "pct"] as const) {
  test(`${strategy}: one participant at a time, waiters let the others run, and the seed fixes the run`, async () => {
    const a = await toy(strategy, seed);
    const b = await toy(strategy, seed);
    const c = await toy(strategy, (seed ^ 0x5a5a5a5a) >>> 0);
    for (const r of [a, b, c]) {
      assert.equal(r.overlaps, 0, "two participants ran between the same two points");
      assert.equal(r.summary.abandoned, false);
      // A decision per point while two or more run: at least the 400 points of the first to finish.
      assert.ok(r.summary.steps >= 400, `only ${r.summary.steps} steps`);
      assert.ok(r.counter >= 200 && r.counter <= 600, `counter ${r.counter}`);
    }
    assert.equal(a.summary.scheduleHash, b.summary.scheduleHash, "same seed, another schedule");
    assert.deepEqual(a.summary.schedule, b.summary.schedule);
    assert.equal(a.counter, b.counter, "same seed, another outcome");
    assert.notEqual(a.summary.scheduleHash, c.summary.scheduleHash, "another seed, the same schedule");
    console.log(
      `# ${strategy}: ${a.summary.steps} steps, hash ${a.summary.scheduleHash}, counter ${a.counter} of 600 (lost ${600 - a.counter} updates)`,
    );
    if (strategy === "random") assert.ok(a.counter < 600, "random switching never split a read-modify-write");
  });
}

test("a recorded schedule replays under another strategy seed", async () => {
  const a = await toy("random", seed);
  const r = await toy("random", (seed + 1) >>> 0, { replay: a.summary.schedule });
  assert.deepEqual(r.summary.schedule, a.summary.schedule);
  assert.equal(r.counter, a.counter);
});

test("bad scheduler options are refused with the reason", () => {
  assert.throws(() => ControlledScheduler.create({ threads: 0, seed: 1, strategy: "random" }), /threads 0/);
  assert.throws(
    () => ControlledScheduler.create({ threads: 2, seed: 1, strategy: "pct", pctDepth: 0 }),
    /PCT depth 0/,
  );
  assert.throws(
    () => ControlledScheduler.create({ threads: 2, seed: 1, strategy: "random", replay: [0, 2] }),
    /names no participant/,
  );
});

const STRESS = { strategy: "per-subtree" as const, vcpus: 2, iterations: 2000, regionMiB: 16 };

function describeRun(r: ControlledStressReport): string {
  return `${r.schedule.steps} steps, hash ${r.schedule.scheduleHash}, violation ${JSON.stringify(r.violation)}, mmu ${r.mmuViolations.map((v) => v.kind).join(",")}`;
}

test("vCPU stress, unbroken: clean under random and PCT schedules, and the same seed replays", async () => {
  for (const schedule of ["random", "pct"] as const) {
    const a = await runControlledStress({ ...STRESS, seed, schedule, pctDepth: 5 });
    const b = await runControlledStress({ ...STRESS, seed, schedule, pctDepth: 5 });
    console.log(`# unbroken ${schedule}: ${describeRun(a)}`);
    for (const r of [a, b]) {
      assert.equal(r.violation, null, describeRun(r));
      assert.deepEqual(r.mmuViolations, []);
      assert.deepEqual(r.auditProblems, []);
      assert.deepEqual(r.leakedPages, []);
      assert.equal(r.schedule.abandoned, false);
    }
    assert.equal(a.schedule.scheduleHash, b.schedule.scheduleHash);
    assert.equal(a.schedule.steps, b.schedule.steps);
    assert.deepEqual(a.vcpus, b.vcpus);
    // The RCU callback worker (participant `vcpus`) took turns too: it frees the unlinked tables.
    assert.ok(a.schedule.schedule.includes(STRESS.vcpus), "the callback worker never ran in the schedule");
  }
});

/** Searches seeds seed, seed+1, ... for a schedule that exposes `bugs`; returns the first that does. */
async function search(
  opts: Partial<Parameters<typeof runControlledStress>[0]>,
  name: string,
  budget: number,
): Promise<{ s: number; r: ControlledStressReport }> {
  for (let i = 0; i < budget; i++) {
    const s = (seed + i) >>> 0;
    const r = await runControlledStress({ ...STRESS, seed: s, schedule: "random", ...opts });
    if (r.violation !== null) {
      console.log(`# ${name}: found with schedule ${i + 1} (seed ${s}): ${describeRun(r)}`);
      return { s, r };
    }
  }
  assert.fail(`${name}: no violation in ${budget} schedules from seed ${seed}`);
}

test("planted race (sync free in a shared walk): found, then replayed twice to the same step", async () => {
  const { s, r } = await search({ testOnlyBugs: TestBug.SYNC_FREE_SHARED }, "sync-free-shared", 24);
  for (let k = 0; k < 2; k++) {
    const again = await runControlledStress({
      ...STRESS,
      seed: s,
      schedule: "random",
      testOnlyBugs: TestBug.SYNC_FREE_SHARED,
    });
    assert.deepEqual(again.violation, r.violation, `replay ${k + 1}: ${describeRun(again)}`);
    assert.equal(again.schedule.scheduleHash, r.schedule.scheduleHash);
  }
  // From the recorded schedule alone: another strategy seed, the same decisions.
  const fromLog = await runControlledStress({
    ...STRESS,
    seed: s,
    scheduleSeed: (s ^ 0xffff) >>> 0,
    schedule: "random",
    replay: r.schedule.schedule,
    testOnlyBugs: TestBug.SYNC_FREE_SHARED,
  });
  assert.deepEqual(fromLog.violation, r.violation, `replay from the log: ${describeRun(fromLog)}`);
});
