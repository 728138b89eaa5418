/**
 * Controlled torture rounds: the vCPUs, a host thread and the RCU callback worker take turns as the
 * seeded schedule decides, so a round (host operations, injected allocation failures, RCU ages
 * and every counter) is a function of its seed, and a bug that needs the host is found by
 * searching schedules and replayed from the schedule file to the same violation.
 * Seeds print; STAGE2_SEED replays.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { seedFromEnv } from "../src/common/rng.js";
import { TestBug } from "../src/pgtable/stage2.js";
import { checkScheduleFile } from "../src/torture/controlled-round.js";
import { type RoundResult, type RoundSpec, runRound } from "../src/torture/round.js";
import { runTorture } from "../src/torture/run.js";
import type { ScheduleFile, TortureOptions } from "../src/torture/types.js";

const seed = seedFromEnv();
const logDir = mkdtempSync(join(tmpdir(), "stage2-torture-controlled-"));
after(() => rmSync(logDir, { recursive: true, force: true }));

/** What must be equal between two runs of one controlled round (timestamps and teardown aside). */
function fingerprint(r: RoundResult): unknown {
  return {
    schedule: r.schedule && { hash: r.schedule.scheduleHash, steps: r.schedule.steps },
    vcpuOps: r.vcpuOps,
    hostOps: r.hostOps,
    hostCounts: r.hostCounts,
    hostLog: r.hostLog.map((h) => [h.op, h.args, h.nomem === true]),
    faults: r.faults,
    again: r.again,
    casFailures: r.casFailures,
    nomem: r.nomem,
    hostNomem: r.hostNomem,
    mmio: r.mmio,
    gaveUp: r.gaveUp,
    injected: r.injected,
    rcuAge: r.rcuAge,
    vcpuLastOps: r.vcpuLastOps,
    violations: r.violations,
  };
}

test("a controlled round with the host and the RCU callback worker replays exactly from its seed", async () => {
  console.log(`# controlled round: seed ${seed} (replay: STAGE2_SEED=${seed})`);
  let injected = 0;
  for (const [strategy, rcu] of [
    ["per-table", "mb"],
    ["per-subtree", "qsbr"],
    ["bounded", "mb"],
    ["batched", "qsbr"],
    ["batched", "mb"],
  ] as const) {
    const spec: RoundSpec = {
      seed,
      round: 0,
      strategy,
      rcu,
      vcpus: 2,
      ops: 400,
      allocFail: 0.2,
      raceSpins: 0,
      controlled: { schedule: "random", hostOps: 60 },
    };
    const a = await runRound(spec);
    const b = await runRound(spec);
    assert.deepEqual(a.violations, [], `${strategy}/${rcu}, seed ${seed}`);
    assert.deepEqual(fingerprint(b), fingerprint(a), `${strategy}/${rcu}, seed ${seed}: the replay differs`);
    const sched = a.schedule?.schedule ?? [];
    // Participants 0, 1: vCPUs; 2: the host thread; 3: the RCU callback worker. All took turns.
    for (const id of [0, 1, 2, 3])
      assert.ok(sched.includes(id), `${strategy}/${rcu}: participant ${id} never ran`);
    assert.equal(a.hostOps, 60);
    assert.ok(a.rcuAge[0] > 0, "the RCU age check saw no page");
    for (const [k, n] of Object.entries(a.injected)) if (!k.startsWith("delay:")) injected += n;
  }
  assert.ok(injected > 0, "no allocation failure injected in any round");
});

const MUTATION_ROUNDS = 24;

function options(o: Partial<TortureOptions>): TortureOptions {
  return {
    seed,
    rounds: MUTATION_ROUNDS,
    vcpus: 2,
    ops: 400,
    strategies: ["per-subtree"],
    flavors: ["mb"],
    allocFail: 0.05,
    raceSpins: 0,
    controlled: true,
    logDir,
    ...o,
  };
}

test("write-protect without an invalidation (needs the host): found under controlled rounds, replayed from its file", async () => {
  console.log(`# controlled wrprotect-no-tlbi: seed ${seed} (replay: STAGE2_SEED=${seed})`);
  const io = { stat: () => {} };
  const found = await runTorture(options({ testOnlyBugs: TestBug.WRPROTECT_NO_TLBI }), io);
  const v = found.violations[0];
  assert.ok(v, `seed ${seed}: not caught in ${MUTATION_ROUNDS} controlled rounds`);
  assert.equal(v.checker, "dirty log", JSON.stringify(v));
  console.log(`# caught in round ${v.round}: ${v.detail}`);
  const file = JSON.parse(readFileSync(v.logFile, "utf8")) as ScheduleFile;
  assert.equal(checkScheduleFile(file), null);
  assert.equal(file.version, 2);
  assert.equal(v.replay, `stage2 torture --replay ${v.logFile}`);
  for (let i = 0; i < 2; i++) {
    const again = await runTorture(
      options({ testOnlyBugs: TestBug.WRPROTECT_NO_TLBI, replay: file, replayPath: v.logFile }),
      io,
    );
    assert.deepEqual(
      again.violations.map((x) => [x.checker, x.detail]),
      found.violations.map((x) => [x.checker, x.detail]),
      `replay ${i + 1} found something else`,
    );
    assert.equal(again.schedules[0]?.hash, file.scheduleHash);
  }
  // The same schedule without the bug is clean: the violation was the bug's.
  const clean = await runTorture(options({ replay: file, replayPath: v.logFile }), io);
  assert.deepEqual(clean.violations, []);
});

test("schedule files: version 1 and foreign participant ids are refused with the reason", () => {
  const good: ScheduleFile = {
    format: "stage2-torture-schedule",
    version: 2,
    seed: 1,
    round: 0,
    strategy: "per-subtree",
    rcu: "mb",
    vcpus: 2,
    ops: 10,
    hostOps: 8,
    allocFail: 0,
    pctDepth: null,
    scheduleHash: "0",
    schedule: [0, 1, 2, 3],
    violation: "",
  };
  assert.equal(checkScheduleFile(good), null);
  assert.match(checkScheduleFile({ ...good, version: 1 }) ?? "", /vCPU-only/);
  assert.match(checkScheduleFile({ ...good, schedule: [4] }) ?? "", /participant ids/);
  assert.match(checkScheduleFile({ ...good, allocFail: 2 }) ?? "", /allocFail/);
});
