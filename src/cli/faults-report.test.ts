import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { StressRunReport } from "../sim/stress-run.js";
import { faultsReport } from "./commands/faults.js";

/** The fields the report reads; the rest of a StressRunReport does not matter here. */
function report(strategy: string, problems: { uaf?: number; leaked?: number; audit?: string[] } = {}) {
  return {
    options: { strategy },
    wallMs: 812.4,
    faults: { faults: 14028, again: 92 },
    hostOps: 208,
    lock: {
      readAcquisitions: 30_112,
      readCounted: 21_514,
      readContended: 81,
      writeAcquisitions: 208,
      writeWaitMaxNs: 1_250_000,
    },
    reclaim: {
      subtrees: 23,
      callbacksQueued: 27,
      pagesDeferred: 27,
      peakPendingCallbacks: 19,
      peakPendingPages: 19,
      peakPendingBytes: 19 * 4096,
      callbackNs: { p50: 8192, p99: 131072, max: 152_000, count: 27 },
      syncFallbacks: 0,
    },
    destroy: {
      gracePeriods: 5,
      barrierMs: 0.317,
      leakedPages: Array.from({ length: problems.leaked ?? 0 }, (_, i) => i),
    },
    uafDetected: problems.uaf ?? 0,
    auditProblems: problems.audit ?? [],
    pgtable: { corrupt: 0 },
    firstFault: problems.uaf ? "use-after-free: page 12 generation 3 != 4" : null,
  } as unknown as StressRunReport;
}

describe("faultsReport()", () => {
  test("all clean: a table, then PASS with the seed as the last line", () => {
    const { lines, ok } = faultsReport([report("per-table"), report("bounded")], 42);
    assert.equal(ok, true);
    assert.match(lines[0] ?? "", /^ +per-table +bounded$/);
    assert.ok(
      lines.some((l) => /^callback p50 +us +≤8\.19 +≤8\.19$/.test(l)),
      lines.join("\n"),
    );
    assert.equal(lines.at(-1), "PASS: 2 runs, no use-after-free, leak or table damage (seed 42)");
    for (const row of [
      /^mmu_lock read locks +30,112 +30,112$/,
      /^ {2}counted \(bias off\) +21,514 +21,514$/,
      /^ {2}that waited +81 +81$/,
      /^mmu_lock write locks +208 +208$/,
      /^ {2}longest wait +us +1,250 +1,250$/,
    ])
      assert.ok(
        lines.some((l) => row.test(l)),
        `${row}\n${lines.join("\n")}`,
      );
  });

  test("a use-after-free or a leak: FAIL last, the failed run named with its first problem", () => {
    const { lines, ok } = faultsReport(
      [
        report("per-table"),
        report("per-subtree", { uaf: 1, leaked: 2 }),
        report("batched", { audit: ["refcount of page 7 is 3, expected 2"] }),
      ],
      7,
    );
    assert.equal(ok, false);
    assert.equal(lines.at(-1), "FAIL: 2 of 3 runs failed their checks (replay with --seed 7)");
    assert.ok(
      lines.includes(
        "  per-subtree: 1 use-after-free, 2 leaked pages (first: use-after-free: page 12 generation 3 != 4)",
      ),
    );
    assert.ok(lines.includes("  batched: 1 audit problem (first: refcount of page 7 is 3, expected 2)"));
    assert.match(lines.find((l) => l.startsWith("result")) ?? "", /^result +pass +FAIL +FAIL$/);
  });
});
