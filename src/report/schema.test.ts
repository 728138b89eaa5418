import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type {
  CheckFigures,
  LockFigures,
  PhaseTime,
  ReclaimFigures,
  RunResult,
  Sample,
  VcpuFigures,
} from "../experiment/result.js";
import { syntheticRun } from "./fixture.js";
import {
  parseRunResults,
  RUN_RESULT_SCHEMA_PATH,
  readRunResultFiles,
  runResultSchema,
  validateRunResult,
} from "./schema.js";

// The property names of each interface in result.ts. `Record<keyof T, true>` makes the compiler
// refuse a missing or extra name, so a field added to result.ts fails the build until the schema
// test below is satisfied too.
const RUN: Record<keyof RunResult, true> = {
  schemaVersion: true,
  workload: true,
  strategy: true,
  mode: true,
  rcu: true,
  vcpus: true,
  seed: true,
  command: true,
  params: true,
  guestMode: true,
  phases: true,
  faults: true,
  perVcpu: true,
  reclaim: true,
  lock: true,
  callbackHistogramNs: true,
  samples: true,
  dirtyPages: true,
  checks: true,
  lines: true,
  trace: true,
  machine: true,
  startedAt: true,
  wallSeconds: true,
};
const OPTIONAL_RUN = ["dirtyPages", "trace", "lock"];
const LOCK: Record<keyof LockFigures, true> = {
  readLocks: true,
  readCounted: true,
  readWaited: true,
  writeLocks: true,
  writeWaited: true,
  writeWaitMaxUs: true,
};
const RECLAIM: Record<keyof ReclaimFigures, true> = {
  callbacks: true,
  peakPendingCallbacks: true,
  peakPendingBytes: true,
  peakPendingPages: true,
  callbackP50Us: true,
  callbackP99Us: true,
  callbackMaxUs: true,
  gracePeriods: true,
  barrierMs: true,
  pagesDeferred: true,
  subtrees: true,
  syncFallbacks: true,
  callbackTotalUs: true,
};
const PHASE: Record<keyof PhaseTime, true> = { name: true, seconds: true };
const SAMPLE: Record<keyof Sample, true> = { tMs: true, pendingPages: true, pendingCallbacks: true };
const VCPU: Record<keyof VcpuFigures, true> = { vcpu: true, faults: true, again: true, faultsPerSec: true };
const CHECKS: Record<keyof CheckFigures, true> = {
  uaf: true,
  leakedPages: true,
  auditProblems: true,
  failures: true,
  passed: true,
};

interface ObjectSchema {
  properties: Record<string, unknown>;
  required: string[];
  additionalProperties: boolean;
}

test("run-result schema lists exactly the fields of result.ts, all required but the optional ones", () => {
  const schema = runResultSchema() as unknown as ObjectSchema & { $defs: Record<string, ObjectSchema> };
  const check = (name: string, s: ObjectSchema, keys: object, optional: string[] = []) => {
    assert.deepEqual(Object.keys(s.properties).sort(), Object.keys(keys).sort(), `${name} properties`);
    assert.deepEqual(
      [...s.required].sort(),
      Object.keys(keys)
        .filter((k) => !optional.includes(k))
        .sort(),
      `${name} required`,
    );
    assert.equal(s.additionalProperties, false, `${name} refuses unknown properties`);
  };
  check("RunResult", schema, RUN, OPTIONAL_RUN);
  check("ReclaimFigures", schema.$defs.reclaim!, RECLAIM);
  check("LockFigures", schema.$defs.lock!, LOCK);
  check("PhaseTime", schema.$defs.phase!, PHASE);
  check("Sample", schema.$defs.sample!, SAMPLE);
  check("VcpuFigures", schema.$defs.vcpu!, VCPU);
  check("CheckFigures", schema.$defs.checks!, CHECKS);
});

test("validateRunResult() accepts well-formed results of every strategy, with and without options", () => {
  for (const strategy of ["per-table", "per-subtree", "bounded", "batched"]) {
    const r = syntheticRun({ strategy });
    assert.deepEqual(validateRunResult(r), [], strategy);
    const { dirtyPages: _, ...withoutDirty } = r;
    assert.deepEqual(validateRunResult(withoutDirty), []);
    // Results written before mmu_lock's figures were recorded stay readable.
    const { lock: __, ...withoutLock } = r;
    assert.deepEqual(validateRunResult(withoutLock), []);
    assert.deepEqual(validateRunResult({ ...r, trace: { events: 10, dropped: 0 } }), []);
  }
});

test("validateRunResult() names the path of what is wrong", () => {
  const good = syntheticRun();
  const cases: [string, (r: RunResult) => unknown, RegExp][] = [
    [
      "missing figure",
      (r) => {
        delete (r.reclaim as Partial<ReclaimFigures>).callbackP99Us;
        return r;
      },
      /^\/reclaim: must have required property 'callbackP99Us'$/,
    ],
    ["wrong type", (r) => ({ ...r, vcpus: "4" }), /^\/vcpus: must be integer$/],
    ["bad enum", (r) => ({ ...r, mode: "parallel" }), /^\/mode: must be equal to one of the allowed values/],
    [
      "negative count deep inside",
      (r) => {
        r.samples[3]!.pendingPages = -1;
        return r;
      },
      /^\/samples\/3\/pendingPages: must be >= 0$/,
    ],
    ["unknown property", (r) => ({ ...r, extra: 1 }), /^\(root\): unknown property "extra"$/],
    ["bad date", (r) => ({ ...r, startedAt: "yesterday" }), /^\/startedAt: must match format "date-time"$/],
    ["other version", (r) => ({ ...r, schemaVersion: 2 }), /^\/schemaVersion: 2 is not supported/],
  ];
  for (const [what, breakIt, want] of cases) {
    const problems = validateRunResult(breakIt(structuredClone(good)));
    assert.ok(
      problems.some((p) => want.test(p)),
      `${what}: ${JSON.stringify(problems)}`,
    );
  }
  assert.notDeepEqual(validateRunResult(null), []);
});

test("parseRunResults() reads JSON lines and names the line of a bad one", () => {
  const a = syntheticRun({ strategy: "per-table" });
  const b = syntheticRun({ strategy: "bounded" });
  const text = `${JSON.stringify(a)}\n\n${JSON.stringify(b)}\r\n`;
  assert.deepEqual(
    parseRunResults(text, "runs.jsonl").map((r) => r.strategy),
    ["per-table", "bounded"],
  );
  assert.throws(() => parseRunResults(`${JSON.stringify(a)}\n{oops`, "x.jsonl"), /x\.jsonl:2: not JSON/);
  assert.throws(
    () => parseRunResults(JSON.stringify({ ...a, rcu: "srcu" }), "y.jsonl"),
    /y\.jsonl:1: not a stage2 run result: \/rcu: must be equal to one of the allowed values/,
  );
});

test("the schema ships in the package", () => {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8"));
  assert.ok((pkg.files as string[]).includes("schema"), "package.json files lists schema/");
  assert.ok(RUN_RESULT_SCHEMA_PATH.endsWith("/schema/run-result.schema.json"));
});

test("readRunResultFiles() merges the files in order and refuses an empty one", () => {
  const dir = mkdtempSync(join(tmpdir(), "stage2-report-"));
  try {
    const a = join(dir, "a.jsonl");
    const b = join(dir, "b.jsonl");
    const empty = join(dir, "empty.jsonl");
    writeFileSync(a, `${JSON.stringify(syntheticRun({ strategy: "per-table" }))}\n`);
    writeFileSync(
      b,
      [1, 2].map((seed) => JSON.stringify(syntheticRun({ strategy: "bounded", seed }))).join("\n"),
    );
    writeFileSync(empty, "\n");
    assert.deepEqual(
      readRunResultFiles([a, b]).map((r) => `${r.strategy}/${r.seed}`),
      ["per-table/1", "bounded/1", "bounded/2"],
    );
    assert.throws(() => readRunResultFiles([a, empty]), /empty\.jsonl: it holds no run result/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
