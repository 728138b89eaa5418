import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveRcuOptions } from "./options.js";

test("resolveRcuOptions() fills in Linux-like flood defaults", () => {
  const o = resolveRcuOptions();
  assert.equal(o.flavor, "mb");
  assert.deepEqual(
    [o.batchLimit, o.highWater, o.lowWater, o.floodBatchLimit, o.floodShift],
    [10, 10000, 100, 10000, 7],
  );
  assert.equal(o.batchTimeMs, 3);
});

test("resolveRcuOptions() rejects bad values with typed errors", () => {
  assert.throws(() => resolveRcuOptions({ flavor: "bp" as "mb" }), RangeError);
  assert.throws(() => resolveRcuOptions({ maxThreads: 0 }), /maxThreads 0 is not an integer in 1\.\.4096/);
  assert.throws(() => resolveRcuOptions({ batchLimit: 1.5 }), RangeError);
  assert.throws(() => resolveRcuOptions({ stallTimeoutMs: "1" as unknown as number }), TypeError);
  assert.throws(
    () => resolveRcuOptions({ lowWater: 50, highWater: 50 }),
    /lowWater 50 must be below highWater 50/,
  );
  assert.throws(() => resolveRcuOptions({ plugins: [{} as { url: string }] }), TypeError);
});
