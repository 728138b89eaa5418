/**
 * Every benchmark by name, with what it measures, human labels for its figures, and its text
 * report. `stage2 bench` and `npm run bench` (bench/run-all.ts) both run them from here; neither
 * front end imports the other.
 *
 * Results keep their camelCase keys (stable, for `--json` and bench/results/latest.json); the
 * labels below are for people only.
 */
import { INLINING_BUDGET, type InliningBudget } from "../common/v8-budget.js";
import { type MetricRow, metricTable, figure, count, table, usBound, usFromNs } from "./format.js";
import { type FaultBenchResult, runFaultBench } from "./faults.js";
import type { BenchOptions } from "./options.js";
import { runPgtableBench } from "./pgtable.js";
import { runRcuBench } from "./rcu.js";
import { runReclaimStudy, type StormResult } from "./reclaim.js";
import { runContendedRwlockBench, runRwlockBench } from "./rwlock.js";
import { runTeardownBench } from "./teardown.js";

export type { BenchOptions, BenchProgress } from "./options.js";

export interface BenchSpec {
  readonly name: string;
  /** One line for `stage2 bench --help`. */
  readonly summary: string;
  run(opts: BenchOptions): Promise<object>;
  /** The result for people (default: resultText, one labelled row per key). */
  text?(result: object): string[];
}

/** Benchmarks in the order `stage2 bench --help` lists them. A Map: a user's word selects one. */
export const BENCHES: ReadonlyMap<string, BenchSpec> = new Map(
  [
    {
      name: "rcu",
      summary:
        "read-side pair (mb, qsbr), synchronize latency idle and with a busy reader, call() throughput",
      run: (o: BenchOptions) => runRcuBench(o),
    },
    {
      name: "faults",
      summary: "populate faults: shared and exclusive vCPU sweep, MMU model cost, the bare loop (floor)",
      run: (o: BenchOptions) => runFaultBench(o, o.faults),
      text: (r: object) => faultsText(r as FaultBenchResult),
    },
    {
      name: "teardown",
      summary: "destroy of a 64 GiB stage-2 fully mapped with 4K pages: entries per second, longest chunk",
      run: (o: BenchOptions) => runTeardownBench(o),
      text: (r: object) => spreadText(r as object & { spread: Record<string, [number, number]> }),
    },
    {
      name: "pgtable",
      summary: "map/unmap of 1 GiB in 4K pages and 2M blocks, get_leaf, table memory per GiB",
      run: async (o: BenchOptions) => runPgtableBench(o),
    },
    {
      name: "rwlock",
      summary: "mmu_lock read and write pairs, uncontended; read pairs of 2 threads, counted and biased",
      run: async (o: BenchOptions) => ({ ...runRwlockBench(), ...(await runContendedRwlockBench(o.quick)) }),
    },
    {
      name: "reclaim",
      summary: "collapse storms per reclaim strategy: memory waiting for grace periods, callback times",
      run: (o: BenchOptions) => runReclaimStudy(o),
      text: (r: object) => stormsText((r as { storms: StormResult[] }).storms),
    },
  ].map((b) => [b.name, b] as const),
);

/** Benchmark, label and unit of every figure the benchmarks return, by key. */
export const LABELS: ReadonlyMap<string, { bench: string; label: string; unit: string }> = new Map(
  (
    [
      ["rwlock", "readPairNs", "read lock + unlock, uncontended", "ns"],
      ["rwlock", "writePairNs", "write lock + unlock, uncontended", "ns"],
      ["rwlock", "biasedReadPairNs", "read lock + unlock, reader bias (shared-mode mmu_lock)", "ns"],
      ["rwlock", "readPair1tNs", "read pair with work inside, 1 thread", "ns"],
      ["rwlock", "readPair2tNs", "the same, 2 threads at once (each)", "ns"],
      ["rwlock", "readSpeedup2t", "read pairs: throughput 2 threads / 1", "x"],
      ["rwlock", "biasedReadPair1tNs", "read pair with work inside, reader bias, 1 thread", "ns"],
      ["rwlock", "biasedReadPair2tNs", "the same, 2 threads at once (each)", "ns"],
      ["rwlock", "biasedReadSpeedup2t", "biased read pairs: throughput 2 threads / 1", "x"],
      ["rcu", "mbReadPairNs", "read-side lock + unlock, mb flavour", "ns"],
      ["rcu", "qsbrReadPairNs", "read-side lock + unlock, qsbr flavour", "ns"],
      ["rcu", "syncIdleUs", "synchronize_rcu, no reader", "us"],
      ["rcu", "syncWithReaderUs", "synchronize_rcu, one busy reader", "us"],
      ["rcu", "callPerSec", "call_rcu callbacks completed", "per s"],
      ["rcu", "callEnqueuePerSec", "call_rcu enqueue rate", "per s"],
      ["rcu", "callGracePeriods", "grace periods for the call_rcu run", ""],
      ["faults", "nsPerFault1v", "fault cost, shared mode, 1 vCPU", "ns"],
      ["faults", "rawNsPerPage", "bare populate loop, same geometry (the floor)", "ns/page"],
      ["faults", "faultOverRaw1v", "fault cost shared 1 vCPU / bare loop", "x"],
      ["faults", "nsPerFaultExclusive1v", "fault cost, exclusive mode, 1 vCPU", "ns"],
      ["faults", "nsPerFault2v", "wall time per fault, shared, 2 vCPUs", "ns"],
      ["faults", "nsPerFaultExclusive2v", "wall time per fault, exclusive, 2 vCPUs", "ns"],
      ["faults", "sharedSpeedup2v", "throughput 2 vCPUs / 1 vCPU, shared", "x"],
      ["faults", "exclusiveSpeedup2v", "throughput 2 vCPUs / 1 vCPU, exclusive", "x"],
      ["faults", "sharedOverExclusive1v", "fault cost shared / exclusive, 1 vCPU", "x"],
      ["faults", "sharedOverExclusiveSameThread1v", "the same, both in one thread", "x"],
      ["faults", "nsPerPageMmu1v", "populate per page, shared, 1 vCPU, MMU model on", "ns"],
      ["faults", "mmuOverhead1v", "populate time MMU model on / off, 1 vCPU", "x"],
      ["faults", "mmuOverheadSameVcpu1v", "the same, both in the MMU VM's vCPU thread", "x"],
      ["faults", "nsPerFaultOtherRcu1v", "fault cost, shared, 1 vCPU, the other RCU flavor", "ns"],
      ["faults", "otherRcuOverShared1v", "fault cost other RCU flavor / rcuFlavor, shared, 1 vCPU", "x"],
      ["faults", "speedup8vOver2v", "throughput 8 vCPUs / 2 vCPUs, shared", "x"],
      ["faults", "independentSpeedup2v", "two 1-vCPU VMs at once / one (the control)", "x"],
      ["faults", "sharedScaling2v", "shared 2-vCPU speedup / the control's", "x"],
      ["faults", "sharedEfficiency2v", "shared 2 vCPUs / the sum of each alone (1: perfect)", "x"],
      ["faults", "independentEfficiency2v", "the control's 2 VMs / the sum of each alone", "x"],
      ["faults", "cpuNsPerFault1v", "CPU time: fault, shared, 1 vCPU", "ns"],
      ["faults", "cpuRawNsPerPage", "CPU time: bare populate loop", "ns/page"],
      ["faults", "cpuFaultOverRaw1v", "CPU time: fault shared 1 vCPU / bare loop", "x"],
      ["faults", "cpuNsPerFaultExclusive1v", "CPU time: fault, exclusive, 1 vCPU", "ns"],
      ["faults", "cpuSharedOverExclusive1v", "CPU time: shared / exclusive, 1 vCPU", "x"],
      ["faults", "cpuNsPerPageMmu1v", "CPU time: populate per page, MMU model on", "ns"],
      ["faults", "cpuMmuOverhead1v", "CPU time: MMU model on / off, 1 vCPU", "x"],
      ["faults", "faultsPerVcpu", "faults per vCPU per round", ""],
      ["faults", "reps", "counted rounds (figures are their medians)", ""],
      ["faults", "granule", "translation granule", "bytes"],
      ["faults", "iaBits", "IPA size", "bits"],
      ["teardown", "mappedGiB", "stage-2 mapped with 4K pages before destroy", "GiB"],
      ["teardown", "leafEntries", "leaf entries mapped", ""],
      ["teardown", "tablesFreed", "table pages freed by destroy", ""],
      ["teardown", "chunks", "chunks (write-lock holds between resched points)", ""],
      ["teardown", "destroyMs", "freeing the tree, all chunks", "ms"],
      ["teardown", "destroyEntriesPerSec", "leaf entries torn down per second", "per s"],
      ["teardown", "destroyMaxChunkMs", "longest chunk", "ms"],
      ["teardown", "coldMaxChunkMs", "longest chunk of the warm-up destroy (cold JIT)", "ms"],
      ["teardown", "barrierMs", "RCU barrier after the free", "ms"],
      ["teardown", "buildMs", "building the table (not timed above)", "ms"],
      ["pgtable", "mappedMiB", "range mapped by each phase", "MiB"],
      ["pgtable", "map4kNsPerPage", "map, one call per 4K page", "ns"],
      ["pgtable", "map4kSharedNsPerPage", "map, one shared-walk call per 4K page", "ns"],
      ["pgtable", "map4kRangeNsPerPage", "map, one call for the range in 4K pages", "ns/page"],
      ["pgtable", "map2mNsPerBlock", "map, one call per 2M block", "ns"],
      ["pgtable", "map2mNsPer4kPage", "map, 2M blocks, per 4K page mapped", "ns/page"],
      ["pgtable", "unmap4kNsPerPage", "unmap, one call per 4K page", "ns"],
      ["pgtable", "unmap4kRangeNsPerPage", "unmap, one call for the range of 4K pages", "ns/page"],
      ["pgtable", "unmap2mNsPerBlock", "unmap, one call per 2M block", "ns"],
      ["pgtable", "getLeafNs", "get_leaf at a random address", "ns"],
      ["pgtable", "tableBytesPerGiB4k", "table memory per GiB mapped with 4K pages", "bytes"],
      ["pgtable", "tableBytesPerGiB2m", "table memory per GiB mapped with 2M blocks", "bytes"],
    ] as const
  ).map(([bench, key, label, unit]) => [key, { bench, label, unit }] as const),
);

/** A flat benchmark result as a two-column table: label, unit, value. Unknown keys show as is. */
export function resultText(result: object): string[] {
  const rows: MetricRow[] = Object.entries(result).map(([key, value]) => {
    const l = LABELS.get(key);
    const cell = typeof value === "number" ? figure(value) : JSON.stringify(value);
    return { label: l?.label ?? key, unit: l?.unit ?? "", cells: [cell] };
  });
  return metricTable(["value"], rows);
}

/** A flat result whose medians have a spread: one row per number, "median (min-max)" where known. */
export function spreadText(r: object & { spread: Record<string, [number, number]> }): string[] {
  const rows: MetricRow[] = [];
  for (const [key, value] of Object.entries(r)) {
    if (typeof value !== "number") continue;
    const l = LABELS.get(key);
    const range = r.spread[key];
    const cell = range ? `${figure(value)} (${figure(range[0])}-${figure(range[1])})` : figure(value);
    rows.push({ label: l?.label ?? key, unit: l?.unit ?? "", cells: [cell] });
  }
  return metricTable(["median (min-max)"], rows);
}

/** Which inlining budget V8 ran with (common/v8-budget.ts). */
function inliningText(b: InliningBudget): string {
  const bytes = b.bytes === null ? "an unreadable value" : `${b.bytes} bytes`;
  const who = b.source === "stage2" ? "set by stage2" : "given to node";
  const luck =
    b.bytes !== null && b.bytes < INLINING_BUDGET ? ", below stage2's: figures vary with JIT luck" : "";
  return `V8 inlining budget ${bytes} (${who}${luck})`;
}

/**
 * Below this, two 1-vCPU VMs sharing nothing ran less than 1.3x as fast as one (the run's control,
 * `independentSpeedup2v`): this machine gives 1.5-1.9x when it has its two cores, and 1.04 when
 * the host took one away (BENCHMARKS.md, 2026-12-02 13:26).
 */
export const CONTENDED_CONTROL = 1.3;

/**
 * A warning when the run's control shows that the machine did not give it two cores, else null:
 * its 2-vCPU figures and its ratios of two threads' times are then not comparable with other
 * runs. Printed by `stage2 bench faults` and `npm run bench`; never a failure.
 */
export function contendedWarning(r: Pick<FaultBenchResult, "independentSpeedup2v">): string | null {
  const c = r.independentSpeedup2v;
  if (!(Number.isFinite(c) && c < CONTENDED_CONTROL)) return null;
  return (
    `WARNING: two 1-vCPU VMs at once ran only ${c.toFixed(2)}x as fast as one (the control; below ` +
    `${CONTENDED_CONTROL}, the machine did not give this run two cores). Its 2-vCPU figures and ` +
    "ratios of two threads' times are not comparable with other runs: run it again."
  );
}

/**
 * The faults benchmark for people: every figure as median (min-max) over the rounds, then the
 * throughput curve of the vCPU sweep for both modes, and the contended-machine warning if any.
 */
export function faultsText(r: FaultBenchResult): string[] {
  const out = [
    `${r.granule / 1024}K granule, ${r.iaBits}-bit IPA, ${r.rcuFlavor} RCU, ${count(r.faultsPerVcpu)} faults per vCPU per round`,
    inliningText(r.inliningBudget),
    ...spreadText(r),
    "",
    "Throughput curve (wall ns per fault with all vCPUs; speedup over the same mode at 1 vCPU):",
  ];
  const header = ["mode", "vCPUs", "ns/fault", "(min-max)", "M faults/s", "speedup", "kernel"];
  const cells = r.sweep.map((p) => [
    p.mode,
    String(p.vcpus),
    figure(p.nsPerFault),
    `(${figure(p.nsPerFaultMin)}-${figure(p.nsPerFaultMax)})`,
    figure(p.faultsPerSec / 1e6),
    figure(p.speedup),
    p.kernelSpeedup === null ? "-" : p.kernelSpeedup.toFixed(2),
  ]);
  out.push(...table(header, cells, "lrrrrrr"));
  out.push(
    "kernel: the series' own populate speedup at that vCPU count (v5 cover letter, dirty_log_perf_test",
    "-s anonymous_thp -m 2 -b 4G; exclusive = before the series, shared = after; a many-core arm64 host,",
    "page allocation and zeroing outside mmu_lock); - where it gave no figure",
  );
  const warning = contendedWarning(r);
  if (warning !== null) out.push("", warning);
  return out;
}

/** What `bench reclaim` answers, in words (printed above its tables). */
export const RECLAIM_QUESTION = [
  "Question: when vCPUs replace populated tables with blocks as fast as they can, how much table",
  "memory waits for a grace period at peak under each reclaim strategy, and how long does each",
  "RCU callback run (a long callback delays every callback queued behind it)?",
];

function stormName(blockSize: number): string {
  return blockSize >= 2 ** 30
    ? "1 GiB storm: each vCPU collapses its range into one 1 GiB block (one 513-page subtree)"
    : "2 MiB storm: each vCPU collapses its range into 2 MiB blocks (one table page each)";
}

function stormTable(storms: readonly StormResult[]): string[] {
  const row = (label: string, unit: string, cell: (s: StormResult) => string): MetricRow => ({
    label,
    unit,
    cells: storms.map(cell),
  });
  return metricTable(
    storms.map((s) => s.strategy),
    [
      row("storm time", "ms", (s) => figure(s.stormMs)),
      row("callbacks queued", "", (s) => count(s.callbacksQueued)),
      row("peak waiting: callbacks", "", (s) => count(s.peakPendingCallbacks)),
      row("peak waiting: pages", "pages", (s) => count(s.peakPendingPages)),
      row("peak waiting: memory", "KiB", (s) => count(s.peakPendingKiB)),
      row("callback p50", "us", (s) => usBound(s.callbackP50Ns)),
      row("callback p99", "us", (s) => usBound(s.callbackP99Ns)),
      row("callback max", "us", (s) => (s.callbackMaxNs > 0 ? usFromNs(s.callbackMaxNs) : "-")),
      row("synchronous fallbacks", "", (s) => count(s.syncFallbacks)),
      row("pages reclaimed", "pages", (s) => count(s.pagesReclaimed)),
      row("grace periods", "", (s) => count(s.gracePeriods)),
      row("teardown barrier", "ms", (s) => figure(s.barrierMs)),
    ],
  );
}

/** The answer for one storm, in words: which strategy kept the least memory waiting, which ran the shortest callbacks. */
export function answer(storms: readonly StormResult[]): string[] {
  const least = storms.reduce((a, b) => (b.peakPendingPages < a.peakPendingPages ? b : a));
  const most = storms.reduce((a, b) => (b.peakPendingPages > a.peakPendingPages ? b : a));
  const memory =
    least.peakPendingPages === most.peakPendingPages
      ? `Answer: every strategy peaked at ${count(least.peakPendingPages)} pages (${count(least.peakPendingKiB)} KiB) waiting.`
      : `Answer: least memory waiting at peak: ${least.strategy}, ${count(least.peakPendingPages)} pages ` +
        `(${count(least.peakPendingKiB)} KiB); most: ${most.strategy}, ${count(most.peakPendingPages)} pages.`;
  const timed = storms.filter((s) => s.callbackMaxNs > 0);
  if (timed.length === 0) return [memory, "        No strategy ran a callback (all freed without call_rcu)."];
  const shortest = timed.reduce((a, b) => (b.callbackMaxNs < a.callbackMaxNs ? b : a));
  const longest = timed.reduce((a, b) => (b.callbackMaxNs > a.callbackMaxNs ? b : a));
  return [
    memory,
    `        Longest callback: shortest under ${shortest.strategy} (${usFromNs(shortest.callbackMaxNs)} us), ` +
      `longest under ${longest.strategy} (${usFromNs(longest.callbackMaxNs)} us).`,
  ];
}

/** The reclaim study for people: the question, one table per storm, and the answer per storm. */
export function stormsText(storms: readonly StormResult[]): string[] {
  const out = [...RECLAIM_QUESTION];
  const sizes = [...new Set(storms.map((s) => s.blockSize))];
  for (const size of sizes) {
    const group = storms.filter((s) => s.blockSize === size);
    out.push("", stormName(size), ...stormTable(group), ...answer(group));
  }
  out.push("", 'Callback p50/p99 are upper bounds of power-of-two histogram buckets ("≤"); max is exact.');
  return out;
}
