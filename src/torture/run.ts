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
import type { StrategyName } from "../kvm/reclaim/strategy.js";
import type { Vm } from "../kvm/vm.js";
import { controlledRound } from "./controlled-round.js";
import type { HostMix } from "./host-ops.js";
import { type RoundResult, type RoundSpec, roundSeed, runRound } from "./round.js";
import { replayLine, type TortureIo, type TortureOptions, type TortureSummary } from "./types.js";

export { checkScheduleFile } from "./controlled-round.js";
export type {
  ReportedViolation,
  ScheduleFile,
  TortureIo,
  TortureOptions,
  TortureSummary,
} from "./types.js";
export { DEFAULT_DEATH_RATE, replayLine } from "./types.js";

const STAT_MS = 2000;
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
    deaths: 0,
    lostRecovered: 0,
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
        if (o.controlled || o.replay) await controlledRound(o, r, cfg, s, io, add);
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
  // Allocation failures only (vCPU and host:), not delays, deaths or slowed callbacks.
  const injected = Object.entries(s.injected)
    .filter(([k]) => k.endsWith("alloc.page") || k.endsWith("memcache.topup"))
    .reduce((n, [, v]) => n + v, 0);
  const now = live.vm?.vcpuStats.snapshot();
  const faults = s.faults + (now?.faults ?? 0);
  const again = s.races.again + (now?.again ?? 0);
  const nomem = s.nomemReported + (now?.nomem ?? 0);
  return (
    `torture ${secs}s: ${live.what}; rounds ${s.rounds} ops ${s.vcpuOps + s.hostOps + (live.host?.ops ?? 0)} ` +
    `faults ${faults} again ${again} cas-fail ${s.races.casFailures} gps ${s.gracePeriods} ` +
    `alloc-fail ${injected} enomem ${nomem} deaths ${s.deaths} rcu-age ${s.rcuAge.join("/")} ` +
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
    deathRate: o.deathRate ?? 0,
    ...(o.deathAnytime ? { deathAnytime: true } : {}),
    ...(o.testOnlyNoDeathRecovery ? { testOnlyNoDeathRecovery: true } : {}),
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
        deaths: res.deaths,
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
  s.deaths += res.deaths.length;
  s.lostRecovered += res.lostRecovered;
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
