/**
 * Infrastructure every layer shares: numeric status codes (`Errno`) and the typed error of the
 * public boundary, seeded random generators, log2 duration histograms, labelled race points, and
 * V8's inlining budget for the fault path.
 */
export { Errno, errnoName, Stage2Error } from "./errno.js";
export { type Log2Histogram, log2Bucket, log2Quantile, summarizeLog2 } from "./log2-histogram.js";
export {
  clearFailures,
  clearRaceDelays,
  FAILURE_POINTS,
  injectedCounts,
  parseRaceDelays,
  RACE_POINT_NAMES,
  RacePoint,
  type RaceHook,
  racePoint,
  racePointByName,
  raceDelayEnabled,
  resetInjectedCounts,
  setFailureRates,
  setRaceDelays,
  setRaceHook,
  shouldFail,
  spinningRaceHook,
} from "./race-points.js";
export { Rng, seedFromEnv, XORSHIFT_ZERO_SEED, xorshift32, xorshiftSeed } from "./rng.js";
export { budgetFromArgs, INLINING_BUDGET, type InliningBudget, raiseInliningBudget } from "./v8-budget.js";
