/**
 * The comparison of `stage2 compare` and `stage2 report`: pure functions from run results to
 * tables (one per workload, one column per strategy/mode/RCU/vCPU configuration, one row per
 * figure), the best column of each figure, and the text table for the terminal.
 *
 * Several runs of one configuration (seeds, repeated jobs) fold into one column by their median.
 */
import type { RunResult, WorkloadName } from "../experiment/result.js";

export type Better = "lower" | "higher";

/** One row of the table: how to read a figure from a run, its unit and which way is better. */
export interface Figure {
  label: string;
  unit: string;
  better: Better;
  /** undefined when the run has no such figure (no callbacks ran, phase absent). */
  value(r: RunResult): number | undefined;
}

/** One column of a comparison table: a configuration (strategy, mode, RCU flavor, vCPUs). */
export interface ConfigColumn {
  strategy: string;
  mode: RunResult["mode"];
  rcu: RunResult["rcu"];
  vcpus: number;
  /** Strategy plus the dimensions that vary in this table. */
  label: string;
  runs: RunResult[];
}

/** One figure across the configurations, with the best column marked. */
export interface ComparisonRow {
  label: string;
  unit: string;
  better: Better;
  /** Median over the column's runs; null where no run has the figure. */
  values: (number | null)[];
  /** Indices of the best columns (ties all marked); empty when fewer than two differ. */
  best: number[];
}

/** The comparison table of one workload: its configurations and figures. */
export interface Comparison {
  workload: WorkloadName;
  /** The dimensions shared by every column, e.g. "shared, mb, 2 vCPUs". */
  common: string;
  columns: ConfigColumn[];
  rows: ComparisonRow[];
}

/** Strategies in the order the review discusses them; others follow alphabetically. */
export const STRATEGY_ORDER = ["per-table", "per-subtree", "bounded", "batched"];

const MIB = 1024 * 1024;

function ifCallbacks(r: RunResult, v: number): number | undefined {
  return r.reclaim.callbacks > 0 ? v : undefined;
}

/** The figures after the phase rows, in table order. */
export const FIGURES: readonly Figure[] = [
  { label: "faults/s", unit: "1/s", better: "higher", value: (r) => r.faults.faultsPerSec },
  { label: "AGAIN retries", unit: "", better: "lower", value: (r) => r.faults.again },
  { label: "callbacks queued", unit: "", better: "lower", value: (r) => r.reclaim.callbacks },
  {
    label: "peak pending callbacks",
    unit: "",
    better: "lower",
    value: (r) => r.reclaim.peakPendingCallbacks,
  },
  {
    label: "peak pending pages",
    unit: "MiB",
    better: "lower",
    value: (r) => r.reclaim.peakPendingBytes / MIB,
  },
  {
    label: "callback p50",
    unit: "µs",
    better: "lower",
    value: (r) => ifCallbacks(r, r.reclaim.callbackP50Us),
  },
  {
    label: "callback p99",
    unit: "µs",
    better: "lower",
    value: (r) => ifCallbacks(r, r.reclaim.callbackP99Us),
  },
  {
    label: "callback max",
    unit: "µs",
    better: "lower",
    value: (r) => ifCallbacks(r, r.reclaim.callbackMaxUs),
  },
  {
    label: "callback time total",
    unit: "ms",
    better: "lower",
    value: (r) => r.reclaim.callbackTotalUs / 1000,
  },
  { label: "vCPU grace-period waits", unit: "", better: "lower", value: (r) => r.reclaim.syncFallbacks },
  { label: "grace periods", unit: "", better: "lower", value: (r) => r.reclaim.gracePeriods },
  { label: "barrier at destroy", unit: "ms", better: "lower", value: (r) => r.reclaim.barrierMs },
  {
    label: "mmu_lock reads counted",
    unit: "%",
    better: "lower",
    // Read locks through the shared word (reader bias off): each bounces a line between cores.
    value: (r) =>
      r.lock && r.lock.readLocks > 0 ? (100 * r.lock.readCounted) / r.lock.readLocks : undefined,
  },
  {
    label: "longest mmu_lock writer wait",
    unit: "µs",
    better: "lower",
    value: (r) => r.lock?.writeWaitMaxUs,
  },
];

function strategyRank(s: string): number {
  const i = STRATEGY_ORDER.indexOf(s);
  return i < 0 ? STRATEGY_ORDER.length : i;
}

function configKey(r: RunResult): string {
  return `${r.strategy}\u0000${r.mode}\u0000${r.rcu}\u0000${r.vcpus}`;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function columnsOf(runs: readonly RunResult[]): { columns: ConfigColumn[]; common: string } {
  const byKey = new Map<string, ConfigColumn>();
  for (const r of runs) {
    const k = configKey(r);
    const c = byKey.get(k);
    if (c) c.runs.push(r);
    else
      byKey.set(k, { strategy: r.strategy, mode: r.mode, rcu: r.rcu, vcpus: r.vcpus, label: "", runs: [r] });
  }
  const columns = [...byKey.values()].sort(
    (a, b) =>
      strategyRank(a.strategy) - strategyRank(b.strategy) ||
      a.strategy.localeCompare(b.strategy) ||
      a.mode.localeCompare(b.mode) ||
      a.rcu.localeCompare(b.rcu) ||
      a.vcpus - b.vcpus,
  );
  const varies = (f: (c: ConfigColumn) => unknown) => new Set(columns.map(f)).size > 1;
  const [vMode, vRcu, vVcpus] = [varies((c) => c.mode), varies((c) => c.rcu), varies((c) => c.vcpus)];
  for (const c of columns) {
    const parts = [c.strategy];
    if (vMode) parts.push(c.mode);
    if (vRcu) parts.push(c.rcu);
    if (vVcpus) parts.push(`${c.vcpus}v`);
    if (c.runs.length > 1) parts.push(`×${c.runs.length}`);
    c.label = parts.join(" ");
  }
  const first = columns[0]!;
  const common: string[] = [];
  if (!vMode) common.push(first.mode);
  if (!vRcu) common.push(first.rcu);
  if (!vVcpus) common.push(`${first.vcpus} vCPU${first.vcpus === 1 ? "" : "s"}`);
  return { columns, common: common.join(", ") };
}

function bestOf(values: readonly (number | null)[], better: Better): number[] {
  const present = values.filter((v): v is number => v !== null);
  if (present.length < 2) return [];
  const target = better === "lower" ? Math.min(...present) : Math.max(...present);
  if (present.every((v) => v === target)) return [];
  return values.flatMap((v, i) => (v === target ? [i] : []));
}

function rowOf(f: Figure, columns: readonly ConfigColumn[]): ComparisonRow {
  const values = columns.map((c) => {
    const xs = c.runs.map((r) => f.value(r)).filter((v): v is number => v !== undefined);
    return xs.length === 0 ? null : median(xs);
  });
  return { label: f.label, unit: f.unit, better: f.better, values, best: bestOf(values, f.better) };
}

/** Phase rows, in the order phases first appear. */
function phaseFigures(runs: readonly RunResult[]): Figure[] {
  const names: string[] = [];
  for (const r of runs) for (const p of r.phases) if (!names.includes(p.name)) names.push(p.name);
  return names.map((name) => ({
    label: name,
    unit: "s",
    better: "lower" as const,
    value: (r: RunResult) => r.phases.find((p) => p.name === name)?.seconds,
  }));
}

/** Groups results by workload (in order of first appearance) and tabulates each. */
export function compare(results: readonly RunResult[]): Comparison[] {
  const byWorkload = new Map<WorkloadName, RunResult[]>();
  for (const r of results) byWorkload.set(r.workload, [...(byWorkload.get(r.workload) ?? []), r]);
  return [...byWorkload].map(([workload, runs]) => {
    const { columns, common } = columnsOf(runs);
    const figures = [...phaseFigures(runs), ...FIGURES];
    return { workload, common, columns, rows: figures.map((f) => rowOf(f, columns)) };
  });
}

/** Figures as people read them: 3 significant digits, thousands separated, no exponent. */
export function formatNumber(v: number | null): string {
  if (v === null) return "–";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1000 || Number.isInteger(v)) return Math.round(v).toLocaleString("en-US");
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : Math.min(6, 2 - Math.floor(Math.log10(a)));
  return v.toFixed(digits);
}

/** Aligned text for the terminal: `*` marks the best column of each figure. */
export function renderTable(tables: readonly Comparison[]): string {
  const out: string[] = [];
  for (const t of tables) {
    const runs = t.columns.reduce((n, c) => n + c.runs.length, 0);
    out.push(`${t.workload} (${t.common ? `${t.common}; ` : ""}${runs} run${runs === 1 ? "" : "s"})`);
    const grid: string[][] = [["figure", "unit", ...t.columns.map((c) => `${c.label} `)]];
    for (const row of t.rows) {
      const cells = row.values.map((v, i) => `${formatNumber(v)}${row.best.includes(i) ? "*" : " "}`);
      grid.push([row.label, row.unit, ...cells]);
    }
    const widths = grid[0]!.map((_, col) => Math.max(...grid.map((r) => r[col]!.length)));
    for (const r of grid) {
      const line = r.map((cell, col) => (col < 2 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!)));
      out.push(line.join("  ").trimEnd());
    }
    out.push("");
  }
  out.push("* best on the figure (lower is better, except faults/s); – not measured in these runs");
  return out.join("\n");
}
