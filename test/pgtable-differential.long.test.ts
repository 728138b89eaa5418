/**
 * The differential property of pgtable-differential.test.ts with many more and longer sequences
 * (`npm run test:long`). Replay with STAGE2_SEED=<seed> (printed), and STAGE2_SEED_PATH=<path> from a
 * failure message to jump to the shrunk counterexample.
 */
import { describe, test } from "node:test";
import { checkDifferential, DIFF_CONFIGS, diffSeed } from "./pgtable-differential.js";

const seed = diffSeed();
const RUNS: Record<string, [number, number]> = {
  "4K/36": [1000, 100],
  "4K/32": [500, 100],
  "16K/40": [300, 80],
  "64K/44": [120, 60],
};

describe("stage-2 operations agree with the reference model (long run)", () => {
  for (const cfg of DIFF_CONFIGS) {
    const [runs, maxOps] = RUNS[cfg.name] ?? [200, 60];
    test(`${cfg.name}: ${runs} random sequences of up to ${maxOps} operations`, (t) => {
      t.diagnostic(`seed ${seed}: replay with STAGE2_SEED=${seed}`);
      checkDifferential(cfg, seed, runs, maxOps);
    });
  }
});
