/**
 * The HTML report: one self-contained file (uPlot's JS and CSS inlined from node_modules, the data
 * inlined as JSON, no URL of any kind; a Content-Security-Policy forbids every fetch), opening with
 * the answers to the two questions, then per workload the comparison table and four charts:
 * phase times, pending pages and callbacks over time, callback durations, faults/s per vCPU.
 *
 * Each configuration column keeps one colour in every chart of its workload.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { RunResult } from "../experiment/result.js";
import { answers } from "./answers.js";
import { type Comparison, type ConfigColumn, compare, formatNumber, median } from "./compare.js";
import { CLIENT_SCRIPT } from "./html-client.js";

/** Options of the HTML report. */
export interface HtmlOptions {
  /** Page title; default "stage2 report". */
  title?: string;
}

/** Saturated colours (told apart from the grey axes and grid by the browser test). */
export const PALETTE = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#59a14f",
  "#b07aa1",
  "#edc948",
  "#76b7b2",
  "#ff9da7",
];

interface BarSpec {
  kind: "bars";
  title: string;
  xLabel: string;
  yLabel: string;
  unit: string;
  groupLabel: string;
  groups: string[];
  series: { label: string; color: string; values: (number | null)[] }[];
}

interface LineSpec {
  kind: "lines";
  title: string;
  xLabel: string;
  yLabel: string;
  unit: string;
  series: { label: string; color: string; t: number[]; y: number[] }[];
}

type ChartSpec = (BarSpec | LineSpec) & { id: string; about: string; empty?: string };

let uplotAssets: { js: string; css: string } | undefined;

/** uPlot's minified build and stylesheet, read once from node_modules. */
function uplot(): { js: string; css: string } {
  if (uplotAssets === undefined) {
    const dist = dirname(createRequire(import.meta.url).resolve("uplot"));
    uplotAssets = {
      js: readFileSync(join(dist, "uPlot.iife.min.js"), "utf8"),
      css: readFileSync(join(dist, "uPlot.min.css"), "utf8"),
    };
  }
  return uplotAssets;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Text safe inside a <script> or <style> element. */
function inlineText(s: string): string {
  return s.replace(/<\/(script|style)/gi, "<\\/$1");
}

function colour(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

/** Beyond this many phases, the chart folds "Iteration N <what>" phases into one group each. */
const MAX_PHASE_GROUPS = 8;
const ITERATION = /^Iteration \d+ (.+)$/;

/** The chart's groups: each phase name, or with many phases each iterated step once. */
function phaseGroups(runs: readonly RunResult[]): { label: string; matches: (name: string) => boolean }[] {
  const names: string[] = [];
  for (const r of runs) for (const p of r.phases) if (!names.includes(p.name)) names.push(p.name);
  if (names.length <= MAX_PHASE_GROUPS) return names.map((n) => ({ label: n, matches: (x) => x === n }));
  const groups: { label: string; matches: (name: string) => boolean }[] = [];
  const seen = new Set<string>();
  for (const n of names) {
    const step = ITERATION.exec(n)?.[1];
    const key = step ?? n;
    if (seen.has(key)) continue;
    seen.add(key);
    if (step === undefined) groups.push({ label: n, matches: (x) => x === n });
    else
      groups.push({ label: `${step} (mean per iteration)`, matches: (x) => ITERATION.exec(x)?.[1] === step });
  }
  return groups;
}

/** Seconds of a group in one run: the phase, or the mean of its iterations. */
function groupSeconds(r: RunResult, matches: (name: string) => boolean): number | undefined {
  const xs = r.phases.filter((p) => matches(p.name)).map((p) => p.seconds);
  return xs.length === 0 ? undefined : xs.reduce((a, b) => a + b, 0) / xs.length;
}

function phaseChart(t: Comparison, id: string): ChartSpec {
  const groups = phaseGroups(t.columns.flatMap((c) => c.runs));
  return {
    id,
    kind: "bars",
    title: "Time of each phase, per configuration",
    about: "Wall-clock seconds of each timed phase of the workload (median over runs). Shorter is better.",
    xLabel: "phase",
    yLabel: "time (s)",
    unit: "s",
    groupLabel: "phase",
    groups: groups.map((g) => g.label),
    series: t.columns.map((c, i) => ({
      label: c.label,
      color: colour(i),
      values: groups.map((g) => {
        const xs = c.runs.map((r) => groupSeconds(r, g.matches)).filter((v): v is number => v !== undefined);
        return xs.length === 0 ? null : median(xs);
      }),
    })),
    ...(groups.length === 0 ? { empty: "No timed phase in these runs." } : {}),
  };
}

function runLabel(c: ConfigColumn, r: RunResult): string {
  return c.runs.length > 1 ? `${c.label.replace(/ ×\d+$/, "")} seed ${r.seed}` : c.label;
}

function pendingChart(t: Comparison, id: string, what: "pages" | "callbacks"): ChartSpec {
  const series = t.columns.flatMap((c, i) =>
    c.runs
      .filter((r) => r.samples.length > 0)
      .map((r) => ({
        label: runLabel(c, r),
        color: colour(i),
        t: r.samples.map((s) => s.tMs),
        y: r.samples.map((s) => (what === "pages" ? s.pendingPages : s.pendingCallbacks)),
      })),
  );
  const pages = what === "pages";
  return {
    id,
    kind: "lines",
    title: pages ? "Table pages waiting for a grace period" : "RCU callbacks waiting to run",
    about: pages
      ? "Page-table pages unlinked by a shared walk and not yet freed, sampled while the run went. A line that keeps climbing is an unbounded backlog."
      : "Reclaim callbacks queued with call_rcu() and not yet run, sampled while the run went.",
    xLabel: "time since the run started (ms)",
    yLabel: pages ? "pending pages" : "pending callbacks",
    unit: pages ? "pages" : "callbacks",
    series,
    ...(series.length === 0 ? { empty: "No samples were recorded in these runs." } : {}),
  };
}

/** The lower bound of log2 bucket b (2^b ns), to two significant digits: "512 ns", "4.1 µs". */
export function bucketLabel(b: number): string {
  const ns = 2 ** b;
  const [v, unit] =
    ns < 1000 ? [ns, "ns"] : ns < 1e6 ? [ns / 1000, "µs"] : ns < 1e9 ? [ns / 1e6, "ms"] : [ns / 1e9, "s"];
  return `${v >= 100 ? Math.round(v) : Number(v.toPrecision(2))} ${unit}`;
}

function histogramChart(t: Comparison, id: string): ChartSpec {
  const cols = t.columns
    .map((c, i) => {
      const counts: number[] = [];
      for (const r of c.runs)
        for (const [b, n] of r.callbackHistogramNs.entries()) counts[b] = (counts[b] ?? 0) + n;
      return { c, i, counts, total: counts.reduce((a, n) => a + (n ?? 0), 0) };
    })
    .filter((x) => x.total > 0);
  let lo = Number.POSITIVE_INFINITY;
  let hi = -1;
  for (const x of cols)
    x.counts.forEach((n, b) => {
      if (n > 0) [lo, hi] = [Math.min(lo, b), Math.max(hi, b)];
    });
  const buckets = hi < 0 ? [] : Array.from({ length: hi - lo + 1 }, (_, k) => lo + k);
  const none = t.columns.filter((c) => !cols.some((x) => x.c === c)).map((c) => c.label);
  return {
    id,
    kind: "bars",
    title: "How long each reclaim callback took",
    about:
      "Share of each configuration's callbacks by duration; a bar at 4 µs counts callbacks that took 4 to 8 µs." +
      (none.length > 0 ? ` No callbacks ran under: ${none.join(", ")}.` : ""),
    xLabel: "callback duration (at least; each bucket spans x to 2x)",
    yLabel: "callbacks (%)",
    unit: "%",
    groupLabel: "duration",
    groups: buckets.map(bucketLabel),
    series: cols.map(({ c, i, counts, total }) => ({
      label: c.label,
      color: colour(i),
      values: buckets.map((b) => ((counts[b] ?? 0) * 100) / total),
    })),
    ...(cols.length === 0 ? { empty: "No reclaim callback ran in these runs." } : {}),
  };
}

function vcpuChart(t: Comparison, id: string): ChartSpec {
  const n = Math.max(0, ...t.columns.flatMap((c) => c.runs.map((r) => r.perVcpu.length)));
  return {
    id,
    kind: "bars",
    title: "Faults handled per second, per vCPU",
    about:
      "Faults each vCPU handled per second of its busy time in the timed phases (median over runs). Higher is better; uneven bars mean some vCPUs waited on others.",
    xLabel: "vCPU",
    yLabel: "faults per second",
    unit: "faults/s",
    groupLabel: "vCPU",
    groups: Array.from({ length: n }, (_, v) => `vCPU ${v}`),
    series: t.columns.map((c, i) => ({
      label: c.label,
      color: colour(i),
      values: Array.from({ length: n }, (_, v) => {
        const xs = c.runs.flatMap((r) => r.perVcpu.filter((p) => p.vcpu === v).map((p) => p.faultsPerSec));
        return xs.length === 0 ? null : median(xs);
      }),
    })),
    ...(n === 0 ? { empty: "No per-vCPU figures in these runs." } : {}),
  };
}

function tableHtml(t: Comparison): string {
  const head = t.columns.map((c) => `<th scope="col">${escapeHtml(c.label)}</th>`).join("");
  const body = t.rows
    .map((row) => {
      const cells = row.values
        .map((v, i) =>
          row.best.includes(i)
            ? `<td class="best"><strong>${formatNumber(v)}</strong></td>`
            : `<td>${formatNumber(v)}</td>`,
        )
        .join("");
      return `<tr><th scope="row">${escapeHtml(row.label)}</th><td class="unit">${escapeHtml(row.unit)}</td>${cells}</tr>`;
    })
    .join("\n");
  return `<table class="compare"><thead><tr><th scope="col">figure</th><th scope="col">unit</th>${head}</tr></thead>
<tbody>
${body}
</tbody></table>
<p class="legend"><strong>Bold</strong>: best on the figure (lower is better, except faults/s). –: not measured in these runs.</p>`;
}

function figureHtml(c: ChartSpec): string {
  const plot = c.empty
    ? `<p class="empty">${escapeHtml(c.empty)}</p>`
    : `<div class="plot" role="img" aria-label="${escapeHtml(c.title)}"></div>`;
  const attr = c.empty ? `data-empty="1"` : `data-chart="${c.id}"`;
  return `<figure class="chart" ${attr}><figcaption><h3>${escapeHtml(c.title)}</h3><p>${escapeHtml(c.about)}</p></figcaption>${plot}</figure>`;
}

function failedChecks(results: readonly RunResult[]): string {
  const failed = results.filter((r) => !r.checks.passed);
  if (failed.length === 0) return "";
  const items = failed
    .map((r) => {
      const why = [...r.checks.failures, ...r.checks.auditProblems];
      if (r.checks.uaf > 0) why.push(`${r.checks.uaf} use-after-free`);
      if (r.checks.leakedPages > 0) why.push(`${r.checks.leakedPages} leaked pages`);
      return `<li>${escapeHtml(`${r.workload} ${r.strategy} ${r.mode} ${r.rcu} ${r.vcpus} vCPUs seed ${r.seed}: ${why.join("; ") || "failed"}`)}</li>`;
    })
    .join("");
  return `<section class="failed"><h2>Runs that failed their checks</h2><ul>${items}</ul></section>`;
}

function runsHtml(results: readonly RunResult[]): string {
  const rows = results
    .map(
      (r) =>
        `<tr><td>${escapeHtml(r.workload)}</td><td>${escapeHtml(r.strategy)}</td><td>${r.mode}</td><td>${r.rcu}</td><td>${r.vcpus}</td><td>${r.seed}</td><td>${r.checks.passed ? "passed" : "FAILED"}</td><td><code>${escapeHtml(["stage2", ...r.command].join(" "))}</code></td></tr>`,
    )
    .join("\n");
  return `<details><summary>The ${results.length} runs and the commands that replay them</summary>
<table class="runs"><thead><tr><th>workload</th><th>strategy</th><th>mode</th><th>rcu</th><th>vCPUs</th><th>seed</th><th>checks</th><th>command</th></tr></thead><tbody>
${rows}
</tbody></table></details>`;
}

const STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1em; margin: 0; }
.answers li { margin-bottom: .6em; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .2em .7em; border-bottom: 1px solid #eee; }
table.compare td { text-align: right; } td.unit { text-align: left; color: #666; }
th[scope=row] { text-align: left; font-weight: normal; }
td.best { background: #eaf5e9; }
.legend, figcaption p, .meta { color: #555; font-size: .9em; }
.charts { display: flex; flex-wrap: wrap; gap: 1.5em; }
figure.chart { margin: 0; width: 580px; }
.empty { color: #a33; }
.failed { border: 2px solid #c33; padding: 0 1em; }
`;

/** The whole report as one HTML document. */
export function renderHtml(results: readonly RunResult[], opts: HtmlOptions = {}): string {
  const title = opts.title ?? "stage2 report";
  const tables = compare(results);
  const charts: Record<string, ChartSpec> = {};
  const sections = tables.map((t, w) => {
    const specs = [
      phaseChart(t, `w${w}-phases`),
      pendingChart(t, `w${w}-pending-pages`, "pages"),
      pendingChart(t, `w${w}-pending-callbacks`, "callbacks"),
      histogramChart(t, `w${w}-callbacks`),
      vcpuChart(t, `w${w}-vcpus`),
    ];
    for (const s of specs) if (!s.empty) charts[s.id] = s;
    const runs = t.columns.reduce((n, c) => n + c.runs.length, 0);
    return `<section class="workload"><h2>${escapeHtml(t.workload)}</h2>
<p class="meta">${escapeHtml(t.common)}${t.common ? "; " : ""}${runs} run${runs === 1 ? "" : "s"}.</p>
${tableHtml(t)}
<div class="charts">${specs.map(figureHtml).join("\n")}</div></section>`;
  });
  const machines = [
    ...new Set(results.map((r) => `${r.machine.cpuModel} (${r.machine.cpus} CPUs), Node ${r.machine.node}`)),
  ];
  const data = JSON.stringify({ charts }).replace(/</g, "\\u003c");
  const { js, css } = uplot();
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${inlineText(css)}</style>
<style>${STYLE}</style>
</head><body>
<h1>${escapeHtml(title)}</h1>
<p class="meta">${results.length} run${results.length === 1 ? "" : "s"} on ${escapeHtml(machines.join("; ") || "no machine")}.</p>
${failedChecks(results)}
<section><h2>Answers</h2><ol class="answers">
${answers(results)
  .map((a) => `<li>${escapeHtml(a)}</li>`)
  .join("\n")}
</ol></section>
${sections.join("\n")}
${runsHtml(results)}
<script type="application/json" id="report-data">${data}</script>
<script>${inlineText(js)}</script>
<script>${inlineText(CLIENT_SCRIPT)}</script>
</body></html>
`;
}
