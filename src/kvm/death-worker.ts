/**
 * The death watch's thread (see death-watch.ts): holds one end of each vCPU's channel and reaps
 * the vCPU when the other end closes.
 */
import { type MessagePort, parentPort, workerData } from "node:worker_threads";
import { Mmu, MmuTlbi } from "../mmu/mod.js";
import { Stage2 } from "../pgtable/stage2.js";
import { RwLock } from "../sync/mod.js";
import { finishReap, type ReaperEnv, reapVcpu, repairLockedEntries, settleAfterError } from "./death.js";
import type { DeathWatchMessage } from "./death-watch.js";
import { MemslotTable } from "./memslot.js";
import { attachReaperRcu } from "./reclaim/rcu-glue.js";
import { ReclaimStats } from "./reclaim/stats.js";
import { RECORD_MEMCACHE_PAGES, VcpuRecords, VcpuState } from "./vcpu-record.js";
import type { VmHandle } from "./vm.js";

const handle = (workerData as { vm: VmHandle }).vm;
const port = parentPort as MessagePort;
const records = new VcpuRecords(handle.options.vcpus, RECORD_MEMCACHE_PAGES, handle.records);
const pgt = Stage2.attach(handle.pgt, { checkUaf: handle.options.debug ?? false });
const mmu = handle.mmu === null ? null : Mmu.attach(handle.mmu);
// The repair invalidates what a dead walker's break may have left cached, as a host view would.
if (mmu !== null) pgt.tlb = new MmuTlbi(mmu, pgt, pgt.maint, -1);
const lock = RwLock.attach(handle.lock);
lock.onOwnerDead = () => {
  repairLockedEntries(pgt, records);
};
const rcu = attachReaperRcu(handle.rcu);
const env: ReaperEnv = {
  records,
  lock,
  pgt,
  memslots: MemslotTable.attach(handle.memslots),
  stats: new ReclaimStats(handle.reclaimStats),
  rcu: rcu.port,
  reapRcuThread: rcu.reapThread,
  reportDeath: rcu.reportDeath,
  releaseMmu: mmu === null ? null : (vcpu) => mmu.releaseDeadVcpu(vcpu),
  disabled: handle.options.testOnly?.noDeathRecovery === true,
};

function reap(vcpu: number): void {
  try {
    if (reapVcpu(env, vcpu)) finish(vcpu);
  } catch (e) {
    port.postMessage({ type: "error", vcpu, message: (e as Error).message } satisfies DeathWatchMessage);
  }
}

/**
 * Reports the death once its locked entries are repaired. Polls the lock without waiting: a
 * blocking writeLock() here could wait for the hold of another dead vCPU whose reap is queued
 * behind this one on this very thread.
 */
function finish(vcpu: number): void {
  try {
    const report = finishReap(env, vcpu);
    if (report !== null) port.postMessage({ type: "death", report } satisfies DeathWatchMessage);
    else if (records.state(vcpu) === VcpuState.DEAD) setTimeout(finish, 1, vcpu);
  } catch (e) {
    // The repair met corrupt memory (a debug pool's use-after-free report, say): counted, reported.
    settleAfterError(env, vcpu);
    port.postMessage({ type: "error", vcpu, message: (e as Error).message } satisfies DeathWatchMessage);
  }
}

port.on("message", (msg: DeathWatchMessage) => {
  if (msg.type === "watch") {
    // A listener starts the port; 'close' then fires when the vCPU's end goes with its thread.
    msg.port.on("message", () => {});
    msg.port.on("close", () => reap(msg.vcpu));
  } else if (msg.type === "close") {
    rcu.close();
    process.exit(0);
  }
});
port.postMessage({ type: "ready" } satisfies DeathWatchMessage);
