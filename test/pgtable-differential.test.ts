/**
 * Differential property test of the stage-2 operations against a reference model, for the 4K, 16K
 * and 64K granules (see pgtable-differential.ts). The seed is printed; replay with STAGE2_SEED=<seed>
 * (and STAGE2_SEED_PATH=<path> from a failure message to jump to the shrunk counterexample).
 * test/pgtable-differential.long.test.ts runs the same property with many more and longer sequences.
 */
import { describe, test } from "node:test";
import { checkDifferential, DIFF_CONFIGS, diffSeed } from "./pgtable-differential.js";

const seed = diffSeed();
/** Sequences per configuration and their maximum length: a few seconds in all on this machine. */
const RUNS: Record<string, [number, number]> = {
  "4K/36": [150, 50],
  "4K/32": [100, 40],
  "16K/40": [50, 40],
  "64K/44": [25, 30],
};

describe("stage-2 operations agree with the reference model", () => {
  for (const cfg of DIFF_CONFIGS) {
    const [runs, maxOps] = RUNS[cfg.name] ?? [20, 30];
    test(`${cfg.name}: ${runs} random sequences of up to ${maxOps} operations`, (t) => {
      t.diagnostic(`seed ${seed}: replay with STAGE2_SEED=${seed}`);
      checkDifferential(cfg, seed, runs, maxOps);
    });
  }
});
