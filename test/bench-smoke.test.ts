/**
 * Smoke tests of the multi-worker benchmarks in quick mode: they run end to end, leak nothing
 * (each throws on a leak), and return finite figures. No timing is asserted.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runFaultBench } from "../src/bench/faults.js";
import { runReclaimStudy } from "../src/bench/reclaim.js";
import { STRATEGIES } from "../src/kvm/reclaim/strategy.js";

test("runFaultBench({ quick }) returns finite positive figures for every key", async () => {
  const r = await runFaultBench({ quick: true });
  for (const key of [
    "nsPerFault1v",
    "sharedSpeedup2v",
    "exclusiveSpeedup2v",
    "sharedOverExclusive1v",
  ] as const) {
    assert.ok(Number.isFinite(r[key]) && r[key] > 0, `${key} = ${r[key]}`);
  }
});

test("runReclaimStudy({ quick }) reclaims every unlinked page under every strategy", async () => {
  const { storms } = await runReclaimStudy({ quick: true });
  assert.equal(storms.length, 2 * STRATEGIES.length);
  for (const s of storms) {
    assert.ok(s.pagesReclaimed > 0, `${s.strategy} ${s.blockSize}: nothing reclaimed`);
    if (s.strategy === "per-table")
      assert.equal(s.callbacksQueued, s.pagesReclaimed, "one callback per page");
    if (s.strategy === "batched") assert.equal(s.callbacksQueued, 0, "no callback per object");
  }
  const gib = storms.filter((s) => s.blockSize > 2 * 1024 * 1024);
  const perSubtree = gib.find((s) => s.strategy === "per-subtree")!;
  assert.equal(perSubtree.callbacksQueued, 2, "one callback per unlinked subtree (one per vCPU)");
});
