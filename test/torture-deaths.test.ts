/**
 * `stage2 torture --deaths`: rounds that kill a vCPU mid-run (terminated, or crashed with
 * process.exit(), parked inside a read-side section, holding mmu_lock for read, between break and
 * make, or inside a fault) go on with the other vCPUs and the host, and pass every check: the death
 * watch reaped the victim, nothing stays locked, the lost pages are recovered and nothing leaks.
 * The negative control turns recovery off (VmOptions.testOnly.noDeathRecovery, reached only through
 * makeTortureCommand's test-only argument): the same run must report a "vcpu death" violation.
 * Seeds print; STAGE2_SEED replays.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { CliIo } from "../src/cli/command.js";
import { makeTortureCommand, summaryLines } from "../src/cli/commands/torture.js";
import { seedFromEnv } from "../src/common/rng.js";
import type { TortureSummary } from "../src/torture/run.js";

const seed = seedFromEnv();
const logDir = mkdtempSync(join(tmpdir(), "stage2-torture-deaths-"));
after(() => rmSync(logDir, { recursive: true, force: true }));

async function torture(
  argv: string[],
  noDeathRecovery = false,
): Promise<{ code: number; s: TortureSummary; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t), readInput: async () => "" };
  const args = [...argv, "--json", "--log-dir", logDir];
  const code = await makeTortureCommand({ noDeathRecovery }).run(args, io);
  return { code, s: JSON.parse(out.join("\n")) as TortureSummary, err: err.join("\n") };
}

test("torture --deaths 1: every round kills a vCPU, the death watch reaps it, every check passes", async () => {
  console.log(`# torture deaths: seed ${seed} (replay: STAGE2_SEED=${seed})`);
  const { code, s } = await torture([
    "--seed",
    String(seed),
    "--rounds",
    "4",
    "--ops",
    "3000",
    "--deaths",
    "1",
  ]);
  assert.equal(code, 0, `seed ${seed}: ${JSON.stringify(s.violations)}`);
  assert.deepEqual(s.violations, []);
  assert.equal(s.rounds, 4);
  // A parked death needs its point passed N times; a victim may finish its ops first.
  assert.ok(s.deaths >= 1, `seed ${seed}: no vCPU died in 4 rounds`);
  assert.equal(s.injected.vcpuDeath, s.deaths, "the JSON counts the deaths among the injected faults");
  assert.equal(s.checksPassed, s.checksRun);
  assert.ok(
    summaryLines(s).some((l) => l.includes(`vCPU deaths:     ${s.deaths} killed on purpose`)),
    "the text summary counts the deaths",
  );
});

test("torture --deaths 1 with death recovery off reports a vcpu death violation (negative control)", async () => {
  console.log(`# torture deaths, recovery off: seed ${seed} (replay: STAGE2_SEED=${seed})`);
  const { code, s } = await torture(
    ["--seed", String(seed), "--rounds", "8", "--ops", "3000", "--deaths", "1"],
    true,
  );
  assert.equal(code, 1, `seed ${seed}: recovery off went unnoticed (${s.deaths} deaths)`);
  const caught = s.violations.filter((v) => v.checker === "vcpu death");
  assert.ok(caught.length > 0, `seed ${seed}: ${JSON.stringify(s.violations)}`);
  assert.match(caught[0]?.detail ?? "", /vCPU \d (terminate|exit)@/);
  assert.match(caught[0]?.replay ?? "", /--deaths 1/);
});

test("torture --deaths rejects a rate outside [0, 1] and --controlled", async () => {
  const err: string[] = [];
  const io: CliIo = { out: () => {}, err: (t) => err.push(t), readInput: async () => "" };
  await assert.rejects(makeTortureCommand().run(["--deaths", "1.5"], io), /--deaths/);
  await assert.rejects(makeTortureCommand().run(["--controlled", "--deaths", "0.5"], io), /--deaths/);
});
