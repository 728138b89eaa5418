/** Smoke test of the RCU benchmark: a quick run yields every key as a finite positive number. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runRcuBench } from "../src/bench/rcu.js";

test("runRcuBench({ quick: true }) reports every measurement as a finite positive number", async () => {
  const r = await runRcuBench({ quick: true });
  for (const key of [
    "mbReadPairNs",
    "qsbrReadPairNs",
    "syncIdleUs",
    "syncWithReaderUs",
    "callPerSec",
  ] as const) {
    assert.ok(Number.isFinite(r[key]) && r[key] > 0, `${key} = ${r[key]}`);
  }
});
