/**
 * The faults sweep and the teardown benchmark, run small: every configuration runs, the JSON keys
 * issue 11 names are there and finite, and destroy frees the whole tree in bounded chunks. No
 * timing is asserted.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { kernelSpeedup, pairEfficiency, runFaultBench } from "../src/bench/faults.js";
import { CONTENDED_CONTROL, contendedWarning, faultsText, spreadText } from "../src/bench/mod.js";
import { runTeardownBench } from "../src/bench/teardown.js";

const MIB = 2 ** 20;

test("kernelSpeedup() is the cover letter's N * t(1) / t(N), and null where it gave no figure", () => {
  // Populate memory time, before -> after: 1 vCPU 0.21 -> 0.17 s, 8 vCPUs 0.68 -> 0.39 s.
  assert.equal(kernelSpeedup("shared", 1), 1);
  assert.ok(Math.abs((kernelSpeedup("shared", 8) as number) - (8 * 0.17) / 0.39) < 1e-12);
  assert.ok(Math.abs((kernelSpeedup("exclusive", 8) as number) - (8 * 0.21) / 0.68) < 1e-12);
  assert.ok(Math.abs((kernelSpeedup("shared", 48) as number) - (48 * 0.17) / 1.55) < 1e-12);
  assert.equal(kernelSpeedup("shared", 3), null);
  assert.equal(kernelSpeedup("exclusive", 64), null);
});

describe("runFaultBench()", () => {
  test("a sweep runs both modes at every vCPU count (1 and 2 added) and reports medians with spreads", async () => {
    const r = await runFaultBench({ quick: true }, { vcpus: [4], reps: 2, bytesPerVcpu: 2 * MIB });
    assert.equal(r.iaBits, 40, "KVM's default IPA size");
    assert.equal(r.granule, 4096);
    assert.equal(r.faultsPerVcpu, 512);
    assert.equal(r.rcuFlavor, "qsbr", "the kernel's RCU model by default");
    for (const key of [
      "nsPerFault1v",
      "rawNsPerPage",
      "faultOverRaw1v",
      "sharedSpeedup2v",
      "sharedOverExclusive1v",
      "sharedOverExclusiveSameThread1v",
      "mmuOverhead1v",
      "mmuOverheadSameVcpu1v",
      "nsPerPageMmu1v",
      "cpuNsPerFault1v",
      "cpuRawNsPerPage",
      "cpuFaultOverRaw1v",
      "cpuSharedOverExclusive1v",
      "cpuMmuOverhead1v",
      "nsPerFaultOtherRcu1v",
      "otherRcuOverShared1v",
      "independentSpeedup2v",
      "sharedScaling2v",
      "sharedEfficiency2v",
      "independentEfficiency2v",
    ] as const) {
      assert.ok(Number.isFinite(r[key]) && r[key] > 0, `${key} = ${r[key]}`);
      const [min, max] = r.spread[key] as [number, number];
      assert.ok(min <= r[key] && r[key] <= max, `${key}: median ${r[key]} inside its spread ${min}-${max}`);
    }
    assert.equal(r.speedup8vOver2v, undefined, "no 8-vCPU point in this sweep");
    assert.deepEqual(
      r.sweep.map((p) => `${p.mode}/${p.vcpus}`),
      ["shared/1", "shared/2", "shared/4", "exclusive/1", "exclusive/2", "exclusive/4"],
    );
    for (const p of r.sweep) {
      assert.ok(p.nsPerFaultMin <= p.nsPerFault && p.nsPerFault <= p.nsPerFaultMax);
      if (p.vcpus === 1) assert.equal(p.speedup, 1);
    }
    const text = faultsText(r).join("\n");
    assert.match(text, /^4K granule, 40-bit IPA, qsbr RCU, 512 faults per vCPU per round$/m);
    assert.deepEqual(r.nodeFlags, process.execArgv);
    // The test runner gives node no budget: the library raised it for the run.
    assert.deepEqual(r.inliningBudget, { bytes: 3000, source: "stage2" });
    assert.match(text, /^V8 inlining budget 3000 bytes \(set by stage2\)$/m);
    assert.match(
      text,
      /^bare populate loop, same geometry \(the floor\) +ns\/page +[\d.,]+ \([\d.,]+-[\d.,]+\)$/m,
    );
    assert.match(text, /^exclusive +4 +[\d.,]+ +\([\d.,]+-[\d.,]+\) +[\d.,]+ +[\d.,]+ +2\.15$/m);
    assert.match(text, /^shared +4 +[\d.,]+ +\([\d.,]+-[\d.,]+\) +[\d.,]+ +[\d.,]+ +2\.19$/m);
    assert.deepEqual(
      r.sweep.map((p) => p.kernelSpeedup),
      [
        1,
        kernelSpeedup("shared", 2),
        kernelSpeedup("shared", 4),
        1,
        kernelSpeedup("exclusive", 2),
        kernelSpeedup("exclusive", 4),
      ],
    );
    assert.match(text, /^two 1-vCPU VMs at once \/ one \(the control\) +x +[\d.,]+ \([\d.,]+-[\d.,]+\)$/m);
    // A control that shows the host took a core is flagged at the end of the text, else nothing is.
    assert.equal(/^WARNING: /m.test(text), r.independentSpeedup2v < CONTENDED_CONTROL);
    const contended = faultsText({ ...r, independentSpeedup2v: 1.04 });
    assert.match(
      contended.at(-1) as string,
      /^WARNING: two 1-vCPU VMs at once ran only 1\.04x as fast as one/,
    );
    assert.equal(
      faultsText({ ...r, independentSpeedup2v: 1.73 }).some((l) => l.startsWith("WARNING")),
      false,
    );
    // The JSON form is what npm run bench and --json consumers read.
    const json = JSON.parse(JSON.stringify(r)) as Record<string, unknown>;
    assert.equal(typeof json.nsPerFault1v, "number");
  });

  test("with 8 vCPUs in the sweep, speedup8vOver2v is reported; other geometries run", async () => {
    const r = await runFaultBench(
      { quick: true },
      { vcpus: [8], reps: 1, bytesPerVcpu: MIB, granule: 16384, iaBits: 42, rcu: "mb" },
    );
    assert.ok(Number.isFinite(r.speedup8vOver2v) && (r.speedup8vOver2v as number) > 0);
    assert.equal(r.rcuFlavor, "mb");
    assert.ok(Number.isFinite(r.nsPerFaultOtherRcu1v), "shared 1 vCPU under qsbr too");
    assert.equal(r.granule, 16384);
    assert.equal(r.faultsPerVcpu, 64);
    // sharedScaling2v is sharedSpeedup2v over the control within each round: with one round,
    // the three medians are those rounds' figures and agree exactly.
    const expected = r.sharedSpeedup2v / r.independentSpeedup2v;
    assert.ok(
      Math.abs(r.sharedScaling2v - expected) < 1e-9 * expected,
      `${r.sharedScaling2v} vs ${expected}`,
    );
  });

  test("a sweep that does not fit the IPA space is refused before any VM is built", async () => {
    await assert.rejects(
      runFaultBench({ quick: true }, { vcpus: [8], iaBits: 32, bytesPerVcpu: 512 * MIB }),
      /exceed the 32-bit IPA space/,
    );
  });
});

test("contendedWarning() flags a control under 1.3, and never a missing one", () => {
  assert.match(contendedWarning({ independentSpeedup2v: 1.29 }) ?? "", /ran only 1\.29x as fast as one/);
  assert.equal(contendedWarning({ independentSpeedup2v: 1.3 }), null);
  assert.equal(contendedWarning({ independentSpeedup2v: 1.9 }), null);
  assert.equal(contendedWarning({ independentSpeedup2v: Number.NaN }), null);
});

describe("pairEfficiency()", () => {
  test("the pair's throughput over the sum of its threads' alone, whatever speed each ran at", () => {
    // Two threads at 200 ns per fault alone, together 100 ns per fault of wall time: perfect.
    assert.equal(pairEfficiency(100, 200, 200), 1);
    // No faster together than one alone: half.
    assert.equal(pairEfficiency(200, 200, 200), 0.5);
    // A fast thread (100) and a slow one (300): 1/100 + 1/300 = 1/75 is the most they can do.
    assert.ok(Math.abs(pairEfficiency(75, 100, 300) - 1) < 1e-12);
    assert.ok(Math.abs(pairEfficiency(150, 100, 300) - 0.5) < 1e-12);
  });
});

describe("runTeardownBench()", () => {
  test("destroy frees every table of a 1 GiB 4K-mapped stage-2 in chunks of at most 256 pages", async () => {
    const r = await runTeardownBench({ quick: true });
    assert.equal(r.mappedGiB, 1);
    assert.equal(r.leafEntries, 262_144);
    // 512 level-3 tables, one level-2 table, two concatenated start-level pages (40-bit IPA).
    assert.equal(r.tablesFreed, 515);
    assert.ok(r.chunks >= Math.ceil(513 / 256) + 1, `${r.chunks} chunks`);
    for (const key of ["destroyEntriesPerSec", "destroyMaxChunkMs", "destroyMs", "coldMaxChunkMs"] as const)
      assert.ok(Number.isFinite(r[key]) && r[key] > 0, `${key} = ${r[key]}`);
    assert.ok(r.destroyMaxChunkMs <= r.destroyMs, "the longest chunk is one of the chunks");
    assert.match(spreadText(r).join("\n"), /^longest chunk +ms +[\d.]+ \([\d.]+-[\d.]+\)$/m);
  });
});

describe("stage2 bench faults / teardown flags", () => {
  const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8" });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  test("--vcpus, --size, --reps, --ipa-bits, --granule and --rcu reach the benchmark; --json keeps the raw keys", () => {
    const r = cli([
      "bench",
      "faults",
      "--json",
      "--vcpus",
      "2,3",
      "--size",
      "1M",
      "--reps",
      "1",
      "--ipa-bits",
      "39",
      "--granule",
      "16k",
      "--rcu",
      "MB",
    ]);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as Record<string, unknown>;
    for (const key of [
      "nsPerFault1v",
      "rawNsPerPage",
      "sharedSpeedup2v",
      "sharedOverExclusive1v",
      "mmuOverhead1v",
    ])
      assert.equal(typeof j[key], "number", key);
    assert.equal(j.iaBits, 39);
    assert.equal(j.granule, 16384, "choices are taken without case");
    assert.equal(j.rcuFlavor, "mb");
    assert.equal(j.faultsPerVcpu, 64);
    assert.deepEqual(
      (j.sweep as { vcpus: number }[]).map((p) => p.vcpus),
      [1, 2, 3, 1, 2, 3],
    );
  });

  test("run through its first line, as npx stage2 runs it, the CLI raises V8's inlining budget", () => {
    // Executes main.js itself (`#!/usr/bin/env node`), with no node flag.
    const args = ["bench", "faults", "--json", "--vcpus", "1", "--size", "1M", "--reps", "1"];
    const r = spawnSync(MAIN, args, { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { nodeFlags: string[]; inliningBudget: unknown };
    assert.deepEqual(j.nodeFlags, []);
    assert.deepEqual(j.inliningBudget, { bytes: 3000, source: "stage2" });
    // A budget given to node wins, and the table says what it costs.
    const given = spawnSync(
      process.execPath,
      ["--max-inlined-bytecode-size-cumulative=920", MAIN, ...args.filter((a) => a !== "--json")],
      { encoding: "utf8" },
    );
    assert.equal(given.status, 0, given.stderr);
    assert.match(
      given.stdout,
      /^V8 inlining budget 920 bytes \(given to node, below stage2's: figures vary with JIT luck\)$/m,
    );
  });

  test("bad values name the flag; the faults flags are refused on other benchmarks", () => {
    for (const [args, message] of [
      [["bench", "faults", "--vcpus", "1,0"], /--vcpus: 0 is not in 1\.\.64/],
      [["bench", "faults", "--size", "1000"], /--size: "1000" is not a whole number of MiB/],
      [["bench", "faults", "--granule", "8K"], /--granule: "8K" is not one of 4K, 16K, 64K/],
      [["bench", "faults", "--rcu", "srcu"], /--rcu: "srcu" is not one of qsbr, mb/],
      [["bench", "rwlock", "--vcpus", "2"], /apply to bench faults only/],
    ] as [string[], RegExp][]) {
      const r = cli(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, message);
    }
  });
});
