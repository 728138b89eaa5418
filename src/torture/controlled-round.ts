/**
 * A controlled torture round: `runControlledStress` (vCPU-only op mixes, one thread at a time, the
 * schedule a function of the round's seed) and, on a violation, the schedule file that `--replay`
 * follows to the same violation at the same step.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RcuFlavor } from "../kvm/reclaim/rcu-glue.js";
import { STRATEGIES, type StrategyName } from "../kvm/reclaim/strategy.js";
import { runControlledStress } from "../sim/stress-run.js";
import { roundSeed, type TortureViolation } from "./round.js";
import type { ScheduleFile, TortureIo, TortureOptions, TortureSummary } from "./types.js";

/** Checks of a controlled round: the stress loop's own (use after free, misuse), MMU, audit, leak, schedule. */
const CONTROLLED_CHECKS = 5;

/** Runs controlled round `r` and adds it to `s`. */
export async function controlledRound(
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
