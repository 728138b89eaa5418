/** Smoke test of the page-table benchmark (src/bench/pgtable.ts) in its quick mode. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runPgtableBench } from "../src/bench/pgtable.js";

test("runPgtableBench({ quick: true }) returns a finite, positive figure for every key", () => {
  const result = runPgtableBench({ quick: true });
  const keys = [
    "mappedMiB",
    "map4kNsPerPage",
    "map4kSharedNsPerPage",
    "map4kRangeNsPerPage",
    "map2mNsPerBlock",
    "map2mNsPer4kPage",
    "unmap4kNsPerPage",
    "unmap4kRangeNsPerPage",
    "unmap2mNsPerBlock",
    "getLeafNs",
    "tableBytesPerGiB4k",
    "tableBytesPerGiB2m",
  ];
  assert.deepEqual(Object.keys(result).sort(), [...keys].sort());
  for (const [key, value] of Object.entries(result)) {
    assert.ok(typeof value === "number" && Number.isFinite(value) && value > 0, `${key} = ${value}`);
  }
  // 64 MiB of 4K pages need 1 L2 and 32 L3 tables; 2M blocks need the L2 table only.
  assert.equal(result.tableBytesPerGiB4k, 33 * 4096 * 16);
  assert.equal(result.tableBytesPerGiB2m, 4096 * 16);
});
