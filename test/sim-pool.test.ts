/**
 * VcpuPool with workers that are already gone: close() must fail at once, never wait for replies
 * or exit events that cannot come.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Vm } from "../src/kvm/vm.js";
import { getLeaf, LeafResult } from "../src/pgtable/mod.js";
import { VcpuPool } from "../src/sim/host.js";

test("close() after the vCPU workers died rejects at once instead of hanging", async () => {
  const vm = await Vm.create({ granule: 4096, iaBits: 40, poolPages: 256, mode: "shared", vcpus: 2 });
  const pool = new VcpuPool(vm);
  await pool.runPhase([
    { type: "collapse", start: 0, size: 0, blockSize: 2 ** 21 },
    { type: "collapse", start: 0, size: 0, blockSize: 2 ** 21 },
  ]);
  await pool.terminate(); // both workers are gone now, between phases
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    pool.close().then(
      () => "closed",
      (e: Error) => `rejected: ${e.message}`,
    ),
    new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve("hung"), 10_000);
    }),
  ]);
  clearTimeout(timer);
  assert.match(outcome, /^rejected: vCPU \d exited with code/);
  await vm.rcu.close();
});

test("populate with `direct` in a VM with the MMU model calls the handler without a guest access", async () => {
  const GIB = 2 ** 30;
  const size = 2 ** 21;
  const pages = size / 4096;
  const vm = await Vm.create({
    granule: 4096,
    iaBits: 40,
    poolPages: 64,
    mode: "shared",
    vcpus: 1,
    memslots: [{ ipa: GIB, size, hostPa: 2 ** 40, backing: "anonymous" }],
    mmu: true,
  });
  const pool = new VcpuPool(vm);
  const mmu = vm.mmu;
  assert.ok(mmu !== null);
  try {
    const direct = await pool.runPhase([{ type: "populate", start: GIB, size, direct: true }]);
    assert.equal(direct.replies[0]?.faults, pages, "one fault per page");
    assert.equal(mmu.vcpuStats(vm.pgt)[0]?.accesses, 0, "no guest access went through the model");
    const leaf = new LeafResult();
    getLeaf(vm.pgt, GIB + size - 4096, leaf);
    assert.equal(leaf.level, 3, "the last page is mapped");
    vm.unmap(GIB, size);
    const guest = await pool.runPhase([{ type: "populate", start: GIB, size }]);
    assert.equal(guest.replies[0]?.faults, pages);
    // Each page: an access that faults, then its retry, both through the model.
    assert.equal(mmu.vcpuStats(vm.pgt)[0]?.accesses, 2 * pages);
  } finally {
    await pool.close();
    await vm.destroy();
  }
});
