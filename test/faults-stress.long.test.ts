/**
 * Long version of the parallel-fault stress test (`npm run test:long`): every strategy, both RCU
 * flavors, more operations and wider race windows. Seeds are printed; STAGE2_SEED replays.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { STRATEGIES } from "../src/kvm/reclaim/strategy.js";
import { seedFromEnv } from "../src/common/rng.js";
import { runStress } from "../src/sim/stress-run.js";

const seed = seedFromEnv();

for (const rcuFlavor of ["mb", "qsbr"] as const) {
  for (const strategy of STRATEGIES) {
    test(`long stress: ${strategy} reclaim, ${rcuFlavor} RCU`, async () => {
      console.log(`# long stress ${strategy}/${rcuFlavor}: seed ${seed}`);
      const r = await runStress({
        strategy,
        mode: "shared",
        vcpus: 3,
        iterations: 1_000_000,
        seed,
        rcuFlavor,
        raceSpins: 1000,
        hostOps: true,
        debug: true,
        boundedCapPages: 16,
        sliceBudgetPages: 4,
      });
      const why = `seed ${seed}: ${r.firstFault ?? ""} ${r.auditProblems.join("; ")}`;
      assert.equal(r.uafDetected, 0, why);
      assert.equal(r.pgtable.corrupt, 0, why);
      assert.deepEqual(r.auditProblems, [], why);
      assert.deepEqual(r.destroy.leakedPages, [], why);
      assert.equal(r.reclaim.pendingPages, 0, why);
    });
  }
}
