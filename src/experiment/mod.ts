/**
 * The experiment layer: the KVM-selftest workloads, the runner that drives them on vCPU worker
 * threads, run specs and their replay command lines, and the RunResult contract.
 */
export { parseArgs, parseSeed, parseSize } from "./args.js";
export { ConfigError } from "./errors.js";
export { checkSpec, defaultSpecs, executeSpec } from "./execute.js";
export {
  MODES,
  parseRunRequest,
  RCU_FLAVORS,
  type RunRequest,
  type RunSpec,
  replayArgs,
  shellJoin,
} from "./plan.js";
export {
  type CheckFigures,
  type PhaseTime,
  RESULT_SCHEMA_VERSION,
  type ReclaimFigures,
  type RunResult,
  type Sample,
  type VcpuFigures,
  WORKLOADS,
  type WorkloadName,
} from "./result.js";
export {
  type CommonConfig,
  RunContext,
  type RunHooks,
  runWorkload,
  type VmLayout,
  type Workload,
} from "./runner.js";
export { formatTs } from "./timespec.js";
export { WORKLOAD_TABLE } from "./workloads/index.js";
