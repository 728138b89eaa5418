/**
 * A scripted vCPU for the kvm tests: attaches to the VM and runs one command per message,
 * replying with its result. With `pauseAtSlotRead`, its first fault stops at the
 * fault.slot-read race point (memslot read, mmu_lock not yet taken), tells the parent, and
 * resumes only once the host has acted there: MMU_SEQ moved, or a host waits for this fault.
 */
import { parentPort, workerData } from "node:worker_threads";
import { Errno } from "../src/common/errno.js";
import { RacePoint, setRaceHook } from "../src/common/race-points.js";
import type { FaultKind } from "../src/kvm/fault.js";
import { SlotWord } from "../src/kvm/memslot.js";
import { attachVcpu, type VmHandle } from "../src/kvm/vm.js";
import { fetch, touch } from "../src/sim/workloads.js";
import { type DirtyWriterOptions, dirtyWriter } from "./kvm-dirty-writer.js";

export type KvmVcpuCommand =
  | { op: "touch"; ipa: number; write: boolean }
  | { op: "fetch"; ipa: number }
  | { op: "touchRange"; start: number; size: number; write: boolean }
  | { op: "fault"; ipa: number; kind: FaultKind; write: boolean; leafLevel: number }
  | { op: "dirtyWriter"; options: DirtyWriterOptions }
  | { op: "close" };

export interface KvmVcpuWorkerData {
  vm: VmHandle;
  vcpu: number;
  pauseAtSlotRead?: boolean;
}

const data = workerData as KvmVcpuWorkerData;
const port = parentPort;
if (port === null) throw new Error("kvm-vcpu-worker must run in a worker thread");
const ctx = attachVcpu(data.vm, data.vcpu);

if (data.pauseAtSlotRead) {
  const words = new Int32Array(data.vm.memslots.buffer);
  let armed = true;
  setRaceHook((point) => {
    if (point !== RacePoint.FAULT_SLOT_READ || !armed) return;
    armed = false;
    const seq = Atomics.load(words, SlotWord.MMU_SEQ);
    port.postMessage({ paused: true });
    // Polls: the host bumps MMU_SEQ under the write lock, or announces it waits for this fault.
    while (Atomics.load(words, SlotWord.MMU_SEQ) === seq && Atomics.load(words, SlotWord.FAULT_WAITERS) === 0)
      Atomics.wait(words, SlotWord.MMU_SEQ, seq, 1);
    setRaceHook(null);
  });
}

function run(cmd: KvmVcpuCommand): unknown {
  switch (cmd.op) {
    case "touch":
      return touch(ctx.handler, cmd.ipa, cmd.write);
    case "fetch":
      return fetch(ctx.handler, cmd.ipa);
    case "touchRange": {
      const page = ctx.pgt.geo.granule;
      let faults = 0;
      for (let ipa = cmd.start; ipa < cmd.start + cmd.size; ipa += page) {
        const n = touch(ctx.handler, ipa, cmd.write);
        if (n < 0) return n;
        faults += n;
      }
      return faults;
    }
    case "fault":
      return ctx.handler.handle(cmd.ipa, cmd.kind, cmd.write, cmd.leafLevel);
    case "dirtyWriter":
      return dirtyWriter(ctx.handler, cmd.options);
    case "close":
      ctx.close();
      return Errno.OK;
  }
}

ctx.idle();
port.on("message", (cmd: KvmVcpuCommand) => {
  try {
    ctx.resume();
    const result = run(cmd);
    if (cmd.op !== "close") ctx.idle();
    port.postMessage({ result });
    if (cmd.op === "close") port.close();
  } catch (e) {
    port.postMessage({ error: (e as Error).stack ?? String(e) });
  }
});
