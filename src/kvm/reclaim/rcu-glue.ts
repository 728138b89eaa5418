/**
 * How a VM uses the RCU domain: the host creates it with the reclaim callbacks as a plugin of the
 * callback worker; each vCPU registers and gets a walk guard (the read-side section of SHARED
 * walks), the ReclaimRcu port the strategies use, and qsbr's quiescent-state reporting.
 *
 * Callbacks run in the RCU domain's callback worker (see src/rcu/callbacks.ts for why), which
 * attaches its own Stage2 view of the page pool from the plugin data.
 */
import type { Worker } from "node:worker_threads";
import type { TraceBufferHandle } from "../../common/trace.js";
import { Rcu, type RcuHandle, type RcuOptions, type RcuStats, type RcuThread } from "../../rcu/mod.js";
import type { Stage2Handle, WalkGuard } from "../../pgtable/stage2.js";
import type { ReclaimRcu } from "./strategy.js";

/** The RCU flavor of a VM's domain: liburcu's memory-barrier (`mb`) or quiescent-state-based (`qsbr`) readers. */
export type RcuFlavor = "mb" | "qsbr";

/** Data posted to the callback worker's reclaim plugin (rcu-plugin.ts). */
export interface ReclaimPluginData {
  pgt: Stage2Handle;
  reclaimStats: SharedArrayBuffer;
  sliceBudgetPages: number;
  slowCallbackUs: number;
  /** Trace rings and the slot the callback worker writes (`--trace`), or null. */
  trace: { handle: TraceBufferHandle; slot: number } | null;
}

/** Structured-cloneable description of a VM's RCU domain, part of the VmHandle. */
export interface VmRcuHandle {
  rcu: RcuHandle;
  flavor: RcuFlavor;
}

/** The host thread's side of the domain. */
export interface VmRcu {
  readonly handle: VmRcuHandle;
  readonly thread: RcuThread;
  /** Waits until every callback queued so far has run. */
  barrier(): void;
  synchronize(): void;
  stats(): RcuStats;
  /** Releases `worker`'s reader slot when it exits however it exits (a vCPU that dies mid-section). */
  watch(worker: Worker): void;
  close(): Promise<void>;
}

/**
 * Creates a VM's RCU domain with the reclaim callbacks loaded as a plugin of its callback worker,
 * and registers the calling (host) thread. Call `close()` when the VM is destroyed.
 */
/** Extra RCU options for a VM: more plugins after the reclaim one, and engine tuning. */
export type VmRcuExtra = Pick<RcuOptions, "plugins" | "gpDelayMs" | "batchTimeMs">;

export async function createVmRcu(
  flavor: RcuFlavor,
  data: ReclaimPluginData,
  vcpus = 56,
  extra: VmRcuExtra = {},
): Promise<VmRcu> {
  const rcu = await Rcu.create({
    ...(extra.gpDelayMs === undefined ? {} : { gpDelayMs: extra.gpDelayMs }),
    ...(extra.batchTimeMs === undefined ? {} : { batchTimeMs: extra.batchTimeMs }),
    flavor,
    // Every vCPU, the host, the callback worker, and room for host threads and tests.
    maxThreads: Math.max(64, vcpus + 8),
    poolHeads: 1 << 18,
    plugins: [{ url: new URL("./rcu-plugin.js", import.meta.url).href, data }, ...(extra.plugins ?? [])],
  });
  const thread = rcu.register();
  // The host reports no quiescent states: with qsbr it stays offline except while it waits.
  if (flavor === "qsbr") thread.offline();
  return {
    handle: { rcu: rcu.handle, flavor },
    thread,
    barrier: () => thread.barrier(),
    synchronize: () => thread.synchronize(),
    stats: () => rcu.stats(),
    watch: (worker) => rcu.watch(worker),
    async close() {
      thread.unregister();
      await rcu.close();
    },
  };
}

/** SHARED walks run inside a read-side section of this thread. */
class ReadSideGuard implements WalkGuard {
  private readonly t: RcuThread;
  constructor(t: RcuThread) {
    this.t = t;
  }
  begin(): void {
    this.t.readLock();
  }
  end(): void {
    this.t.readUnlock();
  }
}

class ReclaimPort implements ReclaimRcu {
  private readonly t: RcuThread;
  constructor(t: RcuThread) {
    this.t = t;
  }
  call(kind: number, a0: number, a1: number, a2: number): number {
    return this.t.call(kind, a0, a1, a2);
  }
  startPoll(): number {
    return this.t.startPoll();
  }
  pollState(cookie: number): boolean {
    return this.t.pollState(cookie);
  }
  synchronize(): void {
    this.t.synchronize();
  }
}

/** A vCPU thread's side of the domain. */
export interface VcpuRcu {
  readonly guard: WalkGuard;
  readonly port: ReclaimRcu;
  /** qsbr: report a quiescent state (call outside any read-side section); mb: nothing. */
  quiescent(): void;
  /** Before the thread idles (waits for the host): qsbr goes offline so grace periods go on. */
  idle(): void;
  /** After idling. */
  resume(): void;
  close(): void;
}

/** Registers the calling vCPU thread with the VM's RCU domain; call `close()` before the thread exits. */
export function attachVmRcu(handle: VmRcuHandle): VcpuRcu {
  const t = Rcu.attach(handle.rcu).register();
  const qsbr = handle.flavor === "qsbr" ? (t as Extract<RcuThread, { quiescentState(): void }>) : null;
  return {
    guard: new ReadSideGuard(t),
    port: new ReclaimPort(t),
    quiescent: qsbr ? () => qsbr.quiescentState() : () => {},
    idle: () => t.offline(),
    resume: () => t.online(),
    close: () => t.unregister(),
  };
}

/** A death watch's side of the domain (death-worker.ts): a registered thread that queues and reaps. */
export interface ReaperRcu {
  readonly port: ReclaimRcu;
  /** Releases the RCU slots and roles of dead thread `threadId`; returns the slots released. */
  reapThread(threadId: number): number;
  /** Tells the domain's stall detector that `threadId` died and was reaped. */
  reportDeath(threadId: number, slotsReleased: number): void;
  close(): void;
}

/** Registers the calling (death-watch) thread; with qsbr it stays offline (it never reads). */
export function attachReaperRcu(handle: VmRcuHandle): ReaperRcu {
  const rcu = Rcu.attach(handle.rcu);
  const t = rcu.register();
  if (handle.flavor === "qsbr") t.offline();
  return {
    port: new ReclaimPort(t),
    reapThread: (tid) => rcu.reapThread(tid),
    reportDeath: (tid, slots) => rcu.reportDeath(tid, slots),
    close: () => t.unregister(),
  };
}
