/**
 * The VM model through the real fault path: vCPUs in worker threads fault, the main thread (or a
 * host worker) is the host. Dirty-log bitmaps in both protect modes, collapse after logging is
 * disabled (a table unlinked by a shared walk, reclaimed through each strategy), access tracking,
 * invalidations seen by faults, memslots created and unmapped from another thread.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { pteValid, S2_XN } from "../src/arch/descriptor.js";
import { Errno } from "../src/common/errno.js";
import { FaultKind } from "../src/kvm/fault.js";
import { STRATEGIES } from "../src/kvm/reclaim/strategy.js";
import { Vm, type VmOptions } from "../src/kvm/vm.js";
import { auditTable } from "../src/pgtable/audit.js";
import { getLeaf, LeafResult } from "../src/pgtable/mod.js";
import type { KvmHostCommand } from "./kvm-host-worker.js";
import { countBits, ScriptedVcpu } from "./kvm-helpers.js";

const P = 4096;
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const leaf = new LeafResult();

async function withVm(
  opts: Partial<VmOptions>,
  body: (vm: Vm, vcpu: ScriptedVcpu) => Promise<void>,
): Promise<Vm> {
  const vm = await Vm.create({
    granule: P,
    iaBits: 40,
    poolPages: 2048,
    debug: true,
    mode: "shared",
    vcpus: 1,
    memslots: [{ ipa: GIB, size: 8 * MIB, backing: "anonymous_thp" }],
    ...opts,
  });
  const vcpu = new ScriptedVcpu(vm, 0);
  try {
    await body(vm, vcpu);
  } finally {
    await vcpu.close();
    vm.pgt.flushStats();
    assert.deepEqual(auditTable(vm.pgt).problems, []);
    const r = await vm.destroy();
    assert.deepEqual(r.leakedPages, [], "teardown leaked pages");
  }
  return vm;
}

/** The vCPU writes the given pages of the slot at GIB. */
async function write(vcpu: ScriptedVcpu, pages: number[]): Promise<void> {
  for (const p of pages) assert.ok((await vcpu.run({ op: "touch", ipa: GIB + p * P, write: true })) >= 0);
}

function bits(log: Uint32Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < log.length * 32; i++) if (((log[i >>> 5] as number) >>> (i & 31)) & 1) out.push(i);
  return out;
}

function levelAt(vm: Vm, ipa: number): number {
  assert.equal(getLeaf(vm.pgt, ipa, leaf), Errno.OK);
  return pteValid(leaf.pte) ? leaf.level : -1;
}

test("getDirtyLog() without manual protect reports each write once per round (-g)", async () => {
  await withVm({}, async (vm, vcpu) => {
    await vcpu.run({ op: "touchRange", start: GIB, size: 8 * MIB, write: true });
    assert.equal(levelAt(vm, GIB), 2, "THP populates blocks");
    vm.enableDirtyLogging(0);
    await write(vcpu, [0, 1, 700, 2047]);
    assert.deepEqual(bits(vm.getDirtyLog(0)), [0, 1, 700, 2047]);
    assert.deepEqual(bits(vm.getDirtyLog(0)), [], "get cleared and re-protected");
    await write(vcpu, [1, 3]);
    assert.deepEqual(bits(vm.getDirtyLog(0)), [1, 3], "re-protected pages fault and log again");
    assert.equal(levelAt(vm, GIB + 3 * P), 3, "a write while logging maps a page");
  });
});

test("manual protect, initially set: all set, clear re-protects, writes after the clear are logged", async () => {
  await withVm({}, async (vm, vcpu) => {
    await vcpu.run({ op: "touchRange", start: GIB, size: 8 * MIB, write: true });
    vm.enableDirtyLogging(0, { manualProtect: true });
    assert.equal(countBits(vm.getDirtyLog(0)), 2048);
    await write(vcpu, [10]); // before any clear: the block is still writable, no fault, bit already set
    assert.equal(vm.clearDirtyLog(0, 0, 2048), 2048);
    assert.deepEqual(bits(vm.getDirtyLog(0)), []);
    await write(vcpu, [10, 64, 1500]);
    assert.deepEqual(bits(vm.getDirtyLog(0)), [10, 64, 1500], "get does not clear");
    assert.deepEqual(bits(vm.getDirtyLog(0)), [10, 64, 1500]);
    const mask = new Uint32Array(2);
    mask[0] = 1 << 10;
    assert.equal(vm.clearDirtyLog(0, 0, 64, mask), 1);
    assert.deepEqual(bits(vm.getDirtyLog(0)), [64, 1500]);
    await write(vcpu, [10]);
    assert.deepEqual(bits(vm.getDirtyLog(0)), [10, 64, 1500], "the cleared page was protected again");
  });
});

for (const strategy of STRATEGIES) {
  test(`disableDirtyLogging() then a write fault collapses the page table into a block (${strategy})`, async () => {
    const vm = await withVm(
      { reclaim: { strategy }, rcuFlavor: strategy === "batched" ? "qsbr" : "mb" },
      async (vm, vcpu) => {
        await vcpu.run({ op: "touchRange", start: GIB, size: 2 * MIB, write: true });
        vm.enableDirtyLogging(0, { eagerSplitChunk: 2 * MIB });
        assert.equal(levelAt(vm, GIB), 3, "eagerly split");
        await write(vcpu, [0, 1]);
        vm.disableDirtyLogging(0);
        const before = vm.reclaimSnapshot().subtrees;
        await write(vcpu, [5]); // write-protected page: permission fault, block size again
        assert.equal(levelAt(vm, GIB), 2, "collapsed into a 2 MiB block");
        assert.equal(vm.reclaimSnapshot().subtrees, before + 1, "the shared walk unlinked the table");
      },
    );
    const r = vm.reclaimSnapshot();
    assert.equal(r.pagesReclaimed, 1, "the page table came back through the strategy after a grace period");
    assert.equal(r.freedNow, 0, "nothing freed inside the shared walk");
  });
}

for (const mmu of [true, false]) {
  test(`exec faults (MMU model ${mmu ? "on" : "off"}): a fetch maps executable, or relaxes an XN page`, async () => {
    await withVm({ mmu }, async (vm, vcpu) => {
      const xn = (ipa: number): boolean => {
        assert.equal(getLeaf(vm.pgt, ipa, leaf), Errno.OK);
        return (leaf.pte & S2_XN) !== 0n;
      };
      // A first fetch: a translation fault that maps the page executable.
      assert.equal(await vcpu.run({ op: "fetch", ipa: GIB }), 1);
      assert.equal(xn(GIB), false);
      // A page written first is execute-never; a fetch then takes a permission fault and relaxes it.
      assert.equal(await vcpu.run({ op: "touch", ipa: GIB + 4 * MIB, write: true }), 1);
      assert.equal(xn(GIB + 4 * MIB), true);
      assert.equal(await vcpu.run({ op: "fetch", ipa: GIB + 4 * MIB }), 1);
      assert.equal(xn(GIB + 4 * MIB), false);
      // Executable now: no more faults, and writes still work.
      assert.equal(await vcpu.run({ op: "fetch", ipa: GIB + 4 * MIB }), 0);
      assert.equal(await vcpu.run({ op: "touch", ipa: GIB + 4 * MIB, write: true }), 0);
      assert.deepEqual(auditTable(vm.pgt).problems, []);
      assert.deepEqual(vm.mmu?.violations() ?? [], []);
    });
  });
}

test("testClearYoung() and countIdle() see access-flag faults", async () => {
  await withVm({ memslots: [{ ipa: GIB, size: 2 * MIB, backing: "anonymous" }] }, async (vm, vcpu) => {
    await vcpu.run({ op: "touchRange", start: GIB, size: 2 * MIB, write: false });
    assert.equal(vm.countIdle(GIB, 2 * MIB), 0);
    assert.equal(vm.testClearYoung(GIB, 2 * MIB), 512);
    assert.equal(vm.countIdle(GIB, 2 * MIB), 512);
    const faults = await vcpu.run({ op: "touchRange", start: GIB, size: 100 * P, write: false });
    assert.equal(faults, 100, "one access-flag fault per old page");
    assert.equal(vm.vcpuStats.snapshot().accessFlag, 100);
    assert.equal(vm.countIdle(GIB, 2 * MIB), 412);
  });
});

test("a fault between invalidateRangeStart() and End() retries; after End it maps", async () => {
  await withVm({}, async (vm, vcpu) => {
    vm.invalidateRangeStart(GIB, 2 * MIB);
    const fault = { op: "fault", ipa: GIB, kind: FaultKind.TRANSLATION, write: true, leafLevel: -1 } as const;
    assert.equal(await vcpu.run(fault), Errno.AGAIN);
    assert.equal(levelAt(vm, GIB), -1, "nothing mapped while the invalidation runs");
    vm.invalidateRangeEnd(GIB, 2 * MIB);
    assert.equal(await vcpu.run(fault), Errno.OK);
    assert.equal(vm.vcpuStats.snapshot().seqRetries, 1);
  });
});

test("a host worker creates a memslot and unmaps while a vCPU faults", async () => {
  await withVm({}, async (vm, vcpu) => {
    const host = new Worker(new URL("./kvm-host-worker.js", import.meta.url), {
      workerData: { vm: vm.handle },
    });
    const ask = async (cmd: KvmHostCommand): Promise<number> => {
      host.postMessage(cmd);
      const [r] = (await once(host, "message")) as [{ result?: number; error?: string }];
      if (r.error) throw new Error(r.error);
      return r.result as number;
    };
    try {
      const id = await ask({ op: "createMemslot", ipa: 2 * GIB, size: 2 * MIB });
      assert.equal(id, 1);
      assert.equal(vm.memslot(1)?.ipa, 2 * GIB, "the main thread sees the host worker's slot");
      assert.equal(await vcpu.run({ op: "touchRange", start: 2 * GIB, size: 64 * P, write: true }), 64);
      await vcpu.run({ op: "touchRange", start: GIB, size: 8 * MIB, write: true });
      // Concurrently: the vCPU rewrites the slot while the host worker unmaps it 200 times.
      vcpu.post({ op: "touchRange", start: GIB, size: 8 * MIB, write: true });
      const unmaps = ask({ op: "unmap", ipa: GIB, size: 8 * MIB, times: 200 });
      assert.ok((await vcpu.result()) >= 0);
      assert.equal(await unmaps, 200);
      await ask({ op: "unmap", ipa: 2 * GIB, size: 2 * MIB, times: 1 });
      assert.equal(levelAt(vm, 2 * GIB), -1, "unmapped by the host worker");
    } finally {
      await host.terminate();
    }
  });
});
