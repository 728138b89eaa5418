/**
 * `stage2 faults`: parallel fault stress runs, one per reclaim strategy, with the statistics that
 * answer the review's questions (how many callbacks and pages wait for a grace period at peak, how
 * long callbacks run, what the teardown barrier costs).
 */
import { seedFromEnv } from "../../common/rng.js";
import { runStress, type StressRunOptions, type StressRunReport } from "../../sim/stress-run.js";
import { STRATEGIES, type StrategySpec, strategyLabel } from "../../kvm/reclaim/strategy.js";
import { isBuiltinStrategy, resolveStrategy, StrategyLoadError } from "../../kvm/reclaim/user-strategy.js";
import { type CliIo, type Command, UsageError } from "../command.js";
import { parseChoice, parseFlags, parseNumber } from "../parse.js";

const USAGE = `Usage: stage2 faults [options]

Runs vCPU worker threads that fault, collapse (install blocks over populated tables, unlinking
subtrees) and walk one shared region while the host unmaps and write-protects it, once per reclaim
strategy. Prints faults, retries, callbacks, pending pages and callback durations per strategy,
then checks for use-after-free, refcount errors and leaks (exit 1 if any is found).

Options:
  --strategy S        per-table | per-subtree | bounded | batched | all (default all), or the
                      path of a strategy module (default export: a ReclaimStrategyFactory)
  --mode M            shared (parallel faults, read lock) | exclusive (write lock) (default shared)
  --vcpus N           vCPU worker threads (default 2)
  --iterations N      operations per vCPU (default 20000)
  --seed N            seed (default: STAGE2_SEED or random); printed so the run can be replayed
  --rcu F             mb | qsbr (default mb)
  --race-spins N      delay spins at the walk.table-entered and bbm.locked race points (default 0)
  --bounded-cap N     bounded strategy: pending pages before vCPUs reclaim themselves (default 2048)
  --slice-budget N    pages a subtree callback frees per slice (default 64)
  --region MIB        size of the shared region, a multiple of 2 (default 16)
  --touch-ratio R     share of operations that touch a page (default 0.6)
  --collapse-ratio R  share of operations that collapse a range into a block (default 0.03)
  --gib-share R       share of collapses that install a 1 GiB block (default 0.0625)
  --no-host           no concurrent host unmap/wrprotect
  --no-debug          no poisoning/use-after-free checks (faster)
  --json              one JSON object with every report`;

function summary(r: StressRunReport): string {
  const c = r.reclaim;
  return [
    `${strategyLabel(r.options.strategy).padEnd(11)} ${r.wallMs.toFixed(0).padStart(6)} ms`,
    `faults ${r.faults.faults}`,
    `again ${r.faults.again}`,
    `subtrees ${c.subtrees}`,
    `callbacks ${c.callbacksQueued}`,
    `deferred ${c.pagesDeferred}p`,
    `peak pending ${c.peakPendingCallbacks}cb/${c.peakPendingPages}p (${(c.peakPendingBytes / 1024).toFixed(0)} KiB)`,
    `cb p50/p99/max ${fmtNs(c.callbackNs.p50)}/${fmtNs(c.callbackNs.p99)}/${fmtNs(c.callbackNs.max)}`,
    `sync ${c.syncFallbacks}`,
    `GPs ${r.destroy.gracePeriods}`,
    `barrier ${r.destroy.barrierMs.toFixed(2)} ms`,
    `uaf ${r.uafDetected} leaks ${r.destroy.leakedPages.length} audit ${r.auditProblems.length}`,
  ].join("  ");
}

/** `all`, a built-in strategy name, or a strategy module path (resolved and checked here). */
async function parseStrategies(word: string): Promise<StrategySpec[]> {
  if (word === "all") return [...STRATEGIES];
  if (word === "unsafe-sync" || (!isBuiltinStrategy(word) && !/[/\\.]/.test(word))) {
    throw new UsageError(
      `--strategy: "${word}" is not one of ${[...STRATEGIES, "all"].join(", ")} nor a module path`,
    );
  }
  try {
    return [await resolveStrategy(word)];
  } catch (e) {
    if (e instanceof StrategyLoadError) throw new UsageError(`--strategy: ${e.message}`);
    throw e;
  }
}

function fmtNs(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(1)}ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(1)}us`;
  return `${ns.toFixed(0)}ns`;
}

export const faultsCommand: Command = {
  name: "faults",
  summary: "parallel fault stress runs per reclaim strategy, with statistics and safety checks",
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
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
      json: { type: "boolean" },
    });
    const strategies = await parseStrategies((values.strategy as string | undefined) ?? "all");
    const vcpus = parseNumber((values.vcpus as string) ?? "2", "--vcpus");
    if (vcpus < 1 || vcpus > 32) throw new UsageError(`--vcpus: ${vcpus} is not in 1..32`);
    const seed =
      values.seed !== undefined ? parseNumber(values.seed as string, "--seed") >>> 0 : seedFromEnv();
    const base: Omit<StressRunOptions, "strategy"> = {
      mode: parseChoice((values.mode as string) ?? "shared", "--mode", ["shared", "exclusive"] as const),
      vcpus,
      iterations: parseNumber((values.iterations as string) ?? "20000", "--iterations"),
      seed,
      rcuFlavor: parseChoice((values.rcu as string) ?? "mb", "--rcu", ["mb", "qsbr"] as const),
      raceSpins: parseNumber((values["race-spins"] as string) ?? "0", "--race-spins"),
      hostOps: values["no-host"] !== true,
      debug: values["no-debug"] !== true,
      ...(values["bounded-cap"] !== undefined
        ? { boundedCapPages: parseNumber(values["bounded-cap"] as string, "--bounded-cap") }
        : {}),
      ...(values["slice-budget"] !== undefined
        ? { sliceBudgetPages: Math.max(1, parseNumber(values["slice-budget"] as string, "--slice-budget")) }
        : {}),
    };
    const ratio = (name: string, fallback: number): number => {
      const text = values[name] as string | undefined;
      if (text === undefined) return fallback;
      const v = Number(text);
      if (!(v >= 0 && v <= 1)) throw new UsageError(`--${name}: "${text}" is not a ratio between 0 and 1`);
      return v;
    };
    base.touchRatio = ratio("touch-ratio", 0.6);
    base.collapseRatio = ratio("collapse-ratio", 0.03);
    base.gibCollapseShare = ratio("gib-share", 1 / 16);
    if (base.touchRatio + base.collapseRatio > 1)
      throw new UsageError("--touch-ratio plus --collapse-ratio exceeds 1");
    if (values.region !== undefined) {
      const mib = parseNumber(values.region as string, "--region");
      if (mib < 2 || mib > 1024 || mib % 2 !== 0)
        throw new UsageError(`--region: ${mib} is not an even number of MiB in 2..1024`);
      base.regionMiB = mib;
    }
    io.err(`stage2 faults: seed ${seed} (replay with --seed ${seed}), ${vcpus} vCPUs, ${base.mode} mode`);
    const reports: StressRunReport[] = [];
    let failed = false;
    for (const strategy of strategies) {
      io.err(`  running ${strategyLabel(strategy)} ...`);
      let r: StressRunReport;
      try {
        r = await runStress({ ...base, strategy });
      } catch (e) {
        // A run that dies (a debug-pool refusal, a worker crash) fails with the strategy's name.
        io.out(`${strategyLabel(strategy)}  FAILED: ${((e as Error).message ?? String(e)).split("\n")[0]}`);
        failed = true;
        continue;
      }
      reports.push(r);
      const bad =
        r.uafDetected > 0 ||
        r.destroy.leakedPages.length > 0 ||
        r.auditProblems.length > 0 ||
        r.pgtable.corrupt > 0;
      if (bad) failed = true;
      if (!values.json) {
        io.out(summary(r));
        if (bad) io.out(`  FAILED: ${r.firstFault ?? ""} ${r.auditProblems.slice(0, 3).join("; ")}`);
      }
    }
    if (values.json) io.out(JSON.stringify({ seed, reports }, null, 2));
    return failed ? 1 : 0;
  },
};
