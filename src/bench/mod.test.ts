import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { count, figure, metricTable, usBound } from "./format.js";
import { answer, BENCHES, LABELS, resultText, stormsText } from "./mod.js";
import type { StormResult } from "./reclaim.js";

function storm(
  strategy: StormResult["strategy"],
  blockSize: number,
  over: Partial<StormResult> = {},
): StormResult {
  return {
    strategy,
    blockSize,
    stormMs: 12.5,
    callbacksQueued: 10,
    peakPendingCallbacks: 5,
    peakPendingPages: 40,
    peakPendingKiB: 160,
    callbackP50Ns: 16384,
    callbackP99Ns: 131072,
    callbackMaxNs: 100_000,
    syncFallbacks: 0,
    barrierMs: 0.5,
    pagesReclaimed: 64,
    gracePeriods: 3,
    ...over,
  };
}

describe("format", () => {
  test("log2 percentiles print as bounds, integers with separators, figures with 3 digits", () => {
    assert.equal(usBound(16384), "≤16.4");
    assert.equal(usBound(0), "-");
    assert.equal(count(14028), "14,028");
    assert.equal(figure(7), "7");
    assert.equal(figure(16.384), "16.4");
    assert.equal(figure(0.31712), "0.317");
  });

  test("metricTable() aligns labels, units and right-aligned columns", () => {
    const lines = metricTable(
      ["a", "bbbb"],
      [
        { label: "x", unit: "ms", cells: ["1", "22"] },
        { label: "longer", unit: "", cells: ["333", "4"] },
      ],
    );
    assert.deepEqual(lines, ["              a  bbbb", "x       ms    1    22", "longer      333     4"]);
  });
});

describe("bench registry", () => {
  test("names are looked up in a Map: Object.prototype members select nothing", () => {
    for (const word of ["toString", "constructor", "__proto__"]) assert.equal(BENCHES.get(word), undefined);
    assert.deepEqual([...BENCHES.keys()], ["rcu", "faults", "teardown", "pgtable", "rwlock", "reclaim"]);
  });

  test("resultText() shows labels and units instead of camelCase keys", () => {
    const text = resultText({ readPairNs: 16.25, writePairNs: 18, somethingNew: 3 }).join("\n");
    assert.match(text, /^read lock \+ unlock, uncontended +ns +16\.3$/m);
    assert.match(text, /^write lock \+ unlock, uncontended +ns +18$/m);
    assert.match(text, /^somethingNew +3$/m, "an unlabelled key still shows");
    assert.doesNotMatch(text, /readPairNs/);
    assert.ok(LABELS.has("sharedSpeedup2v"));
  });
});

describe("stormsText()", () => {
  const storms = [
    storm("per-table", 2 ** 21, { peakPendingPages: 40, peakPendingKiB: 160, callbackMaxNs: 131_000 }),
    storm("per-subtree", 2 ** 21, { peakPendingPages: 64, peakPendingKiB: 256, callbackMaxNs: 168_000 }),
    storm("batched", 2 ** 21, {
      peakPendingPages: 64,
      callbackP50Ns: 0,
      callbackP99Ns: 0,
      callbackMaxNs: 0,
      callbacksQueued: 0,
    }),
    storm("per-table", 2 ** 30, { peakPendingPages: 66, peakPendingKiB: 264 }),
    storm("per-subtree", 2 ** 30, { peakPendingPages: 66, peakPendingKiB: 264 }),
  ];

  test("states the question, one table per storm, and answers it in words", () => {
    const text = stormsText(storms).join("\n");
    assert.match(text, /^Question: when vCPUs replace populated tables with blocks/m);
    assert.match(text, /^2 MiB storm: /m);
    assert.match(text, /^1 GiB storm: /m);
    assert.match(text, /^callback p50 +us +≤16\.4 +≤16\.4 +-$/m);
    assert.match(
      text,
      /^Answer: least memory waiting at peak: per-table, 40 pages \(160 KiB\); most: per-subtree, 64 pages\.$/m,
    );
    assert.match(
      text,
      /Longest callback: shortest under per-table \(131 us\), longest under per-subtree \(168 us\)\./,
    );
    assert.match(text, /^Answer: every strategy peaked at 66 pages \(264 KiB\) waiting\.$/m);
  });

  test("answer() says so when no strategy ran a callback", () => {
    const lines = answer([storm("batched", 2 ** 21, { callbackMaxNs: 0 })]);
    assert.match(lines[1] ?? "", /No strategy ran a callback/);
  });
});
