/**
 * The seed's two questions, answered in plain sentences computed from the runs' numbers:
 *
 * 1. Did pending callbacks grow dangerously, and how far did each strategy bound them?
 * 2. Per table against per subtree: how many callbacks each queued, the longest callback of each,
 *    and the total reclaim work of each.
 *
 * Only shared-mode runs defer frees (exclusive walks free at once), so only they count. A strategy
 * missing from the runs is said to be "not measured"; nothing is estimated.
 */
import type { RunResult } from "../experiment/result.js";
import { formatNumber, median, STRATEGY_ORDER } from "./compare.js";

/**
 * A backlog is called dangerous when at least this fraction of every table page the strategy
 * deferred over the run was waiting for a grace period at the same moment: reclaim did not keep
 * pace, and the memory held grows with the amount of unmapping rather than with a bound.
 */
export const DANGEROUS_BACKLOG_FRACTION = 0.5;

const MIB = 1024 * 1024;

interface Backlog {
  strategy: string;
  bytes: number;
  pages: number;
  callbacks: number;
  deferred: number;
  syncFallbacks: number;
  /** pages / deferred of the worst run, 0 when nothing was deferred. */
  fraction: number;
}

function mib(bytes: number): string {
  return `${formatNumber(bytes / MIB)} MiB`;
}

function pct(f: number): string {
  return `${Math.round(f * 100)}%`;
}

function ratio(a: number, b: number): string {
  return `${formatNumber(a / b)}x`;
}

function strategiesOf(runs: readonly RunResult[]): string[] {
  const names = [...new Set(runs.map((r) => r.strategy))];
  const rank = (s: string) => (STRATEGY_ORDER.includes(s) ? STRATEGY_ORDER.indexOf(s) : 99);
  return names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** The worst run of a strategy: the one with the most table memory pending at once. */
function worstBacklog(strategy: string, runs: readonly RunResult[]): Backlog {
  const worst = runs.reduce((a, b) => (b.reclaim.peakPendingBytes > a.reclaim.peakPendingBytes ? b : a));
  const { peakPendingBytes, peakPendingPages, peakPendingCallbacks, pagesDeferred } = worst.reclaim;
  return {
    strategy,
    bytes: peakPendingBytes,
    pages: peakPendingPages,
    callbacks: peakPendingCallbacks,
    deferred: pagesDeferred,
    syncFallbacks: worst.reclaim.syncFallbacks,
    fraction: pagesDeferred > 0 ? peakPendingPages / pagesDeferred : 0,
  };
}

function describeBacklog(b: Backlog): string {
  const waits = b.syncFallbacks > 0 ? `, ${formatNumber(b.syncFallbacks)} vCPU waits for a grace period` : "";
  return `${b.strategy} ${mib(b.bytes)} (${formatNumber(b.pages)} pages, ${formatNumber(b.callbacks)} callbacks; ${pct(b.fraction)} of its deferred pages${waits})`;
}

/** Question 1 for one workload's shared runs. */
function backlogAnswer(shared: readonly RunResult[]): string {
  const present = strategiesOf(shared);
  const missing = STRATEGY_ORDER.filter((s) => !present.includes(s));
  const notMeasured = missing.length > 0 ? ` Not measured: ${missing.join(", ")}.` : "";
  const backlogs = present.map((s) =>
    worstBacklog(
      s,
      shared.filter((r) => r.strategy === s),
    ),
  );
  const worst = backlogs.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  const dangerous = backlogs.filter((b) => b.fraction >= DANGEROUS_BACKLOG_FRACTION);
  let verdict: string;
  if (dangerous.length > 0) {
    const d = dangerous.reduce((a, b) => (b.bytes > a.bytes ? b : a));
    verdict =
      `Yes: under ${d.strategy} up to ${mib(d.bytes)} of table pages (${formatNumber(d.pages)} pages, ` +
      `${formatNumber(d.callbacks)} callbacks) waited for a grace period at once, ${pct(d.fraction)} of all ` +
      `the pages it deferred, so the backlog grew with the unmapping instead of staying bounded` +
      (dangerous.length > 1
        ? ` (also ${dangerous
            .filter((x) => x !== d)
            .map((x) => x.strategy)
            .join(", ")}).`
        : ".");
  } else {
    verdict =
      `No: the largest backlog was ${mib(worst.bytes)} (${formatNumber(worst.pages)} pages) under ` +
      `${worst.strategy}, ${pct(worst.fraction)} of the pages it deferred; reclaim kept pace.`;
  }
  const sorted = [...backlogs].sort((a, b) => a.bytes - b.bytes);
  const bound = `Peak pending by strategy (worst run): ${sorted.map(describeBacklog).join("; ")}.`;
  const tight = sorted[0]!;
  const loose = sorted[sorted.length - 1]!;
  const spread =
    sorted.length > 1 && tight.bytes > 0 && loose.bytes > tight.bytes
      ? ` The tightest bound (${tight.strategy}) kept the peak ${ratio(loose.bytes, tight.bytes)} below the loosest (${loose.strategy}).`
      : sorted.length > 1 && tight.bytes === 0 && loose.bytes > 0
        ? ` ${tight.strategy} never had a page pending.`
        : "";
  return `Did pending callbacks grow dangerously? ${verdict} ${bound}${spread}${notMeasured}`;
}

interface CallbackWork {
  runs: number;
  callbacks: number;
  longestUs: number;
  totalUs: number;
}

function callbackWork(runs: readonly RunResult[]): CallbackWork {
  return {
    runs: runs.length,
    callbacks: median(runs.map((r) => r.reclaim.callbacks)),
    longestUs: Math.max(...runs.map((r) => r.reclaim.callbackMaxUs)),
    totalUs: median(runs.map((r) => r.reclaim.callbackTotalUs)),
  };
}

function configOf(r: RunResult): string {
  return `${r.rcu}/${r.vcpus}`;
}

/** Question 2 for one workload's shared runs, like for like where the configurations allow. */
function perTableAnswer(shared: readonly RunResult[]): string {
  const q = "Per table against per subtree:";
  let table = shared.filter((r) => r.strategy === "per-table");
  let subtree = shared.filter((r) => r.strategy === "per-subtree");
  const absent = [table.length === 0 ? "per-table" : "", subtree.length === 0 ? "per-subtree" : ""].filter(
    Boolean,
  );
  if (absent.length > 0) return `${q} not measured (no shared-mode ${absent.join(" or ")} run).`;
  const both = new Set(table.map(configOf).filter((c) => subtree.some((r) => configOf(r) === c)));
  let caveat = "";
  if (both.size > 0) {
    table = table.filter((r) => both.has(configOf(r)));
    subtree = subtree.filter((r) => both.has(configOf(r)));
  } else caveat = " (not like for like: no RCU flavor and vCPU count was run with both)";
  const t = callbackWork(table);
  const s = callbackWork(subtree);
  const runs =
    t.runs > 1 || s.runs > 1 ? ` Medians over ${t.runs} and ${s.runs} runs; longest over all.` : "";
  const count =
    s.callbacks > 0
      ? `per-table queued ${formatNumber(t.callbacks)} callbacks and per-subtree ${formatNumber(s.callbacks)} (${ratio(t.callbacks, s.callbacks)} as many)`
      : `per-table queued ${formatNumber(t.callbacks)} callbacks and per-subtree ${formatNumber(s.callbacks)}`;
  const longest =
    t.longestUs > 0
      ? `the longest callback took ${formatNumber(t.longestUs)} µs against ${formatNumber(s.longestUs)} µs (per-subtree's is ${ratio(s.longestUs, t.longestUs)} per-table's)`
      : `the longest callback took ${formatNumber(t.longestUs)} µs against ${formatNumber(s.longestUs)} µs`;
  const diff = s.totalUs > 0 ? (t.totalUs - s.totalUs) / s.totalUs : 0;
  const more = diff >= 0 ? `${pct(diff)} more` : `${pct(-diff)} less`;
  const total =
    `total reclaim work (time in callbacks) was ${formatNumber(t.totalUs / 1000)} ms against ` +
    `${formatNumber(s.totalUs / 1000)} ms` +
    (s.totalUs > 0 ? ` (per-table did ${more})` : "");
  return `${q} ${count}; ${longest}; ${total}${caveat}.${runs}`;
}

/**
 * The two answers for each workload in `results` (prefixed with the workload's name when there is
 * more than one), in the order the workloads first appear.
 */
export function answers(results: readonly RunResult[]): string[] {
  const workloads = [...new Set(results.map((r) => r.workload))];
  const out: string[] = [];
  for (const w of workloads) {
    const prefix = workloads.length > 1 ? `${w}: ` : "";
    const shared = results.filter((r) => r.workload === w && r.mode === "shared");
    if (shared.length === 0) {
      out.push(`${prefix}Did pending callbacks grow dangerously? Not measured (no shared-mode run).`);
      out.push(`${prefix}Per table against per subtree: not measured (no shared-mode run).`);
      continue;
    }
    out.push(prefix + backlogAnswer(shared));
    out.push(prefix + perTableAnswer(shared));
  }
  if (workloads.length === 0) out.push("Not measured: no runs.");
  return out;
}
