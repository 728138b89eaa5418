/**
 * A VM driven from code: two vCPU worker threads fault a region in parallel (shared mode: mmu_lock
 * for read, RCU read side), the host unmaps part of it, the vCPUs collapse the region into 2 MiB
 * blocks (unlinking table subtrees, reclaimed after grace periods), then teardown and leak check.
 *
 *   node examples/vm-from-code.mjs
 */
import { VcpuPool, Vm } from "stage2";

const MIB = 1 << 20;
const GIB = 1 << 30;
const size = 8 * MIB;

const vm = await Vm.create({
  granule: 4096,
  iaBits: 40,
  poolPages: 2048,
  debug: true, // poison freed tables; walkers detect use-after-free
  mode: "shared",
  vcpus: 2,
  memslots: [{ ipa: GIB, size: GIB, hostPa: 0x40_0000_0000, backing: "anonymous" }],
  reclaim: { strategy: "per-subtree" },
});
const vcpus = new VcpuPool(vm);
const half = size / 2;
const populate = await vcpus.runPhase([
  { type: "populate", start: GIB, size: half },
  { type: "populate", start: GIB + half, size: half },
]);
vm.unmap(GIB, 2 * MIB); // an MMU-notifier invalidation, under the write lock
const collapse = await vcpus.runPhase([
  { type: "collapse", start: GIB, size, blockSize: 2 * MIB },
  { type: "collapse", start: GIB, size, blockSize: 2 * MIB },
]);
const closed = await vcpus.close();
const faults = populate.replies.reduce((n, r) => n + r.faults, 0);
const reclaim = vm.reclaimSnapshot();
const report = await vm.destroy();
const uaf = closed.reduce((n, c) => n + c.uaf, 0);
console.log(
  `vm: ${faults} faults in ${populate.wallMs.toFixed(1)} ms, ${collapse.replies.length} vCPUs collapsed, ` +
    `${reclaim.subtrees} subtrees unlinked, ${reclaim.pagesReclaimed} pages reclaimed after grace periods, ` +
    `${uaf} use-after-free, ${report.leakedPages.length} pages leaked`,
);
if (uaf > 0 || report.leakedPages.length > 0) process.exitCode = 1;
