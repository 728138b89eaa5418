/**
 * Output people read: `faults` prints an aligned table with units and a PASS/FAIL verdict,
 * `bench` prints human labels (the raw keys stay in --json), and nothing draws a progress line
 * when stderr is not a terminal.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

function cli(args: string[]) {
  const env = { ...process.env };
  delete env.STAGE2_SEED;
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8", env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("stage2 faults output", () => {
  const run = cli([
    "faults",
    "--strategy",
    "per-table",
    "--iterations",
    "300",
    "--seed",
    "11",
    "--region",
    "4",
  ]);

  test("a table with one column per strategy, units beside labels, lines under 110 columns", () => {
    assert.equal(run.code, 0, run.err);
    const lines = run.out.trimEnd().split("\n");
    assert.match(lines[0] ?? "", /^ +per-table$/);
    assert.match(run.out, /^run time +ms +[\d.,]+$/m);
    assert.match(run.out, /^peak waiting: pages +pages +[\d,]+$/m);
    // mmu_lock: the host's write locks (one per host operation at least) and the read locks,
    // of which the counted ones are a part.
    const figureOf = (label: string) =>
      Number(
        (run.out.match(new RegExp(`^${label} +(?:us +)?([\\d,.]+)$`, "m"))?.[1] ?? "NaN").replace(/,/g, ""),
      );
    const reads = figureOf("mmu_lock read locks");
    const counted = figureOf("  counted \\(bias off\\)");
    assert.ok(reads > 0 && counted >= 0 && counted <= reads, `${counted} counted of ${reads} read locks`);
    assert.ok(
      figureOf("mmu_lock write locks") >= figureOf("host operations"),
      "a write lock per host operation",
    );
    assert.ok(figureOf("  longest wait") >= 0);
    assert.match(run.out, /^callback p50 +us +(≤[\d.,]+|-)$/m, "log2 percentiles shown as bounds");
    for (const line of lines) assert.ok(line.length <= 110, `${line.length} columns: ${line}`);
    assert.doesNotMatch(run.out, /\d(p|cb)\b|GPs/, "no unexplained abbreviations");
  });

  test("ends with a PASS line naming the seed; the seed goes to stderr first", () => {
    assert.match(
      run.out.trimEnd().split("\n").at(-1) ?? "",
      /^PASS: 1 run, no use-after-free, leak or table damage \(seed 11\)$/,
    );
    assert.match(run.err, /^stage2 faults: seed 11 \(replay with --seed 11\)/);
  });

  test("no progress line or escape sequence when stderr is not a terminal", () => {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: checking for redraw characters
    assert.doesNotMatch(run.err, /[\r\u001b]/);
  });

  test("--help explains every row", () => {
    const help = cli(["faults", "--help"]).out;
    for (const row of [
      "run time",
      "retries (AGAIN)",
      "mmu_lock read locks",
      "counted (bias off)",
      "mmu_lock write locks",
      "peak waiting: pages",
      "callback p50",
      "grace periods",
    ])
      assert.ok(help.includes(row), row);
  });

  test("--json keeps the raw report and prints no table or verdict", () => {
    const r = cli([
      "faults",
      "--strategy",
      "bounded",
      "--iterations",
      "200",
      "--seed",
      "3",
      "--region",
      "4",
      "--json",
    ]);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as { seed: number; reports: { reclaim: { callbackNs: unknown } }[] };
    assert.equal(j.seed, 3);
    assert.equal(j.reports.length, 1);
    assert.ok(j.reports[0]?.reclaim.callbackNs);
  });
});

describe("stage2 bench output", () => {
  test("rwlock: human labels and units as text; camelCase keys only in --json", () => {
    const text = cli(["bench", "rwlock", "--quick"]);
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, /^read lock \+ unlock, uncontended +ns +[\d.,]+$/m);
    assert.doesNotMatch(text.out, /readPairNs/);
    const json = cli(["bench", "rwlock", "--json", "--quick"]);
    const j = JSON.parse(json.out) as Record<string, number>;
    assert.deepEqual(Object.keys(j).sort(), [
      "biasedReadPair1tNs",
      "biasedReadPair2tNs",
      "biasedReadPairNs",
      "biasedReadSpeedup2t",
      "readPair1tNs",
      "readPair2tNs",
      "readPairNs",
      "readSpeedup2t",
      "writePairNs",
    ]);
  });

  test("--help carries the legend of every key and says what reclaim answers", () => {
    const help = cli(["bench", "--help"]).out;
    assert.match(help, /^ +sharedSpeedup2v +throughput 2 vCPUs \/ 1 vCPU, shared \(x\)$/m);
    assert.match(help, /bench reclaim answers: /);
  });
});
