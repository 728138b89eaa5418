/**
 * Test helpers for the kvm worker tests: a scripted vCPU in a worker thread (kvm-vcpu-worker.ts)
 * driven one command at a time from the main thread, which is the host.
 */
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import type { Vm } from "../src/kvm/vm.js";
import type { KvmVcpuCommand, KvmVcpuWorkerData } from "./kvm-vcpu-worker.js";

interface Reply {
  result?: unknown;
  error?: string;
  paused?: boolean;
}

export class ScriptedVcpu {
  readonly worker: Worker;
  private readonly inbox: Reply[] = [];
  private waiter: ((r: Reply) => void) | null = null;

  constructor(vm: Vm, vcpu: number, opts: Partial<KvmVcpuWorkerData> = {}) {
    const data: KvmVcpuWorkerData = { vm: vm.handle, vcpu, ...opts };
    this.worker = new Worker(new URL("./kvm-vcpu-worker.js", import.meta.url), { workerData: data });
    vm.rcu.watch(this.worker);
    this.worker.on("message", (r: Reply) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        w(r);
      } else this.inbox.push(r);
    });
    this.worker.on("error", (e) => this.inbox.push({ error: String(e) }));
  }

  /** The next message from the worker. */
  next(): Promise<Reply> {
    const r = this.inbox.shift();
    if (r) return Promise.resolve(r);
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  /** Posts a command without waiting (use `result()` for its reply). */
  post(cmd: KvmVcpuCommand): void {
    this.worker.postMessage(cmd);
  }

  /** The reply to the last posted command; throws the worker's error. */
  async result(): Promise<number> {
    const r = await this.next();
    if (r.error) throw new Error(`vCPU failed: ${r.error}`);
    if (r.paused) throw new Error("vCPU paused where a result was expected");
    return r.result as number;
  }

  /** Sends a command and waits for its result. */
  run(cmd: KvmVcpuCommand): Promise<number> {
    this.post(cmd);
    return this.result();
  }

  async close(): Promise<void> {
    const exited = once(this.worker, "exit");
    await this.run({ op: "close" });
    await exited;
  }
}

/** Number of set bits in a bitmap copy. */
export function countBits(words: Uint32Array, from = 0, to = words.length * 32): number {
  let n = 0;
  for (let i = from; i < to; i++) if (((words[i >>> 5] as number) >>> (i & 31)) & 1) n++;
  return n;
}
