/**
 * A controlled torture round: the round of round.ts with `spec.controlled` set, so that the
 * vCPUs, the host thread and the RCU callback worker take turns as the round's seeded schedule
 * decides. On a violation it writes the schedule file that `--replay` follows to the same
 * violation at the same step (the same seed alone replays it too).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RcuFlavor } from "../kvm/reclaim/rcu-glue.js";
import { STRATEGIES, type StrategyName } from "../kvm/reclaim/strategy.js";
import { controlledHostOps, type RoundResult, type RoundSpec, runRound } from "./round.js";
import type { ScheduleFile, TortureIo, TortureOptions, TortureSummary } from "./types.js";

/** Runs controlled round `r`, adds it to `s` with `add`, and writes the schedule file on a violation. */
export async function controlledRound(
  o: TortureOptions,
  r: number,
  cfg: { strategy: StrategyName; rcu: RcuFlavor },
  s: TortureSummary,
  io: TortureIo,
  add: (s: TortureSummary, res: RoundResult) => void,
): Promise<void> {
  const rp = o.replay;
  const pctDepth = rp ? rp.pctDepth : (o.pctDepth ?? null);
  const vcpus = rp ? rp.vcpus : o.vcpus;
  const ops = rp ? rp.ops : o.ops;
  const allocFail = rp ? rp.allocFail : o.allocFail;
  const hostOps = rp ? rp.hostOps : controlledHostOps(ops);
  const spec: RoundSpec = {
    seed: rp ? rp.seed : o.seed,
    round: r,
    ...cfg,
    vcpus,
    ops,
    allocFail,
    raceSpins: 0,
    ...(o.testOnlyBugs ? { testOnlyBugs: o.testOnlyBugs } : {}),
    controlled: {
      schedule: pctDepth === null ? "random" : "pct",
      ...(pctDepth === null ? {} : { pctDepth }),
      ...(rp ? { replay: rp.schedule } : {}),
      hostOps,
    },
  };
  const res = await runRound(spec);
  add(s, res);
  const sched = res.schedule;
  if (sched === null) throw new Error("a controlled round reported no schedule");
  io.stat(
    `torture: round ${r} (${cfg.strategy}/${cfg.rcu}) schedule ${sched.scheduleHash}, ${sched.steps} steps, ` +
      `${res.vcpuOps} vCPU ops, ${res.hostOps} host ops, ${res.gracePeriods} grace periods`,
  );
  s.schedules.push({ round: r, hash: sched.scheduleHash, steps: sched.steps });
  if (res.violations.length === 0) return;
  const file: ScheduleFile = {
    format: "stage2-torture-schedule",
    version: 2,
    seed: spec.seed,
    round: r,
    ...cfg,
    vcpus,
    ops,
    hostOps,
    allocFail,
    pctDepth,
    scheduleHash: sched.scheduleHash,
    schedule: sched.schedule,
    violation: res.violations[0]?.detail ?? "",
  };
  const logFile = join(o.logDir, `torture-${file.seed}-round-${r}-schedule-${sched.scheduleHash}.json`);
  mkdirSync(o.logDir, { recursive: true });
  writeFileSync(logFile, `${JSON.stringify(file)}\n`);
  const replay = `stage2 torture --replay ${logFile}`;
  for (const v of res.violations) s.violations.push({ ...v, round: r, ...cfg, replay, logFile });
}

/** Checks a parsed replay file's shape; returns an error message or null. */
export function checkScheduleFile(x: unknown): string | null {
  const f = x as Partial<ScheduleFile> | null;
  if (typeof f !== "object" || f === null || f.format !== "stage2-torture-schedule")
    return "not a stage2 torture schedule file";
  if ((f.version as number) === 1)
    return "a version 1 schedule file comes from a vCPU-only controlled round (before the host and the RCU callback worker took part); rerun its seed with --controlled instead";
  if (f.version !== 2) return `schedule file version ${String(f.version)} is not 2`;
  if (!STRATEGIES.includes(f.strategy as StrategyName)) return `unknown strategy ${String(f.strategy)}`;
  if (f.rcu !== "mb" && f.rcu !== "qsbr") return `unknown RCU flavor ${String(f.rcu)}`;
  for (const k of ["seed", "round", "vcpus", "ops", "hostOps"] as const)
    if (!Number.isInteger(f[k]) || (f[k] as number) < 0) return `field ${k} is not a whole number`;
  if (typeof f.allocFail !== "number" || !(f.allocFail >= 0 && f.allocFail <= 1))
    return "field allocFail is not a rate in 0..1";
  // Participants: the vCPUs, then the host thread, then the RCU callback worker.
  const participants = (f.vcpus as number) + 2;
  if (
    !Array.isArray(f.schedule) ||
    !f.schedule.every((t) => Number.isInteger(t) && t >= 0 && t < participants)
  )
    return "field schedule is not a list of participant ids (vCPUs, host, RCU callback worker)";
  if (f.pctDepth !== null && !Number.isInteger(f.pctDepth))
    return "field pctDepth is not a whole number or null";
  return null;
}
