/**
 * The torture driver: rounds (`round.ts`, or `runControlledStress` with `controlled`) until the
 * time budget or the round count is used up, cycling through every strategy and both RCU flavors
 * unless pinned, with a stat line every ~2 s (as rcutorture prints), and a summary. It stops at
 * the first round with a violation and writes that round's replay file (the exact command line,
 * the spec, the op log; for controlled rounds the schedule).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RcuFlavor } from "../kvm/reclaim/rcu-glue.js";
import { STRATEGIES, type StrategyName } from "../kvm/reclaim/strategy.js";
import type { Vm } from "../kvm/vm.js";
import { runControlledStress } from "../sim/stress-run.js";
import type { HostMix } from "./host-ops.js";
import { type RoundResult, type RoundSpec, roundSeed, runRound, type TortureViolation } from "./round.js";

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
  /** Run rounds under the controlled scheduler (vCPU-only op mixes). */
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
}

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
  /** Injected faults per kind (failure point names; delays as "delay:<point>"). */
  injected: Record<string, number>;
  /** Guest accesses that reported ENOMEM, and that gave up after the retry budget (AGAIN). */
  nomemReported: number;
  gaveUp: number;
  /** Host operations that failed with ENOMEM (the ioctl's -ENOMEM). */
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
  version: 1;
  seed: number;
  round: number;
  strategy: StrategyName;
  rcu: RcuFlavor;
  vcpus: number;
  ops: number;
  pctDepth: number | null;
  scheduleHash: string;
  schedule: number[];
  violation: string;
}

/** Progress hooks: a stat line, and a note (seed, schedule hash). */
export interface TortureIo {
  stat(line: string): void;
}

const STAT_MS = 2000;
/** Checks of a controlled round: the stress loop's own (use after free, misuse), MMU, audit, leak, schedule. */
const CONTROLLED_CHECKS = 5;

/** The configuration of round `r`: strategies cycle fastest, then flavors. */
export function roundConfig(o: TortureOptions, r: number): { strategy: StrategyName; rcu: RcuFlavor } {
  const strategy = o.strategies[r % o.strategies.length] as StrategyName;
  const rcu = o.flavors[Math.floor(r / o.strategies.length) % o.flavors.length] as RcuFlavor;
  return { strategy, rcu };
}

/** Runs the torture (see the file comment). */
export async function runTorture(o: TortureOptions, io: TortureIo): Promise<TortureSummary> {
  const s: TortureSummary = {
    seed: o.replay ? o.replay.seed : o.seed,
    mode: o.controlled || o.replay ? "controlled" : "free",
    seconds: 0,
    rounds: 0,
    operations: 0,
    vcpuOps: 0,
    hostOps: 0,
    faults: 0,
    races: { again: 0, casFailures: 0 },
    gracePeriods: 0,
    checksPassed: 0,
    checksRun: 0,
    injected: {},
    nomemReported: 0,
    gaveUp: 0,
    hostNomem: 0,
    rcuAge: [0, 0, 0, 0],
    configs: {},
    schedules: [],
    violations: [],
  };
  const t0 = performance.now();
  const live: Live = { what: "", vm: null, host: null };
  const timer = setInterval(() => io.stat(statLine(s, t0, live)), STAT_MS);
  try {
    for (let i = 0; ; i++) {
      const r = o.replay ? o.replay.round : (o.onlyRound ?? i);
      const cfg = o.replay ? { strategy: o.replay.strategy, rcu: o.replay.rcu } : roundConfig(o, r);
      live.what = `round ${r} (${cfg.strategy}/${cfg.rcu})`;
      try {
        if (o.controlled || o.replay) await controlledRound(o, r, cfg, s, io);
        else
          await freeRound(o, r, cfg, s, (vm, host) => {
            live.vm = vm;
            live.host = host;
          });
      } catch (e) {
        roundDied(o, r, cfg, s, e);
      }
      live.vm = null;
      live.host = null;
      s.rounds++;
      s.configs[`${cfg.strategy}/${cfg.rcu}`] = (s.configs[`${cfg.strategy}/${cfg.rcu}`] ?? 0) + 1;
      if (s.violations.length > 0 || o.replay || o.onlyRound !== undefined) break;
      if (o.rounds !== undefined && s.rounds >= o.rounds) break;
      if (o.seconds !== undefined && performance.now() - t0 >= o.seconds * 1000) break;
      if (o.seconds === undefined && o.rounds === undefined) break;
    }
  } finally {
    clearInterval(timer);
  }
  s.seconds = Math.round((performance.now() - t0) / 10) / 100;
  s.operations = s.vcpuOps + s.hostOps;
  return s;
}

/** The round in progress, for the stat line (its VM's counters are shared memory: read live). */
interface Live {
  what: string;
  vm: Vm | null;
  host: HostMix | null;
}

function statLine(s: TortureSummary, t0: number, live: Live): string {
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  const injected = Object.entries(s.injected)
    .filter(([k]) => !k.startsWith("delay:"))
    .reduce((n, [, v]) => n + v, 0);
  const now = live.vm?.vcpuStats.snapshot();
  const faults = s.faults + (now?.faults ?? 0);
  const again = s.races.again + (now?.again ?? 0);
  const nomem = s.nomemReported + (now?.nomem ?? 0);
  return (
    `torture ${secs}s: ${live.what}; rounds ${s.rounds} ops ${s.vcpuOps + s.hostOps + (live.host?.ops ?? 0)} ` +
    `faults ${faults} again ${again} cas-fail ${s.races.casFailures} gps ${s.gracePeriods} ` +
    `alloc-fail ${injected} enomem ${nomem} rcu-age ${s.rcuAge.join("/")} ` +
    `violations ${s.violations.length}`
  );
}

async function freeRound(
  o: TortureOptions,
  r: number,
  cfg: { strategy: StrategyName; rcu: RcuFlavor },
  s: TortureSummary,
  started: (vm: Vm, host: HostMix) => void,
): Promise<void> {
  const spec: RoundSpec = {
    seed: o.seed,
    round: r,
    ...cfg,
    vcpus: o.vcpus,
    ops: o.ops,
    allocFail: o.allocFail,
    raceSpins: o.raceSpins,
    ...(o.testOnlyBugs ? { testOnlyBugs: o.testOnlyBugs } : {}),
  };
  const res = await runRound(spec, started);
  add(s, res);
  if (res.violations.length === 0) return;
  const replay = replayLine(o, r, cfg);
  const logFile = join(o.logDir, `torture-${o.seed}-round-${r}.json`);
  mkdirSync(o.logDir, { recursive: true });
  writeFileSync(
    logFile,
    `${JSON.stringify(
      {
        format: "stage2-torture-oplog",
        version: 1,
        replay,
        spec,
        roundSeed: roundSeed(o.seed, r),
        violations: res.violations,
        hostOps: res.hostLog,
        vcpuLastOps: res.vcpuLastOps,
      },
      null,
      1,
    )}\n`,
  );
  for (const v of res.violations) s.violations.push({ ...v, round: r, ...cfg, replay, logFile });
}

function add(s: TortureSummary, res: RoundResult): void {
  s.vcpuOps += res.vcpuOps;
  s.hostOps += res.hostOps;
  s.faults += res.faults;
  s.races.again += res.again;
  s.races.casFailures += res.casFailures;
  s.gracePeriods += res.gracePeriods;
  s.nomemReported += res.nomem;
  s.gaveUp += res.gaveUp;
  s.hostNomem += res.hostNomem;
  const failed = new Set(res.violations.map((v) => v.checker)).size;
  s.checksRun += res.checks;
  s.checksPassed += res.checks - failed;
  for (const [k, v] of Object.entries(res.injected)) s.injected[k] = (s.injected[k] ?? 0) + v;
  res.rcuAge.forEach((n, i) => {
    s.rcuAge[i] = (s.rcuAge[i] as number) + n;
  });
}

/**
 * A round that threw instead of finishing (a worker that could not start, a controlled run whose
 * vCPU crashed): a violation like any other, with the command line that reruns the round (for a
 * controlled round the seed alone decides the schedule, so it replays exactly too).
 */
function roundDied(
  o: TortureOptions,
  r: number,
  cfg: { strategy: StrategyName; rcu: RcuFlavor },
  s: TortureSummary,
  e: unknown,
): void {
  const detail = `the round died: ${String((e as Error)?.message ?? e).split("\n")[0]}`;
  const replay = o.replay ? `stage2 torture --replay ${o.replayPath ?? "FILE"}` : replayLine(o, r, cfg);
  const logFile = join(o.logDir, `torture-${s.seed}-round-${r}-died.json`);
  mkdirSync(o.logDir, { recursive: true });
  const stack = String((e as Error)?.stack ?? e);
  writeFileSync(
    logFile,
    `${JSON.stringify({ format: "stage2-torture-died", version: 1, replay, round: r, ...cfg, stack }, null, 1)}\n`,
  );
  s.violations.push({ checker: "round died", detail, round: r, ...cfg, replay, logFile });
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
  if (!o.controlled) parts.push(`--alloc-fail ${o.allocFail}`, `--race-spins ${o.raceSpins}`);
  return parts.join(" ");
}

async function controlledRound(
  o: TortureOptions,
  r: number,
  cfg: { strategy: StrategyName; rcu: RcuFlavor },
  s: TortureSummary,
  io: TortureIo,
): Promise<void> {
  const rp = o.replay;
  const pctDepth = rp ? rp.pctDepth : (o.pctDepth ?? null);
  const vcpus = rp ? rp.vcpus : o.vcpus;
  const ops = rp ? rp.ops : o.ops;
  const seed = roundSeed(rp ? rp.seed : o.seed, r);
  const rep = await runControlledStress({
    strategy: cfg.strategy,
    vcpus,
    iterations: ops,
    seed,
    schedule: pctDepth === null ? "random" : "pct",
    ...(pctDepth === null ? {} : { pctDepth }),
    ...(rp ? { replay: rp.schedule } : {}),
    rcuFlavor: cfg.rcu,
    mmu: true,
    ...(o.testOnlyBugs ? { testOnlyBugs: o.testOnlyBugs } : {}),
  });
  const sched = rep.schedule;
  io.stat(
    `torture: round ${r} (${cfg.strategy}/${cfg.rcu}) schedule ${sched.scheduleHash}, ${sched.steps} steps`,
  );
  s.schedules.push({ round: r, hash: sched.scheduleHash, steps: sched.steps });
  s.vcpuOps += rep.vcpus.reduce((n, v) => n + v.touches + v.collapses + v.translations, 0);
  const found: TortureViolation[] = [];
  if (rep.violation)
    found.push({
      checker: "controlled",
      detail: `vCPU ${rep.violation.vcpu} at step ${rep.violation.step} (op ${rep.violation.op}): ${rep.violation.what}`,
    });
  for (const v of rep.mmuViolations)
    found.push({ checker: v.kind, detail: `${v.count} at IPA 0x${v.ipa.toString(16)}` });
  for (const p of rep.auditProblems.slice(0, 3)) found.push({ checker: "refcount audit", detail: p });
  if (rep.leakedPages.length > 0) found.push({ checker: "leak", detail: `${rep.leakedPages.length} pages` });
  if (sched.abandoned)
    found.push({ checker: "controlled", detail: "the schedule was abandoned (a participant stalled)" });
  s.checksRun += CONTROLLED_CHECKS;
  s.checksPassed += CONTROLLED_CHECKS - new Set(found.map((f) => f.checker)).size;
  if (found.length === 0) return;
  const file: ScheduleFile = {
    format: "stage2-torture-schedule",
    version: 1,
    seed: rp ? rp.seed : o.seed,
    round: r,
    ...cfg,
    vcpus,
    ops,
    pctDepth,
    scheduleHash: sched.scheduleHash,
    schedule: sched.schedule,
    violation: found[0]?.detail ?? "",
  };
  const logFile = join(o.logDir, `torture-${file.seed}-round-${r}-schedule-${sched.scheduleHash}.json`);
  mkdirSync(o.logDir, { recursive: true });
  writeFileSync(logFile, `${JSON.stringify(file)}\n`);
  const replay = `stage2 torture --replay ${logFile}`;
  for (const v of found) s.violations.push({ ...v, round: r, ...cfg, replay, logFile });
}

/** Checks a parsed replay file's shape; returns an error message or null. */
export function checkScheduleFile(x: unknown): string | null {
  const f = x as Partial<ScheduleFile> | null;
  if (typeof f !== "object" || f === null || f.format !== "stage2-torture-schedule")
    return "not a stage2 torture schedule file";
  if (f.version !== 1) return `schedule file version ${String(f.version)} is not 1`;
  if (!STRATEGIES.includes(f.strategy as StrategyName)) return `unknown strategy ${String(f.strategy)}`;
  if (f.rcu !== "mb" && f.rcu !== "qsbr") return `unknown RCU flavor ${String(f.rcu)}`;
  for (const k of ["seed", "round", "vcpus", "ops"] as const)
    if (!Number.isInteger(f[k]) || (f[k] as number) < 0) return `field ${k} is not a whole number`;
  if (
    !Array.isArray(f.schedule) ||
    !f.schedule.every((t) => Number.isInteger(t) && t >= 0 && t < (f.vcpus as number))
  )
    return "field schedule is not a list of vCPU ids";
  if (f.pctDepth !== null && !Number.isInteger(f.pctDepth))
    return "field pctDepth is not a whole number or null";
  return null;
}
