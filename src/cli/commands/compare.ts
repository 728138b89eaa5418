/**
 * `stage2 compare WORKLOAD`: a matrix of strategies x modes x RCU flavors x vCPU counts, run one
 * after the other on this machine, then the answers and the comparison table; or, with --plan,
 * every run of the matrix as a self-contained `stage2 run ... --json` line for GNU parallel, a
 * Slurm job array or any batch scheduler (merge their output with `stage2 report`).
 */
import { parseInt32 } from "../../experiment/args.js";
import { ConfigError } from "../../experiment/errors.js";
import { checkSpec } from "../../experiment/execute.js";
import {
  MODES,
  parseList,
  parseRunRequest,
  parseStrategies,
  RCU_FLAVORS,
  replayArgs,
  type RunSpec,
  shellJoin,
} from "../../experiment/plan.js";
import { renderText } from "../../report/text.js";
import type { CliIo, Command } from "../command.js";
import { checkOutputs, writeReport } from "../report-files.js";
import { RunDiedError, runSpecs } from "./run.js";

const USAGE = `Usage: stage2 compare WORKLOAD [workload flags] [matrix options] [--plan] [--out DIR] [--json]

Runs WORKLOAD once per cell of a matrix, then prints the answers to the review's two questions and
a table of phase times, faults/s, AGAIN retries, callbacks, peak pending callbacks and pages,
callback p50/p99/max, grace periods and the barrier time, the best value of each figure marked *.

Matrix options (each a comma-separated list; default: the first value):
  --strategies L  per-table,per-subtree,bounded,batched (default all four)
  --modes L       shared,exclusive (default shared)
  --rcus L        mb,qsbr (default mb)
  --vcpus L       vCPU counts, e.g. 1,2,4 (default: the workload's -v)
Other options:
  --plan          print every run as one \`stage2 run ... --json\` command line and exit:
                    stage2 compare dirty-log-perf --vcpus 1,2,4 --plan | parallel > all.jsonl
                    stage2 report all.jsonl --out report/
  --out DIR       write DIR/results.jsonl and DIR/report.html
  --json          the results as JSON lines instead of the table
  --seed N, --no-check   as for \`stage2 run\`

Exit codes: 0 every check passed, 1 a check failed, 2 bad input.`;

const MATRIX = new Map([
  ["strategies", { value: true, multiple: true }],
  ["modes", { value: true, multiple: true }],
  ["rcus", { value: true, multiple: true }],
  ["vcpus", { value: true, multiple: true }],
  ["plan", { value: false }],
]);

/** Every cell of the matrix as a RunSpec (vCPU counts rewrite the workload's -v). */
export async function matrixSpecs(
  argv: readonly string[],
): Promise<{ specs: RunSpec[]; json: boolean; outDir: string | null; plan: boolean }> {
  const { request, long } = await parseRunRequest(argv, MATRIX);
  if (request.tracePath !== null)
    throw new ConfigError(
      "--trace: compare writes no trace (trace one run with `stage2 run ... --trace FILE`)",
    );
  if (long.has("plan") && request.outDir !== null)
    throw new ConfigError(
      "--out: --plan runs nothing and writes no report (merge the plan's output with `stage2 report`)",
    );
  const base = request.specs[0] as RunSpec;
  if (long.has("strategy") || long.has("mode") || long.has("rcu")) {
    throw new ConfigError(
      "use --strategies, --modes and --rcus (lists) instead of --strategy, --mode, --rcu",
    );
  }
  const strategies = await parseStrategies(long.get("strategies") ?? ["all"]);
  const modes = parseList(long.get("modes") ?? ["shared"], "--modes", MODES);
  const rcus = parseList(long.get("rcus") ?? ["mb"], "--rcus", RCU_FLAVORS);
  const vcpus = [
    ...new Set(
      (long.get("vcpus") ?? []).flatMap((v) => v.split(",")).map((v) => parseInt32(v, "--vcpus", 1, 64)),
    ),
  ];
  if (base.workload === "memslot-perf" && vcpus.length > 0) {
    throw new ConfigError("--vcpus: memslot-perf runs one vCPU, as memslot_perf_test does");
  }
  const specs: RunSpec[] = [];
  for (const n of vcpus.length > 0 ? vcpus : [null]) {
    const workloadArgs =
      n === null ? base.workloadArgs : [...withoutFlag(base.workloadArgs, "v"), "-v", String(n)];
    for (const mode of modes)
      for (const rcu of rcus)
        for (const strategy of strategies) {
          const spec = { ...base, workloadArgs, strategy, mode, rcu };
          checkSpec(spec);
          specs.push(spec);
        }
  }
  return { specs, json: request.json, outDir: request.outDir, plan: long.has("plan") };
}

/** Drops `-X value` / `-Xvalue` from a workload's flags (to replace it). */
function withoutFlag(args: readonly string[], flag: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === `-${flag}`) {
      i++;
      continue;
    }
    if (a.startsWith(`-${flag}`) && a.length > 2) continue;
    out.push(a);
  }
  return out;
}

export const compareCommand: Command = {
  name: "compare",
  summary: "a workload over a matrix of strategies, modes, RCU flavors and vCPU counts, tabulated",
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    try {
      const m = await matrixSpecs(argv);
      if (!m.plan) await checkOutputs(m.outDir, null);
      if (m.plan) {
        for (const s of m.specs) io.out(shellJoin(["stage2", ...replayArgs(s)]));
        return 0;
      }
      const results = await runSpecs(m.specs, io, { stream: false, trace: null }, (r, i) => {
        if (m.json) io.out(JSON.stringify(r));
        else
          io.out(
            `  ${i + 1}/${m.specs.length} ${r.strategy} ${r.mode} ${r.rcu} ${r.vcpus} vCPUs: ${r.checks.passed ? "PASS" : "FAIL"}`,
          );
      });
      if (!m.json) {
        io.out("");
        io.out(renderText(results));
      }
      if (m.outDir) {
        const files = await writeReport(m.outDir, results);
        if (!m.json) io.out(`Report: ${files.html}`);
      }
      return results.every((r) => r.checks.passed) ? 0 : 1;
    } catch (e) {
      if (e instanceof RunDiedError) {
        io.err(`FAIL: the run died: ${e.message}`);
        return 1;
      }
      throw e;
    }
  },
};
