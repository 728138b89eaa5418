/**
 * A vCPU worker terminated inside the page pool's mutex (issue 10). The victim takes the free-list
 * mutex, tears a pop halfway and is terminated there. With the death watch's recovery, the dead
 * holder is recognised from the lock word, the free list is rebuilt from the pages' states and
 * the mutex released: the next allocation completes, the pool audits clean, the pages the victim
 * held come back through recoverLostPages() and teardown finds no leak. With recovery off
 * (VmTestOnly.noDeathRecovery) the same next allocation must still be waiting after a bound: the
 * negative control that shows the scenario really leaves the mutex held.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type TransferListItem, Worker } from "node:worker_threads";
import { Vm } from "../src/kvm/vm.js";
import { PoolHeader } from "../src/mem/layout.js";
import { mutexHolder } from "../src/mem/spin-mutex.js";
import { auditTree } from "../src/testing/mod.js";
import type { PoolDeathData, PoolDeathReply } from "./pool-mutex-death-worker.js";

const MB = 2 ** 20;
const HELD = 2;

function start(data: PoolDeathData, transfer: TransferListItem[] = []): Worker {
  return new Worker(new URL("./pool-mutex-death-worker.js", import.meta.url), {
    workerData: data,
    transferList: transfer,
  });
}

/** The worker's first message, or "timeout" after `ms` (the worker is then terminated). */
function reply(worker: Worker, ms: number): Promise<PoolDeathReply | "timeout"> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void worker.terminate();
      resolve("timeout");
    }, ms);
    worker.once("message", (m: PoolDeathReply) => {
      clearTimeout(timer);
      resolve(m);
    });
    worker.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

async function scenario(recovery: boolean) {
  const vm = await Vm.create({
    granule: 4096,
    iaBits: 36,
    poolPages: 1024,
    mode: "shared",
    vcpus: 1,
    debug: true,
    memslots: [{ ipa: 0, size: 16 * MB, backing: "anonymous" }],
    testOnly: recovery ? {} : { noDeathRecovery: true },
  });
  // Some pages on the free list, so that the victim has a pop to tear.
  const warm = new Int32Array(8);
  assert.equal(vm.pool.allocBatch(warm, 8), 8);
  vm.pool.freeBatch(warm, 8);
  const watch = vm.watchDeaths();
  await watch.ready;
  const deathPort = watch.portFor(0);
  const victim = start({ role: "victim", vm: vm.handle, vcpu: 0, deathPort, held: HELD }, [deathPort]);
  const exited = new Promise((resolve) => victim.once("exit", resolve));
  const stopped = await reply(victim, 30_000);
  assert.ok(stopped !== "timeout" && "stopped" in stopped, `victim stopped: ${JSON.stringify(stopped)}`);
  assert.ok(stopped.torn >= 0, "a pop was torn");
  const meta = new Int32Array(vm.pool.handle.meta);
  const victimTid = victim.threadId;
  assert.equal(mutexHolder(meta, PoolHeader.LOCK), victimTid, "the lock word names its holder");
  void victim.terminate();
  await exited;
  // The next allocation, on a thread of its own so that a hang is bounded.
  const probe = await reply(start({ role: "probe", pool: vm.pool.handle }), recovery ? 30_000 : 3_000);
  return { vm, watch, stopped, probe, meta, victimTid };
}

test(
  "a vCPU terminated inside the pool mutex: the mutex is recovered, nothing leaks",
  { timeout: 90_000 },
  async () => {
    const { vm, watch, stopped, probe, meta } = await scenario(true);
    assert.ok(probe !== "timeout", "the next allocation completes");
    assert.ok("page" in probe && probe.page >= 0, `it got a page: ${JSON.stringify(probe)}`);
    const [report] = await watch.untilDeaths(1);
    assert.ok(report);
    assert.equal(report.poolLock, true, "the death report says the pool mutex was taken back");
    assert.equal(vm.pool.stats().locksReaped, 1, "and the pool counts it");
    assert.equal(mutexHolder(meta, PoolHeader.LOCK), -1, "the pool mutex is free");
    // The host allocates and frees on this thread too, and the free list audits clean.
    const mine = vm.pool.allocPage();
    assert.ok(mine >= 0);
    vm.pool.freePage(mine);
    vm.pool.freePage((probe as { page: number }).page);
    await watch.close();
    assert.deepEqual(vm.pool.audit(), [], "free list rebuilt: sound, every FREE page listed");
    const lost = vm.recoverLostPages();
    assert.deepEqual(
      [...lost].sort((a, b) => a - b),
      [...stopped.held].sort((a, b) => a - b),
      "the pages in the victim's hands",
    );
    assert.deepEqual(auditTree(vm.pgt).problems, []);
    assert.deepEqual(vm.pool.audit(), []);
    const d = await vm.destroy();
    assert.deepEqual(d.leakedPages, [], "no page leaked");
    assert.equal(vm.pool.stats().doubleFrees, 0);
  },
);

test(
  "negative control: without recovery the next allocation waits on the dead holder",
  { timeout: 90_000 },
  async () => {
    const { vm, watch, probe, meta, victimTid } = await scenario(false);
    assert.equal(probe, "timeout", "the allocation is still waiting after 3 s");
    assert.equal(mutexHolder(meta, PoolHeader.LOCK), victimTid, "the dead thread still holds the mutex");
    const [report] = await watch.untilDeaths(1);
    assert.equal(report?.poolLock, false);
    assert.equal(vm.pool.stats().locksReaped, 0);
    await watch.close();
    // No destroy(): it would free pages and wait on the mutex for ever.
    await vm.rcu.close();
  },
);
