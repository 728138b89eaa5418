/**
 * Entry point of a vCPU worker thread: attaches to the VM, then runs the host's commands.
 * A command's timed part starts when the host bumps the shared go word, so all vCPUs start together.
 */
import { parentPort, workerData } from "node:worker_threads";
import { errnoName } from "../common/errno.js";
import { TraceBuffer, type TraceBufferHandle, TraceEvent } from "../common/trace.js";
import { loadStrategyFactory } from "../kvm/reclaim/user-strategy.js";
import { attachVcpu, type VmHandle } from "../kvm/vm.js";
import { guestLoop } from "./memstress.js";
import { Go, type VcpuCommand, type VcpuReply } from "./protocol.js";
import { tortureVcpu } from "./torture-vcpu.js";
import { collapseRange, populate, stress } from "./workloads.js";

interface VcpuWorkerData {
  vm: VmHandle;
  vcpu: number;
  go: SharedArrayBuffer;
  /** Trace rings (`--trace`): this vCPU writes slot `vcpu`. */
  trace: TraceBufferHandle | null;
}

const data = workerData as VcpuWorkerData;
const port = parentPort;
if (port === null) throw new Error("vcpu-worker must run in a worker thread");
// A user strategy module is imported here, before the (synchronous) attach builds the strategy.
const ctx = attachVcpu(data.vm, data.vcpu, await loadStrategyFactory(data.vm.reclaim.strategy));
const go = new Int32Array(data.go);
const trace = data.trace ? TraceBuffer.attach(data.trace).writer(data.vcpu, `vCPU ${data.vcpu}`) : null;
const guest = { handler: ctx.handler, idle: ctx.idle, resume: ctx.resume, trace };
let phase = 0;

function reply(msg: VcpuReply): void {
  port?.postMessage(msg);
}

/** Waits for the host to start the next phase. Pairs with the host's Atomics.store + notify. */
function waitForGo(): void {
  phase++;
  while (Atomics.load(go, Go.PHASE) < phase) Atomics.wait(go, Go.PHASE, phase - 1, 50);
  ctx.resume();
}

function run(cmd: VcpuCommand): void {
  if (cmd.type === "close") {
    trace?.close();
    ctx.close();
    ctx.pgt.flushStats();
    reply({
      type: "closed",
      vcpu: data.vcpu,
      uaf: ctx.pgt.stats().uafDetected,
      firstFault: ctx.pgt.firstFault,
    });
    port?.close();
    return;
  }
  reply({ type: "ready", vcpu: data.vcpu });
  waitForGo();
  const startMs = performance.timeOrigin + performance.now();
  if (cmd.type === "populate") {
    const faults = populate(ctx.handler, cmd.start, cmd.size, cmd.direct === true);
    const endMs = performance.timeOrigin + performance.now();
    if (faults < 0) throw new Error(`populate failed with status ${faults}`);
    reply({ type: "done", vcpu: data.vcpu, startMs, endMs, faults });
  } else if (cmd.type === "collapse") {
    const done = collapseRange(ctx.handler, cmd.start, cmd.size, cmd.blockSize);
    const endMs = performance.timeOrigin + performance.now();
    if (done < 0) throw new Error(`collapse failed with status ${done}`);
    reply({ type: "done", vcpu: data.vcpu, startMs, endMs, faults: done });
  } else if (cmd.type === "memstress") {
    const status = guestLoop(guest, cmd.ms, cmd.slice);
    const endMs = performance.timeOrigin + performance.now();
    if (status < 0) throw new Error(`guest access failed with status ${errnoName(status)}`);
    reply({ type: "done", vcpu: data.vcpu, startMs, endMs, faults: 0 });
  } else if (cmd.type === "torture") {
    const result = tortureVcpu(ctx, cmd.options);
    const endMs = performance.timeOrigin + performance.now();
    reply({ type: "done", vcpu: data.vcpu, startMs, endMs, faults: result.faults, torture: result });
  } else {
    const result = stress(ctx.handler, cmd.options, ctx.idle);
    const endMs = performance.timeOrigin + performance.now();
    reply({ type: "done", vcpu: data.vcpu, startMs, endMs, faults: result.touches, stress: result });
  }
  if (trace && cmd.type !== "memstress") {
    const endUs = (performance.timeOrigin + performance.now()) * 1000;
    trace.complete(TraceEvent.FAULT_BATCH, startMs * 1000, endUs - startMs * 1000);
  }
  ctx.pgt.flushStats();
  ctx.idle();
}

ctx.idle();
port.on("message", (cmd: VcpuCommand) => {
  try {
    run(cmd);
  } catch (e) {
    reply({ type: "error", vcpu: data.vcpu, message: (e as Error).stack ?? String(e) });
  }
});
