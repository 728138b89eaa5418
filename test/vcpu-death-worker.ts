/**
 * A vCPU for the death tests: attaches to the VM, runs one command per message, and on `arm` dies
 * at a chosen place: it stops there (until the parent terminates it) or throws an uncaught error.
 * Its workerData holds the death watch's port (`deathPort`), which it never touches: Node closes
 * it when this thread ends.
 */
import { type MessagePort, parentPort, workerData } from "node:worker_threads";
import { type RacePoint, setRaceHook } from "../src/common/race-points.js";
import { attachVcpu, type VmHandle } from "../src/kvm/vm.js";
import { touch } from "../src/sim/workloads.js";

/** How the vCPU dies once armed: stopped where it is (the parent terminates it) or by throwing. */
export type DeathKind = "terminate" | "throw";

export type DeathVcpuCommand =
  | { op: "touch"; start: number; size: number; write: boolean }
  | { op: "collapse"; ipa: number; size: number }
  /** Die at the next pass of race point `point`. */
  | { op: "arm"; point: RacePoint; kind: DeathKind }
  /** Enter an RCU read-side section outside mmu_lock (as a lockless walker does) and die there. */
  | { op: "dieInReadSide"; kind: DeathKind }
  /** Start a guest access through the MMU model (state IN_ACCESS) and stop inside it. */
  | { op: "dieInAccess"; ipa: number }
  | { op: "close" };

export interface DeathVcpuData {
  vm: VmHandle;
  vcpu: number;
  deathPort: MessagePort;
}

/** Messages to the parent. */
export type DeathVcpuReply = { result: number } | { stopped: string } | { closed: true };

const data = workerData as DeathVcpuData;
const port = parentPort as MessagePort;
const ctx = attachVcpu(data.vm, data.vcpu);
const forever = new Int32Array(new SharedArrayBuffer(4));

/** Dies here: tells the parent where, then waits to be terminated, or throws. */
function die(where: string, kind: DeathKind): void {
  if (kind === "throw") throw new Error(`vCPU ${data.vcpu}: injected death at ${where}`);
  port.postMessage({ stopped: where } satisfies DeathVcpuReply);
  // A loop with a timed wait: terminate() lands at the back edge.
  for (;;) Atomics.wait(forever, 0, 0, 20);
}

function run(cmd: DeathVcpuCommand): number {
  switch (cmd.op) {
    case "touch": {
      const page = ctx.pgt.geo.granule;
      for (let ipa = cmd.start; ipa < cmd.start + cmd.size; ipa += page) {
        const n = touch(ctx.handler, ipa, cmd.write);
        if (n < 0) return n;
      }
      return 0;
    }
    case "collapse":
      return ctx.handler.collapse(cmd.ipa, cmd.size);
    case "arm":
      setRaceHook((point) => {
        if (point !== cmd.point) return;
        setRaceHook(null);
        die(String(point), cmd.kind);
      });
      return 0;
    case "dieInReadSide":
      ctx.pgt.guard.begin();
      die("rcu-read-side", cmd.kind);
      return 0;
    case "dieInAccess": {
      const mmu = ctx.handler.mmu;
      if (mmu === null) throw new Error("dieInAccess needs a VM with the MMU model");
      // The hardware walk has no race point (hardware is not preempted mid-walk): stop inside the
      // access by replacing its translation, after enter() has set IN_ACCESS.
      (mmu as unknown as { translate: () => number }).translate = () => {
        die("in-access", "terminate");
        return 0;
      };
      return mmu.access(cmd.ipa, false);
    }
    case "close":
      ctx.close();
      return 0;
  }
}

// Offline between commands (qsbr), so that an idle vCPU holds up no grace period.
ctx.idle();
port.on("message", (cmd: DeathVcpuCommand) => {
  if (cmd.op !== "close") ctx.resume();
  const result = run(cmd);
  if (cmd.op !== "close") ctx.idle();
  port.postMessage((cmd.op === "close" ? { closed: true } : { result }) satisfies DeathVcpuReply);
  if (cmd.op === "close") port.close();
});
