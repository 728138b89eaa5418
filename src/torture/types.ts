/**
 * The torture's shapes: what it runs (`TortureOptions`), what it reports (`TortureSummary`, one
 * JSON object with --json), the schedule file of a failing controlled round, and the command line
 * that reruns one round.
 */
import type { RcuFlavor } from "../kvm/reclaim/rcu-glue.js";
import type { StrategyName } from "../kvm/reclaim/strategy.js";
import type { TortureViolation } from "./round.js";

/** What `stage2 torture` runs. */
export interface TortureOptions {
  seed: number;
  /** Time budget: no new round starts after it (at least one round runs); none when absent. */
  seconds?: number;
  /** Most rounds; none when absent. */
  rounds?: number;
  /** Run only this round of the seed (a replay); strategy and flavor as given. */
  onlyRound?: number;
  vcpus: number;
  /** Operations per vCPU per round. */
  ops: number;
  /** Pinned strategy / flavor, or all of them in turn. */
  strategies: readonly StrategyName[];
  flavors: readonly RcuFlavor[];
  allocFail: number;
  raceSpins: number;
  /** Run rounds under the controlled scheduler (vCPUs, a host thread and the RCU callback worker). */
  controlled: boolean;
  /** PCT depth under `controlled` (absent: the random strategy). */
  pctDepth?: number;
  /** A schedule file a failing controlled run wrote: replay it (one round). */
  replay?: ScheduleFile;
  /** Where `replay` was read from (for the replay line). */
  replayPath?: string;
  /** Where replay files go. */
  logDir: string;
  /** Test only: deliberately broken variants (VmOptions.testOnly.bugs); no CLI flag sets it. */
  testOnlyBugs?: number;
  /**
   * Probability that a free round kills one vCPU mid-run (torture/deaths.ts); absent: 0. The
   * CLI's `--deaths` defaults to DEFAULT_DEATH_RATE. Controlled rounds kill none.
   */
  deathRate?: number;
  /** Deaths may also strike at a random moment (`--deaths-anytime`; deaths.ts says why it is off). */
  deathAnytime?: boolean;
  /** Test only: VmOptions.testOnly.noDeathRecovery in every round (the deaths' negative control). */
  testOnlyNoDeathRecovery?: boolean;
}

/** `stage2 torture`'s default `--deaths`: about one round in five kills a vCPU. */
export const DEFAULT_DEATH_RATE = 0.2;

/** A violation with what reproduces it. */
export interface ReportedViolation extends TortureViolation {
  round: number;
  strategy: StrategyName;
  rcu: RcuFlavor;
  /** The command line that reruns the failing round. */
  replay: string;
  /** The replay file (op log, or the schedule). */
  logFile: string;
}

/** The summary (`--json` prints it as one object). */
export interface TortureSummary {
  seed: number;
  mode: "free" | "controlled";
  seconds: number;
  rounds: number;
  operations: number;
  vcpuOps: number;
  hostOps: number;
  faults: number;
  /** Races seen: AGAIN retries and lost compare-and-swaps. */
  races: { again: number; casFailures: number };
  gracePeriods: number;
  checksPassed: number;
  checksRun: number;
  /**
   * Injected faults per kind (failure point names; delays as "delay:<point>"; vCPUs killed on
   * purpose as "vcpuDeath").
   */
  injected: Record<string, number>;
  /** vCPUs killed on purpose, each recovered by the death watch unless a violation says otherwise. */
  deaths: number;
  /** Pages `recoverLostPages()` freed after deaths (held in dead vCPUs' hands, listed nowhere). */
  lostRecovered: number;
  /** Guest accesses that reported ENOMEM, and that gave up after the retry budget (AGAIN). */
  nomemReported: number;
  gaveUp: number;
  /** Eager splits that stopped early for want of tables (best effort, as in Linux; not a failure). */
  hostNomem: number;
  /** RCU age histogram: pages readers entered at ages 0, 1, 2, >2 grace periods. */
  rcuAge: [number, number, number, number];
  /** Rounds per "strategy/flavor". */
  configs: Record<string, number>;
  /** Controlled rounds: each round's schedule hash and steps. */
  schedules: { round: number; hash: string; steps: number }[];
  violations: ReportedViolation[];
}

/** A controlled round's schedule, as written on a violation and read by `--replay`. */
export interface ScheduleFile {
  format: "stage2-torture-schedule";
  /** 2: the host thread and the RCU callback worker are participants (ids vcpus and vcpus + 1). */
  version: 2;
  seed: number;
  round: number;
  strategy: StrategyName;
  rcu: RcuFlavor;
  vcpus: number;
  ops: number;
  /** Host operations the host participant ran. */
  hostOps: number;
  /** Injected allocation failure rate. */
  allocFail: number;
  pctDepth: number | null;
  scheduleHash: string;
  schedule: number[];
  violation: string;
}

/** Progress hooks: a stat line, and a note (seed, schedule hash). */
export interface TortureIo {
  stat(line: string): void;
}

/** The exact command line that reruns round `r` alone. */
export function replayLine(
  o: TortureOptions,
  r: number,
  cfg: { strategy: StrategyName; rcu: RcuFlavor },
): string {
  const parts = [
    "stage2 torture",
    `--seed ${o.seed}`,
    `--round ${r}`,
    `--strategy ${cfg.strategy}`,
    `--rcu ${cfg.rcu}`,
    `--vcpus ${o.vcpus}`,
    `--ops ${o.ops}`,
  ];
  if (o.controlled) parts.push("--controlled");
  if (o.controlled && o.pctDepth !== undefined) parts.push(`--pct-depth ${o.pctDepth}`);
  parts.push(`--alloc-fail ${o.allocFail}`);
  if (!o.controlled) parts.push(`--race-spins ${o.raceSpins}`, `--deaths ${o.deathRate ?? 0}`);
  if (!o.controlled && o.deathAnytime) parts.push("--deaths-anytime");
  return parts.join(" ");
}
