/**
 * Text output helpers for people: aligned tables with units, durations, log2-bucket bounds and a
 * final verdict line. JSON output never goes through here (it keeps the raw keys and numbers).
 *
 * Pure (no I/O, no imports); they sit in src/bench because both the benchmark reports and the CLI
 * use them, and the CLI may import src/bench but not the reverse. They could as well live in
 * src/common.
 */

/** One row of a metric table: a label, its unit ("" for a plain count), one cell per column. */
export interface MetricRow {
  label: string;
  unit: string;
  cells: string[];
}

/**
 * A table with one row per metric and one column per run (strategy, configuration...): narrow
 * however many metrics there are, and each number sits under its column name with the unit beside
 * the label. Numbers are right-aligned.
 */
export function metricTable(columns: readonly string[], rows: readonly MetricRow[]): string[] {
  const labelWidth = Math.max(0, ...rows.map((r) => r.label.length));
  const unitWidth = Math.max(0, ...rows.map((r) => r.unit.length));
  const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((r) => (r.cells[i] ?? "").length)));
  const line = (label: string, unit: string, cells: readonly string[]): string =>
    `${label.padEnd(labelWidth)}  ${unit.padEnd(unitWidth)}  ${cells.map((c, i) => c.padStart(widths[i] as number)).join("  ")}`.trimEnd();
  return [line("", "", columns), ...rows.map((r) => line(r.label, r.unit, r.cells))];
}

/** A plain table: a header row, then rows; `align` per column ("l" or "r"). */
export function table(header: readonly string[], rows: readonly string[][], align: string): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (align[i] === "l" ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** An integer with thousands separators: 14028 -> "14,028". */
export function count(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "-";
}

/** A measured figure with 3 significant digits (at least the integer part): 16.38 -> "16.4". */
export function figure(v: number): string {
  if (!Number.isFinite(v)) return "-";
  if (Number.isInteger(v)) return count(v);
  const a = Math.abs(v);
  if (a >= 1000) return count(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(a >= 1 ? 2 : 3);
}

/** Nanoseconds in microseconds: 16384 -> "16.4". */
export function usFromNs(ns: number): string {
  return figure(ns / 1000);
}

/**
 * The upper bound of a log2 histogram bucket, in microseconds, marked as a bound: 16384 ns ->
 * "≤16.4". The true percentile lies in (bound/2, bound]; printing "16.4" alone would claim a
 * precision the histogram does not have. 0 (no samples) prints "-".
 */
export function usBound(ns: number): string {
  return ns > 0 ? `≤${usFromNs(ns)}` : "-";
}

/** The last line of a run that checks something: "PASS: ..." or "FAIL: ...". */
export function verdict(ok: boolean, detail: string): string {
  return `${ok ? "PASS" : "FAIL"}: ${detail}`;
}
