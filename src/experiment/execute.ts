/**
 * Runs RunSpecs: parses the workload's flags, runs it under the spec's strategy, mode and RCU
 * flavor, and returns the RunResult. The default `stage2 run` (the reviewers' questions) is a list
 * of specs too.
 */
import { STRATEGIES } from "../kvm/reclaim/strategy.js";
import { parseArgs } from "./args.js";
import { ConfigError } from "./errors.js";
import { replayArgs, type RunSpec } from "./plan.js";
import type { RunResult } from "./result.js";
import { type RunHooks, runWorkload } from "./runner.js";
import { WORKLOAD_TABLE } from "./workloads/index.js";

/** Checks a spec's workload flags without running anything (ConfigError if they cannot run). */
export function checkSpec(spec: RunSpec): void {
  parseSpec(spec);
}

function parseSpec(spec: RunSpec) {
  const w = WORKLOAD_TABLE.get(spec.workload);
  if (!w) throw new ConfigError(`unknown workload "${spec.workload}"`);
  const parsed = parseArgs(spec.workloadArgs, w.getopt, new Map(), spec.workload);
  return { w, p: w.parse(parsed.short) };
}

/** Runs one spec to completion. */
export async function executeSpec(spec: RunSpec, hooks: RunHooks = {}): Promise<RunResult> {
  const { w, p } = parseSpec(spec);
  return runWorkload(
    w,
    p,
    {
      strategy: spec.strategy,
      mode: spec.mode,
      rcu: spec.rcu,
      check: spec.check,
      mmu: spec.mmu ?? true,
      seed: spec.seed,
      command: ["stage2", ...replayArgs(spec)],
    },
    hooks,
  );
}

/**
 * The embedded default run: the review's two questions at 2 vCPUs under each strategy.
 *  - dirty-log-perf on transparent huge pages with the vCPUs running while logging is disabled
 *    (`-e`): their write faults map 2 MiB blocks again, unlinking every split 4K table under a
 *    shared walk (one small subtree each);
 *  - collapse-storm: 2 MiB and 1 GiB collapses (many small subtrees, then deep ones).
 * 1 GiB per vCPU, as the selftests' default: about ten seconds on a 2-core machine.
 */
export function defaultSpecs(): RunSpec[] {
  const base = { mode: "shared" as const, rcu: "mb" as const, seed: 1, check: true };
  const specs: RunSpec[] = [];
  for (const strategy of STRATEGIES) {
    specs.push({
      ...base,
      workload: "dirty-log-perf",
      workloadArgs: ["-v", "2", "-b", "1G", "-s", "anonymous_thp", "-e"],
      strategy,
    });
  }
  for (const strategy of STRATEGIES) {
    specs.push({
      ...base,
      workload: "collapse-storm",
      workloadArgs: ["-v", "2", "-b", "1G", "-i", "3"],
      strategy,
    });
  }
  return specs;
}
