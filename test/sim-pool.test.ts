/**
 * VcpuPool with workers that are already gone: close() must fail at once, never wait for replies
 * or exit events that cannot come.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Vm } from "../src/kvm/vm.js";
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
