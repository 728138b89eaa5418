/**
 * `stage2 run`, `compare` and `report` as users run them: the compiled CLI in a child process,
 * its exit code, stdout and stderr, and the files it writes.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromeTraceProblems } from "../src/report/perfetto.js";
import { validateRunResult } from "../src/report/schema.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function cli(args: string[], input?: string): Run {
  const r = spawnSync(process.execPath, [MAIN, ...args], { input, encoding: "utf8", timeout: 240_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Bad input: exit 2, nothing on stdout, one line on stderr naming the problem. */
function badInput(r: Run, re: RegExp): void {
  assert.equal(r.code, 2, `exit code (stdout: ${r.out}, stderr: ${r.err})`);
  assert.equal(r.out, "");
  const lines = r.err.trimEnd().split("\n");
  assert.equal(lines.length, 1, r.err);
  assert.doesNotMatch(r.err, /\n\s+at /, "no stack trace");
  assert.match(lines[0] as string, re);
}

let dir = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "stage2-run-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("stage2 run: bad input is one line and exit 2", () => {
  const cases: [string[], RegExp][] = [
    [["run", "dirty-log"], /unknown workload "dirty-log" \(valid: dirty-log-perf, access-tracking/],
    [["run", "dirty-log-perf", "-z"], /dirty-log-perf: unknown flag -z \(valid: -a -b -c/],
    [["run", "dirty-log-perf", "--strategy", "per-page"], /--strategy: "per-page" is not one of per-table/],
    [["run", "dirty-log-perf", "--strategy", "toString"], /--strategy: "toString" is not one of/],
    [["run", "dirty-log-perf", "--mode", "parallel"], /--mode: "parallel" is not one of shared, exclusive/],
    [["run", "dirty-log-perf", "--rcu", "srcu"], /--rcu: "srcu" is not one of mb, qsbr/],
    [["run", "dirty-log-perf", "-v", "0"], /-v \(vCPUs\): 0 is out of range \(valid: 1..64\)/],
    [["run", "dirty-log-perf", "-v", "65"], /-v \(vCPUs\): 65 is out of range \(valid: 1..64\)/],
    [
      ["run", "dirty-log-perf", "-b", "1000"],
      /-b: 1000 bytes is not a positive multiple of the 4096-byte guest page/,
    ],
    [["run", "dirty-log-perf", "-b", "1.5G"], /-b \(bytes per vCPU\): "1.5G" is not a size/],
    [
      ["run", "dirty-log-perf", "-v", "64", "-b", "8G"],
      /-b: 64 vCPUs x 8589934592 bytes exceeds the 256 GiB a run may map/,
    ],
    [
      ["run", "collapse-storm", "-v", "64", "-b", "64G"],
      /-b: 64 vCPUs x 68719476736 bytes exceeds the 256 GiB/,
    ],
    [["run", "dirty-log-perf", "-i", "1"], /-i \(iterations\): 1 is out of range \(valid: 2..100000\)/],
    [["run", "dirty-log-perf", "-w", "101"], /-w \(write percentage\): 101 is out of range/],
    [
      ["run", "dirty-log-perf", "-s", "shmem"],
      /-s \(backing\): "shmem" is not one of anonymous, anonymous_thp/,
    ],
    [
      ["run", "dirty-log-perf", "-x", "3", "-b", "4K"],
      /-x: guest memory cannot be evenly divided into 3 slots/,
    ],
    [
      ["run", "dirty-log-perf", "-r", "4294967296"],
      /-r \(seed\): "4294967296" is not a seed \(valid: 0..4294967295/,
    ],
    [["run", "dirty-log-perf", "-c", "0,1"], /-c \(pin vCPUs to physical CPUs\) is not modelled/],
    [["run", "collapse-storm", "-b", "3M"], /-b: 3145728 bytes is not a multiple of 2M/],
    [["run", "memslot-perf", "-e", "5"], /-e: test 5 \(RW\) is not modelled/],
    [["run", "memslot-perf", "-s", "1"], /-s: slot count cap must be larger than 1 or -1/],
    [["run", "memslot-perf", "-f", "3", "-e", "1"], /-f: first test to run cannot be greater than the last/],
    [["run", "page-table-stress", "-b", "512G"], /-b: 549755813888 bytes is not in 1..256G/],
    [["run", `\u001b[31m${"x".repeat(500)}`], /unknown workload "\\x1b\[31mx+…"/],
    [["compare", "dirty-log-perf", "--vcpus", "0"], /--vcpus: 0 is out of range/],
    [["compare", "dirty-log-perf", "--strategy", "per-table"], /use --strategies, --modes and --rcus/],
    [["report"], /name at least one FILE/],
    [["report", "a\u001b[31mb"], /cannot read a\\x1b\[31mb: ENOENT/],
    [
      ["run", "collapse-storm", "--trace", "/nonexistent/dir/t.json"],
      /--trace: cannot write into \/nonexistent\/dir: ENOENT/,
    ],
    [["run", "--out="], /--out: needs a directory/],
    [["run", "--trace="], /--trace: needs a file name/],
    [["compare", "collapse-storm", "--trace", "t.json"], /--trace: compare writes no trace/],
    [["compare", "collapse-storm", "--plan", "--out", "x"], /--out: --plan runs nothing/],
    [["report", "/nonexistent/results.jsonl"], /cannot read \/nonexistent\/results.jsonl: ENOENT/],
  ];
  for (const [args, re] of cases) {
    test(args.join(" ").slice(0, 80), () =>
      badInput(cli(args), new RegExp(`^stage2 ${args[0]}: ${re.source}`)),
    );
  }
});

describe("stage2 run WORKLOAD", () => {
  test("prints the selftest's lines, the stage2 summary and PASS", () => {
    const r = cli(["run", "dirty-log-perf", "-v", "2", "-b", "4M", "-i", "3"]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^Test iterations: 3$/m);
    assert.match(r.out, /^Populate memory time: \d+\.\d{9}s$/m);
    assert.match(r.out, /^Iteration 3 clear dirty log time: \d+\.\d{9}s$/m);
    assert.match(
      r.out,
      /^Get dirty log over 3 iterations took \d+\.\d{9}s\. \(Avg \d+\.\d{9}s\/iteration\)$/m,
    );
    assert.match(r.out, /^PASS: /m);
  });

  test("-v 64, the most vCPUs a VM takes, each a worker thread with its own RCU reader slot", () => {
    const r = cli(["run", "dirty-log-perf", "-v", "64", "-b", "1M"]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /vcpus=64/);
    assert.match(r.out, /^PASS: /m);
  });

  test("--out naming an existing file is bad input, and nothing runs or prints", async () => {
    const file = join(dir, "a-file");
    await writeFile(file, "x");
    badInput(
      cli(["run", "collapse-storm", "-b", "4M", "--out", file]),
      /^stage2 run: --out: cannot create .*a-file: EEXIST/,
    );
  });

  test("memslot-perf with its default memslot cap (511 slots)", () => {
    const r = cli(["run", "memslot-perf", "-l", "1", "-f", "3", "-e", "4"]);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /^Random seed: 0x1$/m);
    assert.match(r.out, /^Best slot setup time for the whole test area was \d+\.\d{9}s$/m);
  });

  test("access-tracking on THP with the MMU model: idle blocks stay in the TLB, a warning (auto)", () => {
    const r = cli(["run", "access-tracking", "-v", "1", "-b", "4M", "-s", "anonymous_thp"]);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(
      r.out,
      /^WARNING: vCPU0: Too many pages still idle \(\d+ out of 1024\), this will affect performance results\.$/m,
    );
    const strict = cli(["run", "access-tracking", "-v", "1", "-b", "4M", "-s", "anonymous_thp", "-w", "0"]);
    assert.equal(strict.code, 1, strict.out);
    assert.match(strict.out, /^FAIL: .*Too many pages still idle/m);
  });

  test("--help for a workload lists its own flags", () => {
    const r = cli(["run", "memslot-perf", "--help"]);
    assert.equal(r.code, 0);
    assert.match(r.out, /^Usage: stage2 run memslot-perf/);
    assert.match(r.out, /-l SEC/);
  });

  test("--json: one schema-valid object per strategy, no progress or text on stdout", () => {
    const storm = ["run", "collapse-storm", "-v", "2", "-b", "4M", "-i", "1"];
    const r = cli([...storm, "--strategy", "per-table,batched", "--json"]);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trimEnd().split("\n");
    assert.equal(lines.length, 2);
    for (const [i, line] of lines.entries()) {
      const obj = JSON.parse(line);
      assert.deepEqual(validateRunResult(obj), []);
      assert.equal(obj.strategy, ["per-table", "batched"][i]);
      assert.equal(obj.schemaVersion, 1);
      // Every fault takes mmu_lock for read (shared mode); the host's unmaps take it for write.
      assert.ok(obj.lock.readLocks >= obj.faults.total, JSON.stringify(obj.lock));
      assert.ok(obj.lock.writeLocks > 0 && obj.lock.readCounted <= obj.lock.readLocks);
    }
    const exclusive = cli([...storm, "--mode", "exclusive", "--json"]);
    assert.equal(exclusive.code, 0, exclusive.err);
    const x = JSON.parse(exclusive.out);
    assert.ok(x.lock.writeLocks >= x.faults.total, "exclusive faults take the write lock");
    assert.equal(x.lock.readCounted, x.lock.readLocks, "no reader bias without shared mode");
  });

  test("--trace: a Chrome/Perfetto trace with named tracks, nested slices and counters", async () => {
    const file = join(dir, "trace.json");
    const r = cli([
      "run",
      "collapse-storm",
      "-v",
      "2",
      "-b",
      "8M",
      "-i",
      "1",
      "--strategy",
      "per-table",
      "--trace",
      file,
    ]);
    assert.equal(r.code, 0, r.err);
    const trace = JSON.parse(await readFile(file, "utf8"));
    const problems = chromeTraceProblems(trace, {
      threads: ["vCPU 0", "vCPU 1", "host", "RCU callback worker"],
    });
    assert.deepEqual(problems, []);
    const names = new Set((trace.traceEvents as { name: string }[]).map((e) => e.name));
    for (const n of ["fault batch", "grace period", "callback batch", "write lock", "Round 1 collapse 1G"])
      assert.ok(names.has(n), `no "${n}" slice`);
  });
});

describe("user-written strategies in run and compare", () => {
  const ROOT = fileURLToPath(new URL("../..", import.meta.url));
  const EXAMPLE = join(ROOT, "examples", "polled-strategy.mjs");

  test("run --strategy PATH runs the module's strategy and names it", () => {
    const r = cli(["run", "collapse-storm", "-v", "2", "-b", "8M", "-i", "1", "--strategy", EXAMPLE]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /strategy=polled /);
    assert.match(r.out, /^PASS: /m);
  });

  test("compare --plan replays a user strategy by its absolute path", () => {
    const r = cli([
      "compare",
      "collapse-storm",
      "-b",
      "4M",
      "--strategies",
      `per-table,${EXAMPLE}`,
      "--plan",
    ]);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trimEnd().split("\n");
    assert.equal(lines.length, 2);
    assert.ok((lines[1] as string).includes(`--strategy ${EXAMPLE} `), lines[1]);
  });

  test("a strategy that crashes its vCPU fails the run by name, exit 1, no stack", async () => {
    const path = join(dir, "crashing-strategy.mjs");
    await writeFile(
      path,
      `export const name = "crashes";
export default () => ({
  name: "crashes",
  freeUnlinked() { throw new Error("deliberate crash in freeUnlinked"); },
  afterUnlock() {},
  drain() {},
  hasEpilogueWork: () => false,
});
`,
    );
    for (const workload of [
      ["collapse-storm", "-i", "1"],
      ["dirty-log-perf", "-s", "anonymous_thp", "-e"],
    ]) {
      const r = cli(["run", ...workload, "-v", "2", "-b", "8M", "--strategy", path]);
      assert.equal(r.code, 1, `${r.out}\n${r.err}`);
      assert.match(r.err, /^FAIL: the run died: .*--strategy crashes: .*deliberate crash in freeUnlinked/m);
      assert.doesNotMatch(r.err, /internal error/);
    }
    // With --json, stdout holds only result lines (the FAIL goes to stderr): `report` can read it.
    const mixed = cli([
      "run",
      "collapse-storm",
      "-i",
      "1",
      "-v",
      "2",
      "-b",
      "8M",
      "--strategy",
      `per-table,${path}`,
      "--json",
    ]);
    assert.equal(mixed.code, 1, mixed.err);
    for (const line of mixed.out.trimEnd().split("\n"))
      assert.deepEqual(validateRunResult(JSON.parse(line)), []);
    assert.match(mixed.err, /^FAIL: the run died/m);
  });

  test("a missing module is bad input", () => {
    badInput(
      cli(["run", "collapse-storm", "--strategy", "./nope/missing.mjs"]),
      /^stage2 run: --strategy: Cannot load reclaim strategy/,
    );
  });
});

describe("stage2 compare --plan | batch | stage2 report", () => {
  test("every planned line replays on its own, and report merges their JSON lines", async () => {
    const plan = cli([
      "compare",
      "collapse-storm",
      "-b",
      "4M",
      "-i",
      "1",
      "--vcpus",
      "1,2",
      "--strategies",
      "per-table,per-subtree",
      "--plan",
    ]);
    assert.equal(plan.code, 0, plan.err);
    const lines = plan.out.trimEnd().split("\n");
    assert.equal(lines.length, 4);
    for (const l of lines) assert.match(l, /^stage2 run collapse-storm .* --json$/);
    // A batch tool would run each line anywhere; here, one after the other.
    const jsonl: string[] = [];
    for (const l of lines) {
      const args = l.split(" ").slice(1);
      const r = cli(args);
      assert.equal(r.code, 0, `${l}: ${r.err}`);
      jsonl.push(r.out);
    }
    const a = join(dir, "a.jsonl");
    const b = join(dir, "b.jsonl");
    await writeFile(a, jsonl.slice(0, 2).join(""));
    await writeFile(b, jsonl.slice(2).join(""));
    const out = join(dir, "merged");
    const rep = cli(["report", a, b, "--out", out]);
    assert.equal(rep.code, 0, rep.err);
    assert.match(
      rep.out,
      /Per table against per subtree: per-table queued \d+ callbacks and per-subtree \d+/,
    );
    assert.match(rep.out, /callbacks queued/);
    assert.ok(existsSync(join(out, "report.html")));
    assert.equal((await readFile(join(out, "results.jsonl"), "utf8")).trimEnd().split("\n").length, 4);
  });

  test("report names the file and line of a bad result and writes nothing", async () => {
    const bad = join(dir, "bad.jsonl");
    await writeFile(bad, '{"schemaVersion": 1, "workload": "collapse-storm"}\n');
    const out = join(dir, "never");
    const r = cli(["report", bad, "--out", out]);
    assert.equal(r.code, 2);
    assert.match(r.err, /bad\.jsonl:1/);
    assert.ok(!existsSync(out), "nothing written");
  });

  test("compare runs the matrix and answers the two questions from the numbers", () => {
    const r = cli([
      "compare",
      "collapse-storm",
      "-v",
      "2",
      "-b",
      "8M",
      "-i",
      "1",
      "--strategies",
      "per-table,per-subtree",
    ]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /Did pending callbacks grow dangerously\?/);
    assert.match(r.out, /Per table against per subtree/);
    assert.match(r.out, /^callback max\s+µs/m);
  });
});

describe("stage2 run with no arguments", () => {
  test("runs the default, answers the questions and writes the report folder", async () => {
    const out = join(dir, "default");
    const r = cli(["run", "--out", out]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^stage2 run: 8 runs/);
    assert.match(r.out, /dirty-log-perf: Did pending callbacks grow dangerously\?/);
    assert.match(r.out, /collapse-storm: Per table against per subtree/);
    const results = (await readFile(join(out, "results.jsonl"), "utf8")).trimEnd().split("\n");
    assert.equal(results.length, 8);
    for (const l of results) assert.deepEqual(validateRunResult(JSON.parse(l)), []);
    const trace = JSON.parse(await readFile(join(out, "trace.json"), "utf8"));
    assert.deepEqual(chromeTraceProblems(trace), []);
    assert.ok(existsSync(join(out, "report.html")));
    assert.match(
      r.out,
      new RegExp(`Report: ${join(out, "report.html").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`),
    );
  });
});
