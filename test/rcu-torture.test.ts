/**
 * rcutorture, short: 2 readers and 1 updater over a pipe of 10 elements, for both flavors and
 * every way of retiring elements. Readers may see only stages 0 and 1 and never a freed element.
 * The long version is rcu-torture.long.test.ts. STAGE2_SEED replays a run.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type RetireMode, runTorture } from "../src/rcu/torture/run.js";

const seed = Number(process.env.STAGE2_SEED ?? Math.floor(Math.random() * 0x7fffffff));
const MODES: RetireMode[] = ["sync", "call", "poll"];

for (const flavor of ["mb", "qsbr"] as const) {
  for (const mode of MODES) {
    test(`rcu torture (${flavor}, retire by ${mode}): readers see stages 0-1 only, never a freed element`, async () => {
      console.log(`# rcu torture ${flavor}/${mode}: seed ${seed}`);
      const r = await runTorture({ flavor, mode, readers: 2, durationMs: 300, seed });
      const msg = `seed ${seed} (replay with STAGE2_SEED=${seed}): ${JSON.stringify({ ...r, stats: undefined })}`;
      assert.equal(r.freedSeen, 0, `a reader saw a freed element; ${msg}`);
      assert.equal(r.stages[2], 0, `a reader saw stage 2; ${msg}`);
      assert.ok(r.updates >= 10, `too few updates to mean anything; ${msg}`);
      assert.ok(r.sections >= 100, `too few read-side sections; ${msg}`);
      assert.ok(r.stats.gracePeriods > 0, msg);
      if (mode === "call") assert.equal(r.stats.pending, 0, `callbacks left after close(); ${msg}`);
    });
  }
}

test("negative control: retiring elements with no grace period is caught by the readers", async () => {
  // Each attempt is a real race, so one may miss; all of them missing fails.
  let caught = "";
  for (let attempt = 0; attempt < 4 && caught === ""; attempt++) {
    const s = (seed + attempt * 7919) % 0x7fffffff;
    console.log(`# rcu torture mb/none: seed ${s}`);
    const r = await runTorture({ flavor: "mb", mode: "none", readers: 2, durationMs: 300, seed: s });
    if (r.freedSeen > 0 || r.stages[2]! > 0) caught = `seed ${s}: ${r.freedSeen} freed, stages ${r.stages}`;
  }
  assert.notEqual(caught, "", `freeing with no grace period went unnoticed (seed ${seed})`);
  console.log(`# caught: ${caught}`);
});
