/**
 * The death watch: a thread of its own that reaps a VM's dead vCPUs (death.ts), so that reaping
 * never waits for the VM creator's event loop.
 *
 * How it learns of a death: for each vCPU the watch keeps one end of a MessageChannel, and the
 * vCPU's worker holds the other (pass `portFor(v)` in its workerData and its transferList; the
 * worker need not touch it). When the worker ends, by `terminate()`, an uncaught error,
 * `process.exit()` or out of memory, Node closes its end and the watch's end emits 'close' on the
 * watch's own event loop, even while the creator is blocked in a synchronous wait (a writeLock()
 * behind the dead reader, an RCU synchronize()). A vCPU that closed cleanly (`VcpuContext.close()`)
 * is not reaped: its record says CLOSED.
 *
 * Reports go to the creator by message (`onDeath`, `deaths`) and stay readable in shared memory
 * (`Vm.deaths()`), so a creator that was blocked still finds them.
 */
import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";
import type { VcpuDeathReport } from "./death.js";
import { stopWorker } from "../common/worker-stop.js";
import { VcpuRecords, VcpuState } from "./vcpu-record.js";
import type { VmHandle } from "./vm.js";

/** Messages between the creator and the watch thread. */
export type DeathWatchMessage =
  | { type: "watch"; vcpu: number; port: MessagePort }
  | { type: "close" }
  | { type: "ready" }
  | { type: "death"; report: VcpuDeathReport }
  | { type: "error"; vcpu: number; message: string };

/** The creator's handle on a VM's death watch (`Vm.watchDeaths()`). */
export class DeathWatch {
  /** Reports received so far, in order of death. */
  readonly deaths: VcpuDeathReport[] = [];
  /** Errors of the reaper itself (a reap that threw), as messages. */
  readonly errors: string[] = [];
  /** Called on the creator's event loop for each death reaped. */
  onDeath: ((report: VcpuDeathReport) => void) | null = null;
  /** Resolves once the watch thread has attached to the VM. */
  readonly ready: Promise<void>;
  private readonly worker: Worker;
  private readonly records: VcpuRecords;
  private readonly watched = new Set<number>();
  private readonly waiters: (() => void)[] = [];
  private closed: Promise<void> | null = null;
  /** The watch thread has exited (closed, or died itself): nothing more will be reaped. */
  private exited = false;

  /** Starts the watch thread for the VM of `handle`. */
  constructor(handle: VmHandle) {
    this.records = new VcpuRecords(handle.options.vcpus, undefined, handle.records);
    this.worker = new Worker(new URL("./death-worker.js", import.meta.url), { workerData: { vm: handle } });
    this.worker.unref(); // never keeps the process alive
    this.worker.once("exit", () => {
      this.exited = true;
      for (const w of this.waiters.splice(0)) w();
    });
    this.ready = new Promise((resolve, reject) => {
      this.worker.on("error", (e) => {
        this.errors.push(`death watch: ${e.message}`);
        reject(e);
      });
      this.worker.on("message", (msg: DeathWatchMessage) => {
        if (msg.type === "ready") resolve();
        else if (msg.type === "death") {
          this.deaths.push(msg.report);
          this.onDeath?.(msg.report);
          for (const w of this.waiters.splice(0)) w();
        } else if (msg.type === "error") {
          this.errors.push(`vCPU ${msg.vcpu}: ${msg.message}`);
          for (const w of this.waiters.splice(0)) w();
        }
      });
    });
    this.ready.catch(() => {});
  }

  /**
   * The end of vCPU `vcpu`'s channel that its worker must hold: put it in the worker's workerData
   * and transferList. One per vCPU id; RangeError when asked twice.
   */
  portFor(vcpu: number): MessagePort {
    if (this.watched.has(vcpu)) throw new RangeError(`Cannot watch vCPU ${vcpu} twice`);
    this.watched.add(vcpu);
    const { port1, port2 } = new MessageChannel();
    this.worker.postMessage({ type: "watch", vcpu, port: port1 } satisfies DeathWatchMessage, [port1]);
    return port2;
  }

  /** Resolves once `n` deaths in all have been reported; rejects when a reap failed. */
  async untilDeaths(n: number): Promise<VcpuDeathReport[]> {
    // Referenced while waiting: the reports are what this caller waits for.
    this.worker.ref();
    try {
      while (this.deaths.length < n) {
        if (this.errors.length > 0) throw new Error(`Death watch failed: ${this.errors.join("; ")}`);
        if (this.exited) throw new Error("Death watch failed: its thread has exited");
        await new Promise<void>((resolve) => this.waiters.push(resolve));
      }
    } finally {
      this.worker.unref();
    }
    return this.deaths;
  }

  /**
   * Resolves once no watched vCPU is attached and unreaped: each closed cleanly or was reaped
   * (after `worker.terminate()`, say), or the watch thread itself is gone. Waits for death
   * reports, checking the records every 10 ms.
   */
  async untilSettled(): Promise<void> {
    const busy = () =>
      [...this.watched].some((v) => {
        const st = this.records.state(v);
        return st === VcpuState.ALIVE || st === VcpuState.DEAD;
      });
    while (busy() && !this.exited) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 10);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Stops the watch thread (it releases its RCU slot first). Idempotent. */
  async close(): Promise<void> {
    this.closed ??= stopWorker(this.worker, this.exited, { type: "close" } satisfies DeathWatchMessage);
    await this.closed;
  }
}
