/**
 * Completion of a broadcast TLBI across threads (TLBI ..IS; DSB ISH): the invalidating thread
 * returns only after every vCPU acknowledged, a vCPU in the middle of an access is waited for (no
 * one acknowledges on its behalf), and an idle vCPU is drained by the poster itself.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { C } from "../src/mmu/layout.js";
import { Mmu, MmuTlbi } from "../src/mmu/mod.js";
import { makeFixture } from "../src/testing/pgtable-harness.js";

test("a TLBI completes only after a vCPU inside an access has left it; idle vCPUs are drained", async () => {
  const { pgt } = makeFixture({ iaBits: 40 });
  const mmu = Mmu.create({ vcpus: 2 });
  const tlbi = new MmuTlbi(mmu, pgt, pgt.maint, -1);
  const flags = new Int32Array(new SharedArrayBuffer(16));
  const worker = new Worker(new URL("./mmu-tlbi-worker.js", import.meta.url), {
    workerData: { mmu: mmu.handle, pgt: pgt.handle, flags: flags.buffer },
  });
  const exited = new Promise((resolve, reject) => {
    worker.once("exit", resolve);
    worker.once("error", reject);
  });
  while (Atomics.load(flags, 0) === 0) await new Promise((r) => setTimeout(r, 1));
  tlbi.flushVmid(pgt.vmid);
  assert.equal(Atomics.load(flags, 2), 1, "flushVmid returned while vCPU 0 was still inside its access");
  assert.equal(Atomics.load(flags, 1), 0, "someone acknowledged for vCPU 0 while it was inside an access");
  const [t0, t1] = mmu.tlbs(pgt);
  assert.ok(t0 && t1);
  assert.ok(Atomics.load(mmu.words, t0.ctl + C.ACKED) >= 1);
  assert.ok(Atomics.load(mmu.words, t1.ctl + C.ACKED) >= 1);
  assert.equal(Atomics.load(mmu.words, t1.ctl + C.SERVICED), 1, "the idle vCPU 1 was drained by the poster");
  await exited;
});
