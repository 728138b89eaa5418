/**
 * `npm run bench`: every benchmark in one sitting, the liburcu anchor next to our RCU, and the
 * targets from the issues checked as ratios measured side by side. Prints a table and writes
 * bench/results/latest.json. Never fails on a missed target: misses are reported, and recorded
 * with an explanation in BENCHMARKS.md.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BENCHES, type BenchSpec, contendedWarning, resultText } from "../src/bench/mod.js";
import { raiseInliningBudget } from "../src/common/v8-budget.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const quick = process.argv.includes("--quick");

interface Target {
  name: string;
  value: number;
  limit: number;
  kind: "<=" | ">=" | "<";
  /** Printed after the verdict: what the figure should be read against. */
  note?: string;
}

/** Wall time of `stage2 run` with no arguments (issue 11: under 60 s), in seconds. */
function timeDefaultRun(): number {
  process.stderr.write("stage2 run (no arguments) ...\n");
  const t0 = performance.now();
  // With this process's V8 flags (npm run bench gives the CLI's inlining budget).
  execFileSync(process.execPath, [...process.execArgv, join(root, "dist/src/cli/main.js"), "run"], {
    stdio: ["ignore", "ignore", "inherit"],
    timeout: 600_000,
  });
  return (performance.now() - t0) / 1000;
}

function anchor(): Record<string, number> | null {
  const script = resolve(root, "../shared/anchors/liburcu_bench.sh");
  if (!existsSync(script)) return null;
  try {
    const out = execFileSync("bash", [script], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
      timeout: 300_000,
    });
    const line = out.trim().split("\n").pop() ?? "{}";
    return JSON.parse(line) as Record<string, number>;
  } catch (e) {
    process.stderr.write(`liburcu anchor could not run: ${(e as Error).message.split("\n")[0]}\n`);
    return null;
  }
}

function bench(name: string): BenchSpec {
  const b = BENCHES.get(name);
  if (!b) throw new Error(`no benchmark named ${name}`);
  return b;
}

async function main(): Promise<void> {
  const results: Record<string, Record<string, number>> = {};
  for (const name of ["rwlock", "pgtable", "rcu"]) {
    process.stderr.write(`bench ${name} ...\n`);
    results[name] = (await bench(name).run({ quick })) as Record<string, number>;
  }
  process.stderr.write("liburcu anchor ...\n");
  const urcu = anchor();
  process.stderr.write("bench faults ...\n");
  const faults = await bench("faults").run({ quick });
  results.faults = faults as Record<string, number>;
  process.stderr.write("bench teardown ...\n");
  const teardown = await bench("teardown").run({ quick });
  results.teardown = teardown as Record<string, number>;
  process.stderr.write("bench reclaim ...\n");
  const reclaim = await bench("reclaim").run({ quick });
  const runWallS = quick ? null : timeDefaultRun();

  const targets: Target[] = [];
  const r = results.rcu!;
  const f = results.faults!;
  if (urcu) {
    targets.push({
      name: "mb read pair / liburcu memb",
      value: r.mbReadPairNs! / urcu.memb_read_pair_ns!,
      limit: 1.5,
      kind: "<=",
    });
    targets.push({
      name: "qsbr read pair / liburcu qsbr",
      value: r.qsbrReadPairNs! / urcu.qsbr_read_pair_ns!,
      limit: 3,
      kind: "<=",
    });
    targets.push({
      name: "synchronize idle / liburcu",
      value: r.syncIdleUs! / urcu.sync_idle_us!,
      limit: 5,
      kind: "<=",
    });
    targets.push({
      name: "callPerSec / liburcu call_rcu",
      value: r.callPerSec! / urcu.call_rcu_done_per_s!,
      limit: 0.3,
      kind: ">=",
    });
  }
  const td = results.teardown!;
  // Issue 11's targets (issue 8's mmuOverhead1v <= 1.5 is the looser of the two MMU targets).
  targets.push({ name: "faults: nsPerFault1v", value: f.nsPerFault1v!, limit: 600, kind: "<=" });
  targets.push({
    name: "faults: faultOverRaw1v (vs bare loop)",
    value: f.faultOverRaw1v!,
    limit: 3,
    kind: "<=",
  });
  targets.push({
    name: "faults: sharedSpeedup2v",
    value: f.sharedSpeedup2v!,
    limit: 1.8,
    kind: ">=",
    // What two 1-vCPU VMs sharing nothing got in the same rounds, the shared VM's speedup over
    // theirs, and the pair's throughput over its own two vCPUs' alone: a miss with these near 1
    // is the machine's, not the design's.
    note: `control: two 1-vCPU VMs ${f.independentSpeedup2v!.toFixed(3)}, sharedScaling2v ${f.sharedScaling2v!.toFixed(3)}, sharedEfficiency2v ${f.sharedEfficiency2v!.toFixed(3)} (control ${f.independentEfficiency2v!.toFixed(3)})`,
  });
  targets.push({
    name: "faults: sharedOverExclusive1v",
    value: f.sharedOverExclusive1v!,
    limit: 1.05,
    kind: "<=",
    // The two modes timed in one thread: no two threads' speeds in the ratio.
    note: `both in one thread: ${f.sharedOverExclusiveSameThread1v!.toFixed(3)}`,
  });
  targets.push({ name: "faults: mmuOverhead1v (issue 8)", value: f.mmuOverhead1v!, limit: 1.5, kind: "<=" });
  targets.push({ name: "faults: mmuOverhead1v (issue 11)", value: f.mmuOverhead1v!, limit: 1.3, kind: "<=" });
  if (f.speedup8vOver2v !== undefined)
    targets.push({ name: "faults: speedup8vOver2v", value: f.speedup8vOver2v, limit: 0.8, kind: ">=" });
  targets.push({
    name: "teardown: destroyEntriesPerSec",
    value: td.destroyEntriesPerSec!,
    limit: 50e6,
    kind: ">=",
  });
  targets.push({ name: "teardown: destroyMaxChunkMs", value: td.destroyMaxChunkMs!, limit: 1, kind: "<=" });
  if (runWallS !== null)
    targets.push({ name: "stage2 run (no arguments) wall s", value: runWallS, limit: 60, kind: "<" });

  const machine = `${os.cpus()[0]?.model ?? "?"} x${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`;
  console.log(`# stage2 benchmarks (${new Date().toISOString()}, ${machine}${quick ? ", QUICK" : ""})`);
  for (const [name, res] of Object.entries(results)) {
    console.log(`\n## ${name}`);
    for (const line of (bench(name).text ?? resultText)(res)) console.log(`  ${line}`);
  }
  if (runWallS !== null) console.log(`\n## stage2 run (no arguments)\n  wall time ${runWallS.toFixed(1)} s`);
  if (urcu) {
    console.log("\n## liburcu anchor (same sitting)");
    for (const [k, v] of Object.entries(urcu)) console.log(`  ${k.padEnd(28)} ${v}`);
  } else
    console.log("\n(liburcu anchor not available: ../shared/anchors/liburcu_bench.sh missing or failed)");
  console.log("\n## reclaim (collapse storms, 2 vCPUs)");
  for (const line of (bench("reclaim").text ?? resultText)(reclaim)) console.log(line);
  console.log("\n## targets");
  const missed: string[] = [];
  for (const t of targets) {
    const ok = t.kind === "<=" ? t.value <= t.limit : t.kind === "<" ? t.value < t.limit : t.value >= t.limit;
    if (!ok) missed.push(t.name);
    console.log(
      `  ${ok ? "met " : "MISS"}  ${t.name.padEnd(34)} ${t.value.toFixed(3)} (target ${t.kind} ${t.limit})${t.note ? `; ${t.note}` : ""}`,
    );
  }
  // A verdict, but not an exit status: misses on a loaded machine are recorded, not failures.
  console.log(
    `\n${missed.length === 0 ? "PASS" : "MISS"}: ${targets.length - missed.length} of ${targets.length} targets met` +
      (missed.length > 0 ? ` (missed: ${missed.join("; ")})` : ""),
  );
  const warning = contendedWarning({ independentSpeedup2v: f.independentSpeedup2v! });
  if (warning !== null) console.log(warning);
  const out = join(root, "bench/results");
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, "latest.json"),
    `${JSON.stringify({ date: new Date().toISOString(), machine, quick, results, reclaim, liburcu: urcu, targets, contended: warning !== null }, null, 2)}\n`,
  );
}

// As the CLI does: every benchmark below runs with the raised budget (common/v8-budget.ts).
raiseInliningBudget();
main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
