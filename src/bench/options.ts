/** Options every benchmark runner takes. */
import type { FaultBenchParams } from "./faults.js";

/**
 * Called between the steps of a benchmark (never inside a timed loop): `done` of `total` steps,
 * and the step about to run. Front ends draw a progress line with it; figures are unaffected.
 */
export type BenchProgress = (done: number, total: number, step: string) => void;

export interface BenchOptions {
  /** A short run (smoke test; figures are noisy). */
  quick?: boolean;
  progress?: BenchProgress;
  /** `bench faults` only: geometry, sweep, rounds (stage2 bench faults flags). */
  faults?: FaultBenchParams;
}
