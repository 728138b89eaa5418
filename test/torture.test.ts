/**
 * `stage2 torture` end to end: a short run with every checker on and allocation failures injected
 * passes; a planted bug (VmOptions.testOnly.bugs, reached only through makeTortureCommand's
 * test-only argument) makes it exit 1 with a seed, a replay command line and a replay file, and
 * the replay reproduces it (exactly, under the controlled scheduler); bad flags exit 2; --json is
 * one object with the documented keys. Seeds print; STAGE2_SEED replays.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { makeTortureCommand } from "../src/cli/commands/torture.js";
import type { CliIo } from "../src/cli/command.js";
import { seedFromEnv } from "../src/common/rng.js";
import { TestBug } from "../src/pgtable/stage2.js";
import { runTorture, type TortureSummary } from "../src/torture/run.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const seed = seedFromEnv();
const logDir = mkdtempSync(join(tmpdir(), "stage2-torture-test-"));
after(() => rmSync(logDir, { recursive: true, force: true }));

async function torture(argv: string[], bugs = 0): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t), readInput: async () => "" };
  const code = await makeTortureCommand({ bugs }).run([...argv, "--log-dir", logDir], io);
  return { code, out: out.join("\n"), err: err.join("\n") };
}

test("torture: a short run with allocation failures injected passes every check (--json)", async () => {
  console.log(`# torture pass: seed ${seed} (replay: STAGE2_SEED=${seed})`);
  const r = await torture([
    "--seed",
    String(seed),
    "--rounds",
    "2",
    "--ops",
    "6000",
    "--alloc-fail",
    "0.5",
    "--json",
  ]);
  const s = JSON.parse(r.out) as TortureSummary;
  assert.equal(r.code, 0, `seed ${seed}: ${JSON.stringify(s.violations)}`);
  for (const k of ["operations", "violations", "seed", "injected"]) assert.ok(k in s, `--json lacks ${k}`);
  assert.deepEqual(s.violations, []);
  assert.equal(s.seed, seed);
  assert.equal(s.rounds, 2);
  assert.ok(s.operations > 12_000, `operations ${s.operations}`);
  assert.equal(s.checksPassed, s.checksRun);
  // Injected ENOMEM reached the fault path, and the audit and leak check stayed clean (above).
  const failures = (s.injected["alloc.page"] ?? 0) + (s.injected["memcache.topup"] ?? 0);
  assert.ok(failures > 0, `no allocation failure injected: ${JSON.stringify(s.injected)}`);
  assert.ok(s.nomemReported > 0, "no guest access reported ENOMEM");
  assert.ok(s.rcuAge[0] > 0, "the RCU age check saw no page");
  assert.equal(s.rcuAge[2] + s.rcuAge[3], 0);
  assert.match(r.err, new RegExp(`seed ${seed}`));
});

test("torture --controlled: a planted bug exits 1 with a schedule that replays to the same step", async () => {
  // TestBug.SYNC_FREE_SHARED: a shared walk frees the subtree it unlinked at once.
  console.log(`# torture planted (controlled): seed 7 fixed (the schedule search is deterministic)`);
  const args = [
    "--seed",
    "7",
    "--rounds",
    "100",
    "--ops",
    "3000",
    "--controlled",
    "--strategy",
    "per-subtree",
    "--rcu",
    "mb",
  ];
  const r = await torture(args, TestBug.SYNC_FREE_SHARED);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /FAIL: .*seed 7/);
  const replay = /replay: stage2 torture --replay (\S+)/.exec(r.out)?.[1];
  assert.ok(replay, r.out);
  const violation = /violation: (.*)/.exec(r.out)?.[1];
  assert.ok(violation);
  for (let i = 0; i < 2; i++) {
    const again = await torture(["--replay", replay], TestBug.SYNC_FREE_SHARED);
    assert.equal(again.code, 1, again.out);
    assert.equal(/violation: (.*)/.exec(again.out)?.[1], violation, "the replay found another violation");
  }
  // The same schedule without the bug is clean: the violation was the bug's.
  const clean = await torture(["--replay", replay]);
  assert.equal(clean.code, 0, clean.out);
});

test("torture: a planted bug in free-running rounds exits 1 with a replay line and an op log", async () => {
  console.log(`# torture planted (free): seed ${seed} (replay: STAGE2_SEED=${seed})`);
  const r = await torture(
    ["--seed", String(seed), "--rounds", "12", "--ops", "20000", "--strategy", "per-subtree", "--rcu", "mb"],
    TestBug.SYNC_FREE_SHARED,
  );
  assert.equal(r.code, 1, `seed ${seed}: not caught in 12 rounds\n${r.out}`);
  const line = /replay: (stage2 torture .*)/.exec(r.out)?.[1];
  const log = /op log: (\S+)/.exec(r.out)?.[1];
  assert.ok(line && log, r.out);
  const opLog = JSON.parse(readFileSync(log, "utf8"));
  assert.equal(opLog.replay, line);
  assert.ok(opLog.hostOps.length > 0 && opLog.vcpuLastOps.length === 2);
  // The printed line reruns the failing round alone; timing decides the interleaving, so it gets
  // tries to trip over the bug again. Five were not always enough under a loaded machine (1 of 30
  // runs beside a busy core, and once in CI): about one try in two catches it.
  const argv = line.split(" ").slice(2);
  let tries = 0;
  let caught = false;
  while (tries < 20 && !caught) {
    tries++;
    caught = (await torture(argv, TestBug.SYNC_FREE_SHARED)).code === 1;
  }
  console.log(`# torture planted (free): the replay caught the bug in try ${tries}`);
  assert.ok(caught, `replay ${line} did not reproduce in ${tries} tries`);
});

test("torture: bad flags exit 2 with one line", () => {
  for (const args of [
    ["--vcpus", "0"],
    ["--strategy", "nope"],
    ["--rcu", "rcu"],
    ["--alloc-fail", "2"],
    ["--pct-depth", "3"],
    ["--controlled", "--ops", "0"],
    ["--replay", join(logDir, "missing.json")],
    ["--bogus"],
  ]) {
    const r = spawnSync(process.execPath, [MAIN, "torture", ...args], { encoding: "utf8" });
    assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
  const help = spawnSync(process.execPath, [MAIN, "torture", "--help"], { encoding: "utf8" });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--alloc-fail R/);
});

test("torture: a round that throws is a violation with its replay line, not a crash", async () => {
  // 100 vCPUs: Vm.create refuses (1..64), so the round throws before it starts.
  const s = await runTorture(
    {
      seed: 5,
      rounds: 1,
      vcpus: 100,
      ops: 10,
      strategies: ["per-table"],
      flavors: ["mb"],
      allocFail: 0,
      raceSpins: 0,
      controlled: false,
      logDir,
    },
    { stat: () => {} },
  );
  assert.equal(s.violations.length, 1);
  const v = s.violations[0];
  assert.equal(v?.checker, "round died");
  assert.match(v?.detail ?? "", /vcpus 100/);
  assert.equal(
    v?.replay,
    "stage2 torture --seed 5 --round 0 --strategy per-table --rcu mb --vcpus 100 --ops 10 --alloc-fail 0 --race-spins 0 --deaths 0",
  );
  assert.match(readFileSync(v?.logFile ?? "", "utf8"), /RangeError/);
});
