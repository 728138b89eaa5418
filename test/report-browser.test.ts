/**
 * The HTML report in a real browser: headless Chromium (Debian's package, driven by
 * playwright-core). Every chart must draw (coloured pixels on its canvas), the page must log no
 * error, and it must make no request of any kind. Three deliberately broken pages (a blanked
 * chart, a console error, an external image) must each be caught, so the checks are known to bite.
 *
 * Without Chromium this test FAILS and says how to install it: `npm test` installs it first
 * (scripts/ensure-chromium.mjs) where the machine allows.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { type Browser, chromium } from "playwright-core";
import type { RunResult } from "../src/experiment/result.js";
import { syntheticRun } from "../src/report/fixture.js";
import { renderHtml } from "../src/report/html.js";
import { executeSpec } from "../src/experiment/execute.js";
import { STRATEGIES } from "../src/kvm/reclaim/strategy.js";

const CHROMIUM = process.env.STAGE2_CHROMIUM || "/usr/bin/chromium";
const INSTALL =
  "install it with `sudo apt-get install -y chromium` (Debian/Ubuntu), or run `sudo node scripts/ensure-chromium.mjs`, or point STAGE2_CHROMIUM at a Chromium binary";
/** Pixels whose channels differ by more than this are series colour, not grey axes or grid. */
const SATURATION = 50;
const MIN_COLOURED_PIXELS = 50;

/** Runs in the page (as text: this project compiles without the DOM library). */
const READ_CHARTS = `(() => {
  const specs = JSON.parse(document.getElementById("report-data").textContent).charts;
  const figures = Array.from(document.querySelectorAll("figure.chart[data-chart]"));
  const charts = figures.map((fig) => {
    const canvas = fig.querySelector("canvas");
    let coloured = 0;
    if (canvas) {
      const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 0; i < px.length; i += 4) {
        const hi = Math.max(px[i], px[i + 1], px[i + 2]);
        const lo = Math.min(px[i], px[i + 1], px[i + 2]);
        if (px[i + 3] > 0 && hi - lo > ${SATURATION}) coloured++;
      }
    }
    const h3 = fig.querySelector("h3");
    // A live legend's first row is the x value under the cursor, not a series.
    const live = fig.querySelector(".u-legend.u-live") !== null;
    const legend = Array.from(fig.querySelectorAll(".u-legend .u-series"))
      .slice(live ? 1 : 0)
      .filter((e) => getComputedStyle(e).display !== "none")
      .map((e) => e.querySelector(".u-label").textContent);
    const series = specs[fig.dataset.chart].series.map((s) => s.label);
    return { id: fig.dataset.chart, title: h3 ? h3.textContent : "", coloured, legend, series };
  });
  return { charts, answers: document.querySelectorAll("ol.answers li").length };
})()`;

interface ChartState {
  id: string;
  title: string;
  coloured: number;
  /** Series labels shown in the legend, and those the chart was given. */
  legend: string[];
  series: string[];
}

interface PageReport {
  charts: ChartState[];
  expectedCharts: number;
  consoleErrors: string[];
  requests: string[];
  answers: number;
}

/** Loads the page with every request refused and recorded, and reads what each chart drew. */
async function inspect(browser: Browser, html: string): Promise<PageReport> {
  const context = await browser.newContext();
  const requests: string[] = [];
  const consoleErrors: string[] = [];
  await context.route("**/*", (route) => {
    requests.push(route.request().url());
    return route.abort();
  });
  const page = await context.newPage();
  page.on("request", (r) => {
    if (!requests.includes(r.url())) requests.push(r.url());
  });
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(`page error: ${e.message}`));
  try {
    await page.setContent(html, { waitUntil: "load" });
    await page.waitForFunction("document.body.dataset.charts !== undefined", undefined, { timeout: 30_000 });
    // Let two frames pass so that any drawing uPlot deferred has happened.
    await page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))");
    const state = (await page.evaluate(READ_CHARTS)) as { charts: ChartState[]; answers: number };
    return {
      ...state,
      expectedCharts: (html.match(/data-chart="/g) ?? []).length,
      consoleErrors,
      requests,
    };
  } finally {
    await context.close();
  }
}

/** What is wrong with the page; empty when every check passes. */
function problems(r: PageReport): string[] {
  const out: string[] = [];
  if (r.charts.length !== r.expectedCharts)
    out.push(`${r.charts.length} of ${r.expectedCharts} charts found`);
  for (const c of r.charts) {
    if (c.title === "") out.push(`chart ${c.id} has no title`);
    if (c.coloured < MIN_COLOURED_PIXELS)
      out.push(`chart ${c.id} drew nothing (${c.coloured} coloured pixels)`);
    if (c.legend.join("\n") !== c.series.join("\n"))
      out.push(`chart ${c.id} legend shows [${c.legend.join(", ")}], not [${c.series.join(", ")}]`);
  }
  for (const e of r.consoleErrors) out.push(`console error: ${e}`);
  for (const u of r.requests) out.push(`network request: ${u}`);
  return out;
}

function inject(html: string, script: string): string {
  return html.replace("</body>", `${script}</body>`);
}

function results(): RunResult[] {
  const out: RunResult[] = [];
  for (const strategy of ["per-table", "per-subtree", "bounded", "batched"])
    for (const seed of [1, 2]) out.push(syntheticRun({ strategy, seed, vcpus: 4 }));
  out.push(syntheticRun({ workload: "collapse-storm", strategy: "per-table", rcu: "qsbr" }));
  out.push(syntheticRun({ workload: "collapse-storm", strategy: "per-subtree", rcu: "qsbr" }));
  return out;
}

test("HTML report in headless Chromium: every chart draws, no console error, no request", async () => {
  if (!existsSync(CHROMIUM)) assert.fail(`Chromium is missing at ${CHROMIUM}: ${INSTALL}.`);
  const browser = await chromium.launch({ executablePath: CHROMIUM });
  try {
    const html = renderHtml(results());
    const good = await inspect(browser, html);
    assert.deepEqual(problems(good), []);
    assert.equal(good.charts.length, 10, "five charts for each of two workloads");
    assert.equal(good.answers, 4, "two answers per workload");
    console.log(`# report-browser: ${good.charts.map((c) => `${c.id} ${c.coloured}px`).join(", ")}`);

    // The checks must catch a broken page.
    const blanked = await inspect(
      browser,
      inject(
        html,
        `<script>document.addEventListener("charts-drawn", () => { const c = document.querySelector('[data-chart="w0-vcpus"] canvas'); c.getContext("2d").clearRect(0, 0, c.width, c.height); });</script>`,
      ),
    );
    assert.deepEqual(
      problems(blanked).filter((p) => p.includes("drew nothing")),
      ["chart w0-vcpus drew nothing (0 coloured pixels)"],
    );
    const hidden = await inspect(
      browser,
      inject(
        html,
        `<style>[data-chart="w1-phases"] .u-legend .u-series:nth-child(1) { display: none }</style>`,
      ),
    );
    assert.deepEqual(
      problems(hidden).filter((p) => p.includes("legend")),
      ["chart w1-phases legend shows [per-subtree], not [per-table, per-subtree]"],
    );
    const noisy = await inspect(browser, inject(html, `<script>console.error("deliberate");</script>`));
    assert.ok(
      problems(noisy).some((p) => p.includes("deliberate")),
      "a console error is caught",
    );
    const fetching = await inspect(browser, inject(html, `<img src="https://example.invalid/pixel.png">`));
    assert.ok(
      problems(fetching).some((p) => p.includes("example.invalid")),
      `an external resource is caught: ${problems(fetching).join("; ")}`,
    );
  } finally {
    await browser.close();
  }
});

test("HTML report of real runs (both default workloads, every strategy) draws every chart in Chromium", async () => {
  if (!existsSync(CHROMIUM)) assert.fail(`Chromium is missing at ${CHROMIUM}: ${INSTALL}.`);
  const real: RunResult[] = [];
  for (const strategy of STRATEGIES) {
    const base = { mode: "shared" as const, rcu: "mb" as const, seed: 1, check: true, strategy };
    real.push(
      await executeSpec({
        ...base,
        workload: "dirty-log-perf",
        workloadArgs: ["-v", "2", "-b", "8M", "-s", "anonymous_thp", "-e"],
      }),
    );
    real.push(
      await executeSpec({
        ...base,
        workload: "collapse-storm",
        workloadArgs: ["-v", "2", "-b", "8M", "-i", "1"],
      }),
    );
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM });
  try {
    const page = await inspect(browser, renderHtml(real));
    assert.deepEqual(problems(page), []);
    assert.equal(page.charts.length, 10);
    assert.equal(page.answers, 4);
  } finally {
    await browser.close();
  }
});
