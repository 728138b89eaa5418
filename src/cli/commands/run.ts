/**
 * `stage2 run`: the main job.
 *  - `stage2 run` alone runs the embedded default (the review's two questions, every strategy,
 *    2 vCPUs) and writes a report folder;
 *  - `stage2 run WORKLOAD [selftest flags] [--strategy S[,S...]] ...` runs one workload and prints
 *    the selftest's lines (or, with --json, one RunResult per line).
 */
import { strategyLabel } from "../../kvm/reclaim/strategy.js";
import { join } from "node:path";
import { ConfigError } from "../../experiment/errors.js";
import { RcuCallbackWorkerLostError } from "../../rcu/mod.js";
import { defaultSpecs, executeSpec } from "../../experiment/execute.js";
import { parseRunRequest, type RunSpec } from "../../experiment/plan.js";
import type { RunResult } from "../../experiment/result.js";
import { WORKLOAD_TABLE } from "../../experiment/workloads/index.js";
import { renderText } from "../../report/text.js";
import type { CliIo, Command } from "../command.js";
import { startProgress } from "../progress.js";
import { checkOutputs, defaultOutDir, writeReport } from "../report-files.js";
import { parseArgs } from "../../experiment/args.js";
import { writeTraceFile, type TraceRequest } from "../trace-file.js";

const WORKLOAD_LIST = [...WORKLOAD_TABLE.values()]
  .map((w) => `  ${w.name.padEnd(18)} ${w.summary}`)
  .join("\n");

const USAGE = `Usage: stage2 run [--out DIR] [--trace FILE] [--json]
       stage2 run WORKLOAD [workload flags] [options]

With no workload: the review's questions, answered. dirty-log-perf (transparent huge pages, vCPUs
running while logging is disabled, so 4K tables collapse back into blocks) and collapse-storm
(2 MiB and 1 GiB collapses) under each of the four reclaim strategies at 2 vCPUs, then the answers,
the comparison table, and a report folder (report.html, results.jsonl, trace.json).

Workloads (flags as the KVM selftests spell them; \`stage2 run WORKLOAD --help\` lists them):
${WORKLOAD_LIST}

Options:
  --strategy S[,S]  per-table | per-subtree | bounded | batched | all (default per-subtree)
  --mode M          shared (faults under the read lock, in parallel) | exclusive (write lock)
  --rcu F           mb | qsbr (default mb)
  --seed N          seed of workloads without a seed flag (0..4294967295, default 1)
  --json            one JSON object per run on stdout (schema: schema/run-result.schema.json)
  --trace FILE      Chrome/Perfetto JSON trace of the run (open in ui.perfetto.dev)
  --out DIR         also write DIR/results.jsonl and DIR/report.html
  --no-check        no debug pool (no use-after-free poisoning): faster, fewer checks
  --mmu on|off      guest accesses through the vCPU MMU model (TLBs, lockless walker), with its
                    checkers unless --no-check (default on); off: software walks under mmu_lock

Output: the selftest's lines, then a stage2 summary and a PASS or FAIL line.
Exit codes: 0 every check passed, 1 a check failed, 2 bad input.`;

function workloadUsage(name: string): string | null {
  const w = WORKLOAD_TABLE.get(name as never);
  if (!w) return null;
  return `Usage: stage2 run ${w.name} [flags] [options]\n\n${w.summary}\n\nFlags:\n${w.help}\n\nOptions: see \`stage2 run --help\`.`;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

/** A run that could not finish (a vCPU or the callback worker died): a FAIL, exit 1. */
export class RunDiedError extends Error {}

/** Errors that report a worker's death or failure (VcpuPool, memstress waits, the RCU domain). */
function isWorkerFailure(e: unknown): boolean {
  const m = e instanceof Error ? e.message : "";
  return /^vCPU \d+[: ]/.test(m) || e instanceof RcuCallbackWorkerLostError;
}

/** The stage2 figures after the selftest's lines, and the verdict. */
export function summaryLines(r: RunResult): string[] {
  const c = r.reclaim;
  const lines = [
    `stage2: ${r.workload} strategy=${r.strategy} mode=${r.mode} rcu=${r.rcu} vcpus=${r.vcpus} seed=${r.seed}`,
    `  faults ${r.faults.total} (AGAIN retries ${r.faults.again}), ${Math.round(r.faults.faultsPerSec)} faults/s`,
    `  reclaim: ${c.subtrees} subtrees unlinked, ${c.pagesDeferred} pages deferred, ${c.callbacks} callbacks queued`,
    `  peak pending: ${c.peakPendingCallbacks} callbacks, ${c.peakPendingPages} pages (${mib(c.peakPendingBytes)})`,
    `  callback duration: p50 <= ${c.callbackP50Us.toFixed(1)} us, p99 <= ${c.callbackP99Us.toFixed(1)} us, max ${c.callbackMaxUs.toFixed(1)} us, total ${(c.callbackTotalUs / 1000).toFixed(2)} ms`,
    `  grace periods ${c.gracePeriods}, barrier at destroy ${c.barrierMs.toFixed(2)} ms`,
  ];
  const l = r.lock;
  if (l)
    lines.push(
      `  mmu_lock: ${l.readLocks} read locks (${l.readCounted} counted: reader bias off; ${l.readWaited} waited), ${l.writeLocks} write locks (${l.writeWaited} waited, longest ${l.writeWaitMaxUs.toFixed(1)} us)`,
    );
  const k = r.checks;
  if (k.passed) {
    lines.push("PASS: no use-after-free, no leaked page, table audit clean, workload checks passed");
  } else {
    const why = [
      k.uaf ? `${k.uaf} use-after-free` : "",
      k.leakedPages ? `${k.leakedPages} leaked pages` : "",
      ...k.auditProblems.slice(0, 3),
      ...k.failures.slice(0, 3),
    ].filter((s) => s !== "");
    lines.push(`FAIL: ${why.join("; ")}`);
  }
  return lines;
}

/** Runs specs one after the other with progress on a TTY; `each` sees every result as it lands. */
export async function runSpecs(
  specs: RunSpec[],
  io: CliIo,
  opts: { stream: boolean; trace: TraceRequest | null },
  each: (r: RunResult, i: number) => void,
): Promise<RunResult[]> {
  const results: RunResult[] = [];
  for (const [i, spec] of specs.entries()) {
    const label =
      specs.length > 1
        ? `run ${i + 1}/${specs.length} ${spec.workload} ${strategyLabel(spec.strategy)}`
        : spec.workload;
    const progress = startProgress(label);
    if (opts.stream && specs.length > 1) {
      io.out(
        `==> ${spec.workload} ${spec.workloadArgs.join(" ")} --strategy ${strategyLabel(spec.strategy)} --mode ${spec.mode} --rcu ${spec.rcu} <==`,
      );
    }
    try {
      let r: RunResult;
      try {
        r = await executeSpec(spec, {
          onLine: opts.stream ? (l) => io.out(l) : undefined,
          onProgress: (what, done, total) => progress.update(done, `${what} ${done}/${total}`, total),
          trace: opts.trace ?? undefined,
        });
      } catch (e) {
        // Only a vCPU or callback worker that died or failed is the design under test breaking;
        // anything else (a bug of the host side) stays an internal error.
        if (!isWorkerFailure(e)) throw e;
        // A vCPU or the RCU worker died: the design under test (or a user strategy) broke.
        throw new RunDiedError(
          `${spec.workload} --strategy ${strategyLabel(spec.strategy)}: ${String((e as Error)?.message ?? e).split("\n")[0]}`,
        );
      }
      results.push(r);
      each(r, i);
    } finally {
      progress.done();
    }
  }
  return results;
}

async function defaultRun(argv: string[], io: CliIo): Promise<number> {
  const longs = new Map([
    ["out", { value: true }],
    ["trace", { value: true }],
    ["json", { value: false }],
  ]);
  const parsed = parseArgs(argv, "", longs, "options");
  if (parsed.positionals.length > 0) throw new ConfigError(`unexpected argument "${parsed.positionals[0]}"`);
  const json = parsed.long.has("json");
  const outDir = parsed.long.get("out")?.[0] ?? defaultOutDir();
  const tracePath = parsed.long.get("trace")?.[0] ?? join(outDir, "trace.json");
  await checkOutputs(outDir, tracePath);
  const trace: TraceRequest = { path: tracePath, runs: [] };
  const specs = defaultSpecs();
  if (!json)
    io.out(
      `stage2 run: ${specs.length} runs (dirty-log-perf and collapse-storm under each strategy, 2 vCPUs)`,
    );
  const results = await runSpecs(specs, io, { stream: false, trace }, (r) => {
    if (json) io.out(JSON.stringify(r));
    else
      io.out(
        `  ${r.workload.padEnd(15)} ${r.strategy.padEnd(11)} ${r.wallSeconds.toFixed(1).padStart(5)} s  ${r.checks.passed ? "PASS" : "FAIL"}`,
      );
  });
  const files = await writeReport(outDir, results);
  await writeTraceFile(trace);
  if (!json) {
    io.out("");
    io.out(renderText(results));
    io.out("");
    io.out(`Report: ${files.html}`);
    io.out(`Results: ${files.jsonl}`);
    io.out(`Trace: ${trace.path} (open in https://ui.perfetto.dev)`);
  }
  return results.every((r) => r.checks.passed) ? 0 : 1;
}

export const runCommand: Command = {
  name: "run",
  summary: "KVM-selftest workloads under a reclaim strategy; alone: the review's questions, answered",
  usage: USAGE,
  help: (argv) => (argv[0] ? workloadUsage(argv[0]) : null),
  async run(argv: string[], io: CliIo): Promise<number> {
    try {
      if (argv.length === 0 || (argv[0] as string).startsWith("--")) return await defaultRun(argv, io);
      const { request } = await parseRunRequest(argv);
      await checkOutputs(request.outDir, request.tracePath);
      const trace: TraceRequest | null = request.tracePath ? { path: request.tracePath, runs: [] } : null;
      const results = await runSpecs(request.specs, io, { stream: !request.json, trace }, (r) => {
        if (request.json) io.out(JSON.stringify(r));
        else for (const l of summaryLines(r)) io.out(l);
      });
      if (request.outDir) {
        const files = await writeReport(request.outDir, results);
        if (!request.json) io.out(`Report: ${files.html}`);
      }
      if (trace) await writeTraceFile(trace);
      return results.every((r) => r.checks.passed) ? 0 : 1;
    } catch (e) {
      if (e instanceof RunDiedError) {
        // stderr: with --json, stdout carries only RunResult lines (`stage2 report` reads them).
        io.err(`FAIL: the run died: ${e.message}`);
        return 1;
      }
      throw e;
    }
  },
};
