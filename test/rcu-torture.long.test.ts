/**
 * rcutorture, long (`npm run test:long`): 3 readers and 1 updater, each flavor and retire mode for
 * STAGE2_TORTURE_SECONDS (default 20) seconds. STAGE2_SEED replays a run.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type RetireMode, runTorture } from "../src/rcu/torture/run.js";

const seed = Number(process.env.STAGE2_SEED ?? Math.floor(Math.random() * 0x7fffffff));
const seconds = Number(process.env.STAGE2_TORTURE_SECONDS ?? 20);
const MODES: RetireMode[] = ["sync", "call", "poll"];

for (const flavor of ["mb", "qsbr"] as const) {
  for (const mode of MODES) {
    test(
      `rcu torture long (${flavor}, retire by ${mode}, ${seconds} s)`,
      { timeout: seconds * 1000 + 60_000 },
      async () => {
        const r = await runTorture({ flavor, mode, readers: 3, durationMs: seconds * 1000, seed });
        const msg = `seed ${seed} (replay with STAGE2_SEED=${seed}): ${JSON.stringify({ ...r, stats: undefined })}`;
        console.log(`torture ${flavor}/${mode}: ${msg}`);
        assert.equal(r.freedSeen, 0, `a reader saw a freed element; ${msg}`);
        assert.equal(r.stages[2], 0, `a reader saw stage 2; ${msg}`);
        assert.ok(r.updates >= 100, `too few updates; ${msg}`);
        assert.ok(r.stages[1]! > 0, `no reader ever held a retired element: the test did not race; ${msg}`);
      },
    );
  }
}
