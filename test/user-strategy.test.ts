/**
 * User-written reclaim strategies, loaded from a module path.
 *
 * - The example strategy (examples/polled-strategy.mjs) runs under the fault stress, in process and
 *   through `stage2 faults --strategy <path>`, with the use-after-free, audit and leak checks on.
 * - The negative control: a user strategy that frees too early (at once, inside a shared walk) must
 *   be caught, and the failure must name the strategy.
 * - The loader: built-in names stay names, malformed modules are refused with their path or name.
 *
 * Seeds are printed; STAGE2_SEED replays a run.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { seedFromEnv } from "../src/common/rng.js";
import { strategyLabel } from "../src/kvm/reclaim/strategy.js";
import { checkStrategy, resolveStrategy, StrategyLoadError } from "../src/kvm/reclaim/user-strategy.js";
import { runStress, type StressRunReport } from "../src/sim/stress-run.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "dist/src/cli/main.js");
const EXAMPLE = join(ROOT, "examples/polled-strategy.mjs");
const KVM_MOD = pathToFileURL(join(ROOT, "dist/src/kvm/mod.js")).href;
const PGTABLE_MOD = pathToFileURL(join(ROOT, "dist/src/pgtable/mod.js")).href;
const seed = seedFromEnv();

let dir = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "stage2-user-strategy-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function cli(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8", cwd: ROOT });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function describe(r: StressRunReport): string {
  return `strategy ${strategyLabel(r.options.strategy)} seed ${r.options.seed} (replay: STAGE2_SEED=${r.options.seed}): uaf ${r.uafDetected}, corrupt ${r.pgtable.corrupt}, leaks ${r.destroy.leakedPages.length}, audit ${r.auditProblems.join("; ")}, first fault ${r.firstFault}`;
}

for (const rcuFlavor of ["mb", "qsbr"] as const) {
  test(`the example polled strategy survives the fault stress (${rcuFlavor}): no use-after-free, no leak`, async () => {
    console.log(`# user-strategy polled ${rcuFlavor}: seed ${seed}`);
    const strategy = await resolveStrategy(EXAMPLE);
    assert.deepEqual(strategy, { name: "polled", url: pathToFileURL(EXAMPLE).href });
    const r = await runStress({
      strategy,
      mode: "shared",
      vcpus: 2,
      iterations: 8000,
      seed,
      rcuFlavor,
      raceSpins: 2000,
      hostOps: true,
      debug: true,
    });
    const why = describe(r);
    assert.equal(r.uafDetected, 0, why);
    assert.equal(r.pgtable.corrupt, 0, why);
    assert.deepEqual(r.auditProblems, [], why);
    assert.deepEqual(r.destroy.leakedPages, [], why);
    assert.ok(r.reclaim.subtrees > 0, `${why}: no shared unlink reached the strategy`);
    assert.equal(r.reclaim.callbacksQueued, 0, `${why}: the polled strategy queues no callback`);
    assert.equal(r.reclaim.pendingPages, 0, `${why}: pending pages must return to zero`);
    assert.ok(r.reclaim.pagesReclaimed > 0, `${why}: nothing was reclaimed after a grace period`);
  });
}

test("the example polled strategy frees at once in exclusive mode (no grace period to wait for)", async () => {
  console.log(`# user-strategy polled exclusive: seed ${seed}`);
  const r = await runStress({
    strategy: await resolveStrategy(EXAMPLE),
    mode: "exclusive",
    vcpus: 2,
    iterations: 3000,
    seed,
    rcuFlavor: "mb",
    raceSpins: 0,
    hostOps: true,
    debug: true,
  });
  const why = describe(r);
  assert.equal(r.uafDetected, 0, why);
  assert.deepEqual(r.auditProblems, [], why);
  assert.deepEqual(r.destroy.leakedPages, [], why);
  assert.equal(r.reclaim.subtrees, 0, `${why}: exclusive walks are never shared unlinks`);
  assert.ok(r.reclaim.freedNow > 0, `${why}: collapses freed nothing at once`);
});

test("stage2 faults --strategy <path> runs a user strategy and prints its name", () => {
  const r = cli(["faults", "--strategy", "./examples/polled-strategy.mjs", "--iterations", "3000"]);
  assert.equal(r.code, 0, `${r.out}\n${r.err}`);
  assert.match(r.out, /^\s*polled\b/m, r.out);
  assert.match(r.out, /^PASS/m, r.out);
});

/** A strategy with the bug the others avoid: it frees an unlinked subtree inside the read side. */
function tooEarlySource(): string {
  return `
import { RStat } from ${JSON.stringify(KVM_MOD)};
import { freeSubtreeNow } from ${JSON.stringify(PGTABLE_MOD)};
export const name = "frees-too-early";
export default (env) => ({
  name: env.name,
  freeUnlinked(pgt, page, level, shared) {
    // BUG: a shared walker may still be inside this subtree.
    env.stats.add(RStat.FREED_NOW, freeSubtreeNow(pgt, page, level));
  },
  afterUnlock() {},
  drain() {},
  hasEpilogueWork: () => false,
});
`;
}

test("negative control: a user strategy that frees too early is caught and named", async () => {
  const path = join(dir, "too-early.mjs");
  await writeFile(path, tooEarlySource());
  // The race needs a walker inside a table page while the other vCPU frees it: the vCPUs take turns
  // under the controlled scheduler (--controlled), so each seed is one deterministic schedule and a
  // catch replays from its seed whatever the machine's load.
  let caught = "";
  for (let attempt = 0; attempt < 24 && caught === ""; attempt++) {
    const s = (seed + attempt) >>> 0;
    const r = cli([
      "faults",
      "--strategy",
      path,
      "--seed",
      String(s),
      "--iterations",
      "2000",
      "--controlled",
      "random",
    ]);
    assert.notEqual(r.code, 2, `refused as bad input: ${r.err}`);
    assert.ok(!r.err.includes("internal error"), r.err);
    if (r.code === 1) {
      console.log(`# user-strategy frees-too-early: caught with seed ${s}`);
      assert.match(r.out, /frees-too-early/, `the failure does not name the strategy:\n${r.out}`);
      assert.match(r.out, /FAIL/, r.out);
      caught = r.out.trim().split("\n").slice(-2).join(" | ");
    } else {
      assert.equal(r.code, 0, r.err);
    }
  }
  console.log(`# negative control caught: ${caught}`);
  assert.notEqual(
    caught,
    "",
    `the too-early strategy was never caught (seed ${seed}): the checks cannot fail`,
  );
});

test("resolveStrategy() keeps built-in names and never takes a user word as an object key", async () => {
  assert.equal(await resolveStrategy("per-table"), "per-table");
  assert.equal(await resolveStrategy("batched"), "batched");
  for (const word of ["constructor", "__proto__", "toString"]) {
    await assert.rejects(resolveStrategy(word, dir), StrategyLoadError, word);
  }
});

test("resolveStrategy() refuses a missing module, a failing import and a module without a factory", async () => {
  await assert.rejects(
    resolveStrategy("./nope.mjs", dir),
    /Cannot load reclaim strategy \.\/nope\.mjs: no such file/,
  );
  await writeFile(join(dir, "throws.mjs"), "throw new Error('boom');\n");
  await assert.rejects(resolveStrategy("./throws.mjs", dir), /throws\.mjs: import failed: boom/);
  await writeFile(join(dir, "nodefault.mjs"), "export const name = 'x';\n");
  await assert.rejects(resolveStrategy("./nodefault.mjs", dir), /default export is not a strategy factory/);
  await writeFile(join(dir, "unnamed.mjs"), "export default () => ({});\n");
  assert.equal(strategyLabel(await resolveStrategy("./unnamed.mjs", dir)), "unnamed");
});

test("checkStrategy() names a user strategy that lacks a hook", () => {
  const ref = { name: "half-done", url: "file:///x.mjs" };
  assert.throws(() => checkStrategy(ref, null), /"half-done": its factory returned null/);
  assert.throws(
    () => checkStrategy(ref, { freeUnlinked() {}, afterUnlock() {}, drain() {} }),
    /"half-done" has no hasEpilogueWork\(\) method/,
  );
  const ok = { freeUnlinked() {}, afterUnlock() {}, drain() {}, hasEpilogueWork: () => false };
  assert.equal(checkStrategy(ref, ok), ok);
});

test("a user factory that builds no strategy fails the run with the strategy's name", async () => {
  await writeFile(
    join(dir, "half.mjs"),
    "export const name = 'half-built';\nexport default () => ({ freeUnlinked() {}, afterUnlock() {} });\n",
  );
  await assert.rejects(
    runStress({
      strategy: await resolveStrategy("./half.mjs", dir),
      mode: "shared",
      vcpus: 1,
      iterations: 10,
      seed,
      rcuFlavor: "mb",
      raceSpins: 0,
      hostOps: false,
      debug: true,
    }),
    /vCPU 0 .*Reclaim strategy "half-built" has no drain\(\) method/,
  );
});

test("stage2 faults refuses an unknown strategy word and a missing module as bad input", () => {
  const unknown = cli(["faults", "--strategy", "per-tabel"]);
  assert.equal(unknown.code, 2, unknown.err);
  assert.match(unknown.err, /--strategy: "per-tabel" is not one of per-table, .* nor a module path/);
  const missing = cli(["faults", "--strategy", "./missing-strategy.mjs"]);
  assert.equal(missing.code, 2, missing.err);
  assert.match(missing.err, /Cannot load reclaim strategy \.\/missing-strategy\.mjs: no such file/);
  const unsafe = cli(["faults", "--strategy", "unsafe-sync"]);
  assert.equal(unsafe.code, 2, "the test-only strategy stays out of the CLI");
});
