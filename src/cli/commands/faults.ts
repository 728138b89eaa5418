/**
 * `stage2 faults`: parallel fault stress runs, one per reclaim strategy, with the statistics that
 * answer the review's questions (how many callbacks and pages wait for a grace period at peak, how
 * long callbacks run, what the teardown barrier costs), and a PASS/FAIL verdict.
 */
import { formatViolation } from "../../mmu/mod.js";
import { type StrategySpec, strategyLabel } from "../../kvm/reclaim/strategy.js";
import { parseStrategies } from "../../experiment/plan.js";
import {
  type ControlledStressReport,
  runControlledStress,
  runStress,
  type StressRunOptions,
  type StressRunReport,
} from "../../sim/stress-run.js";
import { MAX_PCT_DEPTH } from "../../sync/controlled.js";
import { type CliIo, type Command, UsageError } from "../command.js";
import {
  count,
  figure,
  type MetricRow,
  metricTable,
  usBound,
  usFromNs,
  verdict,
} from "../../bench/format.js";
import { chooseSeed, parseChoice, parseFlags, parseIntIn, parseRatio } from "../parse.js";
import { startProgress } from "../progress.js";

/** Upper bounds: a typo (an extra zero or three) is refused instead of becoming a hang. */
export const MAX_ITERATIONS = 10_000_000;
export const MAX_RACE_SPINS = 100_000;
export const MAX_VCPUS = 32;

const USAGE = `Usage: stage2 faults [options]

Runs vCPU worker threads that fault, collapse (install blocks over populated tables, unlinking
subtrees) and walk one shared region while the host unmaps and write-protects it, once per reclaim
strategy. Prints a table (one column per strategy), then checks for use-after-free, refcount
errors, leaks and table damage: the last line is PASS (exit 0) or FAIL (exit 1).

Options:
  --strategy S        per-table | per-subtree | bounded | batched | all (default all), or the
                      path of a strategy module (default export: a ReclaimStrategyFactory)
  --mode M            shared (parallel faults, read lock) | exclusive (write lock) (default shared)
  --vcpus N           vCPU worker threads, 1..${MAX_VCPUS} (default 2)
  --iterations N      operations per vCPU, 1..${MAX_ITERATIONS} (default 20000)
  --seed N            seed, 0..4294967295 (default: STAGE2_SEED or random); printed for replay
  --rcu F             mb | qsbr (default mb)
  --race-spins N      delay spins at the walk.table-entered and bbm.locked race points,
                      0..${MAX_RACE_SPINS} (default 0)
  --bounded-cap N     bounded strategy: pending pages before vCPUs reclaim themselves, >= 1
                      (default 2048)
  --slice-budget N    pages a subtree callback frees per slice, >= 1 (default 64)
  --region MIB        size of the shared region, an even number of MiB in 2..1024 (default 16)
  --touch-ratio R     share of operations that touch a page, 0..1 (default 0.6)
  --collapse-ratio R  share of operations that collapse a range into a block, 0..1 (default 0.03)
  --gib-share R       share of collapses that install a 1 GiB block, 0..1 (default 0.0625)
  --no-host           no concurrent host unmap/wrprotect
  --check             every checker on (the default): poisoning, use-after-free, and with the MMU
                      model break-before-make, stale TLB and dirty-log checks
  --no-debug          no poisoning/use-after-free checks (faster)
  --mmu on|off        guest accesses through the vCPU MMU model (TLBs, lockless walker) and its
                      checkers (with debug): default on; off = software walks under mmu_lock
  --json              one JSON object { seed, reports } with every raw figure (no table, no progress)
  --controlled S      controlled scheduling, S = random | pct: the vCPUs and the RCU callback worker
                      take turns at every labelled race point as the seeded schedule decides, so a
                      run replays exactly from its seed (no host thread, shared mode, no delays;
                      stage2 torture --controlled adds a host thread). Prints each run's schedule
                      hash and the step of the first violation
  --pct-depth D       PCT depth (priority change points + 1), 1..${MAX_PCT_DEPTH} (default 3)

What the table shows (one column per strategy):
  run time                  wall time of the vCPU phase, ms
  faults handled            stage-2 faults the vCPUs took (translation, permission, access flag)
  retries (AGAIN)           faults or walks that met a locked entry or lost a race, and retried
  host operations           unmap / write-protect calls the host made under the write lock
  mmu_lock read locks       read acquisitions by every thread (shared mode: a fault's, a walk's)
    counted (bias off)      of those, counted in the lock word every core shares: in shared mode
                            the reader bias was off (for a while after each write lock); all of
                            them in exclusive mode, whose lock has no bias
    that waited             of those, readers that found a writer in and waited
  mmu_lock write locks      write acquisitions (the host's operations; every fault in exclusive mode)
    longest wait            the longest a writer waited for the lock, us
  subtrees unlinked         table subtrees replaced by a block and handed to the reclaim strategy
  callbacks queued          RCU callbacks (call_rcu) queued to free unlinked tables
  pages deferred            table pages whose free waited for a grace period
  peak waiting: callbacks   most callbacks queued and not yet run at one time
  peak waiting: pages       most table pages waiting for a grace period at one time (and KiB)
  callback p50 / p99        callback slice duration percentiles, us; "≤" because they are the
                            upper bound of a power-of-two histogram bucket, not exact values
  callback max              longest callback slice, us (exact)
  synchronous fallbacks     frees done after a synchronous grace period (callback queue refused)
  grace periods             RCU grace periods over the VM's life, teardown included
  teardown barrier          rcu_barrier at VM teardown, ms
  use-after-free / leaked pages / audit problems: the checks; any non-zero count is a FAIL`;

interface Flags {
  base: Omit<StressRunOptions, "strategy">;
  strategies: StrategySpec[];
  json: boolean;
  controlled: { schedule: "random" | "pct"; pctDepth: number } | null;
}

function optional(values: Record<string, unknown>, name: string): string | undefined {
  return values[name] as string | undefined;
}

async function parseOptions(argv: string[]): Promise<Flags> {
  const { values } = parseFlags(argv, {
    strategy: { type: "string" },
    mode: { type: "string" },
    vcpus: { type: "string" },
    iterations: { type: "string" },
    seed: { type: "string" },
    rcu: { type: "string" },
    "race-spins": { type: "string" },
    "bounded-cap": { type: "string" },
    "slice-budget": { type: "string" },
    region: { type: "string" },
    "touch-ratio": { type: "string" },
    "collapse-ratio": { type: "string" },
    "gib-share": { type: "string" },
    "no-host": { type: "boolean" },
    "no-debug": { type: "boolean" },
    check: { type: "boolean" },
    mmu: { type: "string" },
    json: { type: "boolean" },
    controlled: { type: "string" },
    "pct-depth": { type: "string" },
  });
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const text = optional(values, name);
    return text === undefined ? fallback : parseIntIn(text, `--${name}`, min, max);
  };
  const ratio = (name: string, fallback: number): number => {
    const text = optional(values, name);
    return text === undefined ? fallback : parseRatio(text, `--${name}`);
  };
  const base: Omit<StressRunOptions, "strategy"> = {
    mode: parseChoice(optional(values, "mode") ?? "shared", "--mode", ["shared", "exclusive"] as const),
    vcpus: int("vcpus", 2, 1, MAX_VCPUS),
    iterations: int("iterations", 20_000, 1, MAX_ITERATIONS),
    seed: chooseSeed(optional(values, "seed")),
    rcuFlavor: parseChoice(optional(values, "rcu") ?? "mb", "--rcu", ["mb", "qsbr"] as const),
    raceSpins: int("race-spins", 0, 0, MAX_RACE_SPINS),
    hostOps: values["no-host"] !== true,
    debug: values["no-debug"] !== true,
    touchRatio: ratio("touch-ratio", 0.6),
    collapseRatio: ratio("collapse-ratio", 0.03),
    gibCollapseShare: ratio("gib-share", 1 / 16),
    mmu: parseChoice(optional(values, "mmu") ?? "on", "--mmu", ["on", "off"] as const) === "on",
  };
  if (values["bounded-cap"] !== undefined) base.boundedCapPages = int("bounded-cap", 2048, 1, 1 << 30);
  if (values["slice-budget"] !== undefined) base.sliceBudgetPages = int("slice-budget", 64, 1, 1 << 30);
  if ((base.touchRatio ?? 0) + (base.collapseRatio ?? 0) > 1)
    throw new UsageError("--touch-ratio plus --collapse-ratio exceeds 1");
  if (values.check === true && values["no-debug"] === true)
    throw new UsageError("--check and --no-debug contradict each other");
  const region = optional(values, "region");
  if (region !== undefined) {
    const mib = parseIntIn(region, "--region", 2, 1024, " MiB");
    if (mib % 2 !== 0) throw new UsageError(`--region: ${mib} is not an even number of MiB`);
    base.regionMiB = mib;
  }
  const strategies = await parseStrategies([optional(values, "strategy") ?? "all"]);
  let controlled: Flags["controlled"] = null;
  const sched = optional(values, "controlled");
  if (sched !== undefined) {
    const schedule = parseChoice(sched, "--controlled", ["random", "pct"] as const);
    if (base.mode !== "shared")
      throw new UsageError("--controlled runs shared faults only: drop --mode exclusive");
    if (base.raceSpins > 0)
      throw new UsageError("--controlled takes no --race-spins: the schedule decides the interleaving");
    controlled = { schedule, pctDepth: int("pct-depth", 3, 1, MAX_PCT_DEPTH) };
  } else if (values["pct-depth"] !== undefined) throw new UsageError("--pct-depth needs --controlled pct");
  return { base, strategies, json: values.json === true, controlled };
}

/** The checks a run must pass, as counts; all zero is a PASS. */
function problems(r: StressRunReport): {
  uaf: number;
  leaked: number;
  audit: number;
  corrupt: number;
  mmu: number;
} {
  return {
    uaf: r.uafDetected,
    leaked: r.destroy.leakedPages.length,
    audit: r.auditProblems.length,
    corrupt: r.pgtable.corrupt,
    mmu: (r.mmuViolations ?? []).reduce((n, v) => n + v.count, 0),
  };
}

function failed(r: StressRunReport): boolean {
  const p = problems(r);
  return p.uaf + p.leaked + p.audit + p.corrupt + p.mmu > 0;
}

/** The runs as a table: one column per strategy, one row per figure, units beside the labels. */
export function faultsTable(reports: readonly StressRunReport[]): string[] {
  const row = (label: string, unit: string, cell: (r: StressRunReport) => string): MetricRow => ({
    label,
    unit,
    cells: reports.map(cell),
  });
  return metricTable(
    reports.map((r) => strategyLabel(r.options.strategy)),
    [
      row("run time", "ms", (r) => figure(r.wallMs)),
      row("faults handled", "", (r) => count(r.faults.faults)),
      row("retries (AGAIN)", "", (r) => count(r.faults.again)),
      row("host operations", "", (r) => count(r.hostOps)),
      row("mmu_lock read locks", "", (r) => count(r.lock.readAcquisitions)),
      row("  counted (bias off)", "", (r) => count(r.lock.readCounted)),
      row("  that waited", "", (r) => count(r.lock.readContended)),
      row("mmu_lock write locks", "", (r) => count(r.lock.writeAcquisitions)),
      row("  longest wait", "us", (r) => figure(r.lock.writeWaitMaxNs / 1000)),
      row("subtrees unlinked", "", (r) => count(r.reclaim.subtrees)),
      row("callbacks queued", "", (r) => count(r.reclaim.callbacksQueued)),
      row("pages deferred", "pages", (r) => count(r.reclaim.pagesDeferred)),
      row("peak waiting: callbacks", "", (r) => count(r.reclaim.peakPendingCallbacks)),
      row("peak waiting: pages", "pages", (r) => count(r.reclaim.peakPendingPages)),
      row("peak waiting: memory", "KiB", (r) => count(r.reclaim.peakPendingBytes / 1024)),
      row("callback p50", "us", (r) => usBound(r.reclaim.callbackNs.p50)),
      row("callback p99", "us", (r) => usBound(r.reclaim.callbackNs.p99)),
      row("callback max", "us", (r) =>
        r.reclaim.callbackNs.count > 0 ? usFromNs(r.reclaim.callbackNs.max) : "-",
      ),
      row("synchronous fallbacks", "", (r) => count(r.reclaim.syncFallbacks)),
      row("grace periods", "", (r) => count(r.destroy.gracePeriods)),
      row("teardown barrier", "ms", (r) => figure(r.destroy.barrierMs)),
      row("use-after-free", "", (r) => count(problems(r).uaf)),
      row("leaked pages", "pages", (r) => count(problems(r).leaked)),
      row("audit problems", "", (r) => count(problems(r).audit + problems(r).corrupt)),
      row("MMU checker findings", "", (r) => count(problems(r).mmu)),
      row("result", "", (r) => (failed(r) ? "FAIL" : "pass")),
    ],
  );
}

/** What went wrong in a failed run, in one line. */
function failureLine(r: StressRunReport): string {
  const p = problems(r);
  const parts: string[] = [];
  const plural = (n: number, one: string): string => `${n} ${one}${n === 1 ? "" : "s"}`;
  if (p.uaf > 0) parts.push(`${p.uaf} use-after-free`);
  if (p.leaked > 0) parts.push(plural(p.leaked, "leaked page"));
  if (p.audit + p.corrupt > 0) parts.push(plural(p.audit + p.corrupt, "audit problem"));
  if (p.mmu > 0) parts.push(plural(p.mmu, "MMU checker finding"));
  const mmuFirst = r.mmuViolations?.[0];
  const first = r.firstFault ?? r.auditProblems[0] ?? (mmuFirst ? formatViolation(mmuFirst) : undefined);
  return `  ${strategyLabel(r.options.strategy)}: ${parts.join(", ")}${first ? ` (first: ${first})` : ""}`;
}

/** The whole text report: the table, a line per failed run, and the PASS/FAIL verdict last. */
export function faultsReport(
  reports: readonly StressRunReport[],
  seed: number,
): { lines: string[]; ok: boolean } {
  const bad = reports.filter(failed);
  const ok = bad.length === 0;
  const runs = `${reports.length} run${reports.length === 1 ? "" : "s"}`;
  const summary = ok
    ? `${runs}, no use-after-free, leak or table damage (seed ${seed})`
    : `${bad.length} of ${runs} failed their checks (replay with --seed ${seed})`;
  return { lines: [...faultsTable(reports), "", ...bad.map(failureLine), verdict(ok, summary)], ok };
}

/** One line per controlled run: clean with its schedule, or the first violation and its step. */
function controlledLine(strategy: StrategySpec, r: ControlledStressReport): string {
  const sched = `${count(r.schedule.steps)} steps, schedule ${r.schedule.scheduleHash}`;
  const mmu = r.mmuViolations.map((v) => formatViolation(v));
  if (r.violation !== null)
    return `  ${strategyLabel(strategy)}: FAIL at step ${r.violation.step} (vCPU ${r.violation.vcpu}, operation ${r.violation.op}): ${r.violation.what}${mmu.length > 0 ? `; ${mmu[0]}` : ""} (${sched})`;
  const bad = [
    ...mmu,
    ...r.auditProblems,
    ...(r.leakedPages.length > 0 ? [`${r.leakedPages.length} leaked pages`] : []),
  ];
  if (bad.length > 0) return `  ${strategyLabel(strategy)}: FAIL: ${bad[0]} (${sched})`;
  return `  ${strategyLabel(strategy)}: pass (${sched}${r.schedule.abandoned ? ", control abandoned: a thread stalled outside the labelled points" : ""})`;
}

function controlledFailed(r: ControlledStressReport): boolean {
  return (
    r.violation !== null ||
    r.mmuViolations.length > 0 ||
    r.auditProblems.length > 0 ||
    r.leakedPages.length > 0
  );
}

async function runControlled(f: Flags, io: CliIo): Promise<number> {
  const c = f.controlled as NonNullable<Flags["controlled"]>;
  const b = f.base;
  const replay = `--controlled ${c.schedule}${c.schedule === "pct" ? ` --pct-depth ${c.pctDepth}` : ""} --seed ${b.seed}`;
  io.err(
    `stage2 faults: seed ${b.seed} (replay with ${replay}), ${b.vcpus} vCPUs taking turns, ${count(b.iterations)} operations per vCPU`,
  );
  const progress = startProgress("stage2 faults", f.strategies.length, { enabled: !f.json });
  const runs: { strategy: StrategySpec; report: ControlledStressReport }[] = [];
  try {
    for (const strategy of f.strategies) {
      progress.update(runs.length, `running ${strategyLabel(strategy)} (controlled)`);
      const report = await runControlledStress({
        strategy,
        vcpus: b.vcpus,
        iterations: b.iterations,
        seed: b.seed,
        schedule: c.schedule,
        pctDepth: c.pctDepth,
        rcuFlavor: b.rcuFlavor,
        mmu: b.mmu ?? true,
        ...(b.regionMiB !== undefined ? { regionMiB: b.regionMiB } : {}),
        ...(b.touchRatio !== undefined ? { touchRatio: b.touchRatio } : {}),
        ...(b.collapseRatio !== undefined ? { collapseRatio: b.collapseRatio } : {}),
      });
      runs.push({ strategy, report });
    }
  } finally {
    progress.done();
  }
  const bad = runs.filter((r) => controlledFailed(r.report));
  if (f.json) {
    const out = runs.map((r) => ({ strategy: strategyLabel(r.strategy), ...r.report }));
    io.out(JSON.stringify({ seed: b.seed, controlled: c, runs: out }, null, 2));
    return bad.length > 0 ? 1 : 0;
  }
  io.out(runs.map((r) => controlledLine(r.strategy, r.report)).join("\n"));
  const n = `${runs.length} controlled run${runs.length === 1 ? "" : "s"}`;
  io.out(
    verdict(
      bad.length === 0,
      bad.length === 0
        ? `${n}, no violation (seed ${b.seed})`
        : `${bad.length} of ${n} failed (replay with ${replay})`,
    ),
  );
  return bad.length > 0 ? 1 : 0;
}

export const faultsCommand: Command = {
  name: "faults",
  summary: "parallel fault stress runs per reclaim strategy, with statistics and safety checks",
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const flags = await parseOptions(argv);
    if (flags.controlled !== null) return runControlled(flags, io);
    const { base, strategies, json } = flags;
    const seed = base.seed;
    const what = `${base.vcpus} vCPUs, ${base.mode} mode, ${count(base.iterations)} operations per vCPU`;
    // The seed goes out first, on stderr, so a run that dies can still be replayed.
    io.err(`stage2 faults: seed ${seed} (replay with --seed ${seed}), ${what}`);
    const progress = startProgress("stage2 faults", strategies.length, { enabled: !json });
    const reports: StressRunReport[] = [];
    // A run that dies (a debug-pool refusal, a worker crash) fails with the strategy's name.
    const died: string[] = [];
    try {
      for (const strategy of strategies) {
        progress.update(reports.length + died.length, `running ${strategyLabel(strategy)}`);
        try {
          reports.push(await runStress({ ...base, strategy }));
        } catch (e) {
          died.push(
            `${strategyLabel(strategy)}  FAILED: ${String((e as Error)?.message ?? e).split("\n")[0]}`,
          );
        }
      }
    } finally {
      progress.done();
    }
    if (died.length > 0) {
      if (json) io.out(JSON.stringify({ seed, reports, died }, null, 2));
      else {
        if (reports.length > 0) io.out(faultsReport(reports, seed).lines.join("\n"));
        io.out(died.join("\n"));
        io.out(
          verdict(
            false,
            `${died.length} run${died.length === 1 ? "" : "s"} died (replay with --seed ${seed})`,
          ),
        );
      }
      return 1;
    }
    if (json) {
      io.out(JSON.stringify({ seed, reports }, null, 2));
      return reports.some(failed) ? 1 : 0;
    }
    const { lines, ok } = faultsReport(reports, seed);
    io.out(lines.join("\n"));
    return ok ? 0 : 1;
  },
};
