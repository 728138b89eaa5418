import assert from "node:assert/strict";
import { test } from "node:test";
import { syntheticRun } from "./fixture.js";
import { bucketLabel, renderHtml } from "./html.js";

const RUNS = ["per-table", "per-subtree", "bounded", "batched"].map((strategy) => syntheticRun({ strategy }));

test("renderHtml() is self-contained: uPlot inlined, no src, href, link, import or url()", () => {
  const html = renderHtml(RUNS);
  assert.match(html, /^<!doctype html>/);
  assert.ok(html.includes("uPlot"), "uPlot is inlined");
  assert.doesNotMatch(html, /\s(src|href)\s*=/i);
  assert.doesNotMatch(html, /<link\b|@import|url\(/i);
  assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
  // One <script> per inlined part and no external one.
  assert.equal(html.match(/<script\b/g)?.length, 3);
});

test("renderHtml() opens with the answers, then the table, then the charts", () => {
  const html = renderHtml(RUNS);
  const at = (s: string) => {
    const i = html.indexOf(s);
    assert.ok(i >= 0, s);
    return i;
  };
  assert.ok(at("<h2>Answers</h2>") < at('<table class="compare">'));
  assert.ok(at('<table class="compare">') < at('<figure class="chart"'));
  assert.ok(at("Did pending callbacks grow dangerously? Yes") < at("<table"));
  assert.ok(at("Per table against per subtree: per-table queued") < at("<table"));
  const data = JSON.parse(
    /<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(html)![1]!,
  );
  assert.deepEqual(Object.keys(data.charts), [
    "w0-phases",
    "w0-pending-pages",
    "w0-pending-callbacks",
    "w0-callbacks",
    "w0-vcpus",
  ]);
  for (const c of Object.values(data.charts) as { title: string; xLabel: string; yLabel: string }[]) {
    assert.ok(c.title && c.xLabel && c.yLabel, JSON.stringify(c.title));
  }
});

test("renderHtml() escapes names from the results", () => {
  const r = syntheticRun({ strategy: "</script><script>alert(1)</script>" });
  const html = renderHtml([r]);
  assert.ok(!html.includes("<script>alert(1)"), "no injected element");
  assert.equal(html.match(/<script\b/g)?.length, 3);
});

test("renderHtml() says when a chart has nothing to draw instead of drawing it empty", () => {
  const r = syntheticRun({ strategy: "batched" });
  r.samples = [];
  const html = renderHtml([r]);
  assert.match(html, /No samples were recorded in these runs\./);
  assert.match(html, /No reclaim callback ran in these runs\./);
  assert.doesNotMatch(html, /data-chart="w0-pending-pages"/);
});

test("renderHtml() lists runs that failed their checks above the answers", () => {
  const r = syntheticRun();
  r.checks = {
    uaf: 2,
    leakedPages: 0,
    auditProblems: [],
    failures: ["dirty log missed 3 pages"],
    passed: false,
  };
  const html = renderHtml([r]);
  assert.ok(html.indexOf("Runs that failed their checks") < html.indexOf("<h2>Answers</h2>"));
  assert.match(html, /dirty log missed 3 pages; 2 use-after-free/);
});

test("bucketLabel() names the lower bound of a log2-ns bucket", () => {
  assert.deepEqual([0, 9, 10, 13, 17, 20, 30].map(bucketLabel), [
    "1 ns",
    "512 ns",
    "1 µs",
    "8.2 µs",
    "131 µs",
    "1 ms",
    "1.1 s",
  ]);
});

test("renderHtml() folds many iterated phases into one bar group per step", () => {
  const r = syntheticRun();
  r.phases = [{ name: "Populate memory", seconds: 1 }];
  for (let i = 1; i <= 5; i++)
    for (const [step, s] of [
      ["dirty memory", i],
      ["get dirty log", 0.1],
      ["clear dirty log", 0.2],
    ] as const)
      r.phases.push({ name: `Iteration ${i} ${step}`, seconds: s });
  const html = renderHtml([r]);
  const data = JSON.parse(
    /<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(html)![1]!,
  );
  const phases = data.charts["w0-phases"];
  assert.deepEqual(phases.groups, [
    "Populate memory",
    "dirty memory (mean per iteration)",
    "get dirty log (mean per iteration)",
    "clear dirty log (mean per iteration)",
  ]);
  assert.deepEqual(phases.series[0].values, [1, 3, 0.1, 0.2]);
});
