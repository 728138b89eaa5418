/**
 * The MMU model under the fault stress with every reclaim strategy, both fault modes and both RCU
 * flavors: 2 vCPU workers touch through their TLBs and hardware walkers while collapsing and
 * walking, the host unmaps and write-protects; every checker (break-before-make, stale TLB, use
 * after free, dirty log, refcount audit, leaks) must stay silent, and the model must really have
 * been used (walks, TLB hits, invalidations acknowledged by idle vCPUs). Seeds print;
 * STAGE2_SEED replays.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { findings, formatFindings } from "../src/check/mod.js";
import { seedFromEnv } from "../src/common/rng.js";
import { STRATEGIES } from "../src/kvm/reclaim/strategy.js";
import { runStress } from "../src/sim/stress-run.js";

const seed = seedFromEnv();

for (const strategy of STRATEGIES) {
  for (const mode of ["shared", "exclusive"] as const) {
    test(`MMU model, ${strategy} reclaim, ${mode} faults: no checker finding`, async () => {
      console.log(`# mmu-stress ${strategy} ${mode}: seed ${seed} (replay: STAGE2_SEED=${seed})`);
      const r = await runStress({
        strategy,
        mode,
        vcpus: 2,
        iterations: 6000,
        seed,
        rcuFlavor: strategy === "batched" ? "qsbr" : "mb",
        raceSpins: 200,
        hostOps: true,
        debug: true,
        mmu: true,
      });
      const f = findings({
        mmuViolations: r.mmuViolations,
        softwareUaf: r.uafDetected,
        firstFault: r.firstFault,
        corrupt: r.pgtable.corrupt,
        auditProblems: r.auditProblems,
        leakedPages: r.destroy.leakedPages,
      });
      assert.deepEqual(f, [], `seed ${seed}: ${formatFindings(f)}`);
      for (const v of r.vcpus) assert.equal(v.errors, 0, `seed ${seed}: ${v.firstError}`);
      assert.ok(r.hostOps > 0, "the host never unmapped or write-protected");
      const m = r.mmu;
      assert.ok(m.hits > 0 && m.walks > 0, `the model was not used: ${JSON.stringify(m)}`);
      assert.ok(m.serviced > 0, `no invalidation was drained for an idle vCPU: ${JSON.stringify(m)}`);
    });
  }
}
