/** `stage2 torture` as a library: rounds of op mixes with every checker on, and their summary. */
export { checkScheduleFile, controlledRound } from "./controlled-round.js";
export { HOST_OP_NAMES, HostMix, type HostOpRecord, LAYOUT } from "./host-ops.js";
export {
  ROUND_CHECKERS,
  type RoundResult,
  type RoundSpec,
  roundSeed,
  runRound,
  type TortureViolation,
} from "./round.js";
export { roundConfig, runTorture } from "./run.js";
export {
  type ReportedViolation,
  replayLine,
  type ScheduleFile,
  type TortureIo,
  type TortureOptions,
  type TortureSummary,
} from "./types.js";
