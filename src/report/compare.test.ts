import assert from "node:assert/strict";
import { test } from "node:test";
import type { RunResult } from "../experiment/result.js";
import { answers } from "./answers.js";
import { compare, formatNumber, renderTable } from "./compare.js";
import { syntheticRun } from "./fixture.js";

const STRATEGIES = ["per-table", "per-subtree", "bounded", "batched"];

function matrix(): RunResult[] {
  return STRATEGIES.map((strategy) => syntheticRun({ strategy }));
}

function row(t: ReturnType<typeof compare>[number], label: string) {
  const r = t.rows.find((x) => x.label === label);
  assert.ok(r, `row ${label}`);
  return r;
}

test("compare() makes one table per workload with columns in strategy order", () => {
  const runs = [
    syntheticRun({ workload: "collapse-storm", strategy: "bounded" }),
    ...matrix().reverse(),
    syntheticRun({ workload: "collapse-storm", strategy: "per-table" }),
  ];
  const tables = compare(runs);
  assert.deepEqual(
    tables.map((t) => t.workload),
    ["collapse-storm", "dirty-log-perf"],
  );
  assert.deepEqual(
    tables[1]!.columns.map((c) => c.label),
    STRATEGIES,
  );
  assert.equal(tables[1]!.common, "shared, mb, 2 vCPUs");
  assert.deepEqual(
    tables[0]!.columns.map((c) => c.strategy),
    ["per-table", "bounded"],
  );
  assert.deepEqual(
    tables[1]!.rows.slice(0, 3).map((r) => r.label),
    ["Populate memory", "Iteration 1 dirty memory", "Iteration 2 dirty memory"],
  );
});

test("compare() folds runs of one configuration by their median and labels what varies", () => {
  const runs = [1, 2, 3].map((seed) => syntheticRun({ strategy: "per-table", seed }));
  runs[0]!.faults.again = 10;
  runs[1]!.faults.again = 1000;
  runs[2]!.faults.again = 30;
  const other = syntheticRun({ strategy: "per-table", vcpus: 4 });
  const [t] = compare([...runs, other]);
  assert.deepEqual(
    t!.columns.map((c) => c.label),
    ["per-table 2v ×3", "per-table 4v"],
  );
  assert.equal(row(t!, "AGAIN retries").values[0], 30);
});

test("compare() marks the best column: lowest, except faults/s; no mark without a contest", () => {
  const runs = matrix();
  runs[2]!.faults.faultsPerSec = 1e9;
  runs[1]!.reclaim.barrierMs = 0.001;
  const [t] = compare(runs);
  assert.deepEqual(row(t!, "faults/s").best, [2]);
  assert.deepEqual(row(t!, "barrier at destroy").best, [1]);
  // batched runs no callbacks: its callback durations are absent, not a winning zero.
  const p99 = row(t!, "callback p99");
  assert.equal(p99.values[3], null);
  assert.ok(!p99.best.includes(3));
  const [single] = compare([runs[0]!]);
  assert.ok(single!.rows.every((r) => r.best.length === 0));
});

test("renderTable() aligns the columns and marks the best with *", () => {
  const text = renderTable(compare(matrix()));
  const lines = text.split("\n");
  const header = lines[1]!;
  assert.match(header, /^figure\s+unit\s+per-table\s+per-subtree\s+bounded\s+batched$/);
  const rows = lines.slice(2, lines.indexOf(""));
  for (const l of rows) {
    // Every value column ends where its header ends.
    for (const name of STRATEGIES) {
      const end = header.indexOf(name) + name.length + 1;
      assert.ok(l.length >= end - 1, l);
      assert.match(l.slice(0, end), /[\d–][* ]?$/, `${l} under ${name}`);
    }
  }
  assert.match(text, /faults\/s\s+1\/s.*\*/);
  assert.match(text, /best on the figure/);
});

test("formatNumber() keeps three significant digits and separates thousands", () => {
  assert.deepEqual([0.012345, 0.213, 4.096, 32.77, 471.9, 3402, 1234567.8, 0, null].map(formatNumber), [
    "0.0123",
    "0.213",
    "4.10",
    "32.8",
    "472",
    "3,402",
    "1,234,568",
    "0",
    "–",
  ]);
});

test("answers() says the backlog grew dangerously only when the numbers say so", () => {
  const yes = answers(matrix());
  assert.equal(yes.length, 2);
  assert.match(yes[0]!, /^Did pending callbacks grow dangerously\? Yes: under per-table up to 7\.\d+ MiB/);
  assert.match(yes[0]!, /bounded 0\.250 MiB \(64 pages, 8 callbacks; 2% of its deferred pages/);
  assert.match(yes[0]!, /kept the peak \d+(\.\d)?x below the loosest \(per-table\)/);

  const calm = STRATEGIES.map((strategy) => syntheticRun({ strategy, backlogScale: 0.1 }));
  const no = answers(calm);
  assert.match(no[0]!, /^Did pending callbacks grow dangerously\? No: the largest backlog was/);
  assert.match(no[0]!, /reclaim kept pace/);
});

test("answers() compares per table with per subtree from the numbers", () => {
  const runs = matrix();
  const a = answers(runs)[1]!;
  const t = runs[0]!.reclaim;
  const s = runs[1]!.reclaim;
  assert.match(
    a,
    new RegExp(
      `per-table queued ${formatNumber(t.callbacks)} callbacks and per-subtree ${formatNumber(s.callbacks)}`,
    ),
  );
  assert.match(
    a,
    new RegExp(
      `longest callback took ${formatNumber(t.callbackMaxUs)} µs against ${formatNumber(s.callbackMaxUs)} µs`,
    ),
  );

  t.callbacks = 1000;
  s.callbacks = 250;
  t.callbackTotalUs = 3000;
  s.callbackTotalUs = 2000;
  const b = answers(runs)[1]!;
  assert.match(b, /per-table queued 1,000 callbacks and per-subtree 250 \(4x as many\)/);
  assert.match(b, /3 ms against 2 ms \(per-table did 50% more\)/);
});

test("answers() says 'not measured' for what the runs lack, never a number", () => {
  const noSubtree = matrix().filter((r) => r.strategy !== "per-subtree");
  const [q1, q2] = answers(noSubtree);
  assert.match(q1!, /Not measured: per-subtree\.$/);
  assert.equal(q2, "Per table against per subtree: not measured (no shared-mode per-subtree run).");
  const exclusive = answers([syntheticRun({ mode: "exclusive" })]);
  assert.deepEqual(exclusive, [
    "Did pending callbacks grow dangerously? Not measured (no shared-mode run).",
    "Per table against per subtree: not measured (no shared-mode run).",
  ]);
  const two = answers([...matrix(), syntheticRun({ workload: "collapse-storm", mode: "exclusive" })]);
  assert.equal(two.length, 4);
  assert.match(two[2]!, /^collapse-storm: Did pending/);
});
