/**
 * The faults benchmark's same-thread pair (faults.ts, `sharedOverExclusiveSameThread1v`): one
 * worker thread that is vCPU 0 of two 1-vCPU VMs, a shared-mode one and an exclusive-mode one,
 * and populates through either on command. Both modes' fault costs are then timed in one thread,
 * which runs at one speed or the other of this machine (BENCHMARKS.md) for both alike.
 *
 * Messages (plain objects):
 *   host -> worker  { type: "populate", vm, start, size }   vm: index into workerData.vms
 *                   { type: "close" }
 *   worker -> host  { type: "ready" } once attached to every VM
 *                   { type: "done", ns, faults, threadId, mode }
 *                   { type: "closed" }
 *                   { type: "error", message }
 * Between commands the vCPUs are idle (qsbr: offline), so the host's unmaps and grace periods
 * never wait for this thread. No death watch: a benchmark worker that dies fails the run.
 */
import { parentPort, threadId, workerData } from "node:worker_threads";
import { loadStrategyFactory } from "../kvm/reclaim/user-strategy.js";
import { attachVcpu, type VcpuContext, type VmHandle } from "../kvm/vm.js";
import { populate } from "../sim/workloads.js";

/** A command from the host. */
export type PairCommand = { type: "populate"; vm: number; start: number; size: number } | { type: "close" };

/** A reply to the host. */
export type PairReply =
  | { type: "ready" }
  | { type: "done"; ns: number; faults: number; threadId: number; mode: "shared" | "exclusive" }
  | { type: "closed" }
  | { type: "error"; message: string };

const port = parentPort;
if (port === null) throw new Error("pair-worker must run in a worker thread");
const { vms } = workerData as { vms: VmHandle[] };
const ctxs: VcpuContext[] = [];
for (const vm of vms) ctxs.push(attachVcpu(vm, 0, await loadStrategyFactory(vm.reclaim.strategy)));
for (const ctx of ctxs) ctx.idle();

function reply(msg: PairReply): void {
  port?.postMessage(msg);
}

port.on("message", (cmd: PairCommand) => {
  try {
    if (cmd.type === "close") {
      for (const ctx of ctxs) ctx.close();
      reply({ type: "closed" });
      port.close();
      return;
    }
    const ctx = ctxs[cmd.vm];
    if (ctx === undefined) throw new RangeError(`no VM ${cmd.vm} in this pair`);
    ctx.resume();
    const t0 = performance.now();
    const faults = populate(ctx.handler, cmd.start, cmd.size);
    const ns = (performance.now() - t0) * 1e6;
    ctx.pgt.flushStats();
    ctx.idle();
    if (faults < 0) throw new Error(`populate failed with status ${faults}`);
    reply({ type: "done", ns, faults, threadId, mode: ctx.handler.shared ? "shared" : "exclusive" });
  } catch (e) {
    reply({ type: "error", message: (e as Error).stack ?? String(e) });
  }
});
reply({ type: "ready" });
