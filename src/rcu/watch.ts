/**
 * The reaper: a thread of its own per `Rcu` view that reaps the registered threads it watches when
 * they die, so that reaping never waits for the watcher's event loop.
 *
 * Why a thread: a Worker's "exit" event runs on its creator's event loop. A creator blocked in a
 * synchronous wait (synchronize(), barrier(), an Atomics.wait) behind a reader that was terminated
 * inside its read-side section, or died out of memory, never gets that event: deadlock. Threads that
 * end by themselves (end of script, process.exit(), an uncaught error) release their own slots from
 * their "exit" handler (thread.ts); terminate() and out-of-memory run no handler.
 *
 * How it learns of a death (the VM's death watch does the same, src/kvm/death-watch.ts): for each
 * watched thread the reaper keeps one end of a MessageChannel and the thread holds the other
 * (`rcu.watchPort()`, passed in its workerData and transferList). When the thread ends, however it
 * ends, Node closes its end, and the reaper's end emits 'close' on the reaper's own event loop. The
 * port carries no messages; the watched thread must never close it nor pass it on (a close reads
 * as a death, and the reaper would free the slots of a live reader).
 *
 * A port is bound to a threadId once the worker exists (`rcu.watch(worker, port)`): the threadId is
 * known only after `new Worker()`, which needs the port already. A death seen before its binding
 * arrives is reaped when the binding does.
 *
 *   creator                              reaper thread                   watched worker
 *   watchPort(): channel; ----watch id, end A---->  A.on('close')
 *   new Worker({workerData: {port: B}}) ---------------------------------------->  holds B
 *   watch(worker, B) -------bind id, threadId---->  (dies: Node closes B)
 *   (blocked in synchronize())            A 'close': reapThreadRoles(tid), report DIED
 *   synchronize() returns                 <- the slot's CTR is 0 (releaseSlot)
 */
import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";
import type { RcuHandle } from "./shared.js";
import { stopWorker } from "../common/worker-stop.js";

/** Messages from the creator to the reaper thread (watch-worker.ts), and its one reply. */
export type ReaperMessage =
  | { type: "watch"; id: number; port: MessagePort }
  | { type: "bind"; id: number; threadId: number }
  | { type: "close" }
  | { type: "error"; message: string };

/** The creator's handle on its reaper thread. Lazily started by `Rcu`; unref'd. */
export class RcuReaper {
  /** Errors of the reaper itself (a reap that threw), as messages. */
  readonly errors: string[] = [];
  private readonly worker: Worker;
  private readonly ids = new WeakMap<MessagePort, number>();
  private nextId = 0;
  private closed: Promise<void> | null = null;
  private exited = false;

  constructor(handle: RcuHandle) {
    this.worker = new Worker(new URL("./watch-worker.js", import.meta.url), { workerData: { handle } });
    this.worker.on("message", (m: ReaperMessage) => {
      if (m.type === "error") this.errors.push(m.message);
    });
    // After the "message" listener, which refs the worker again when added.
    this.worker.unref(); // never keeps the process alive
    this.worker.on("error", (e) => this.errors.push(`rcu reaper: ${e.message}`));
    this.worker.once("exit", () => {
      this.exited = true;
    });
  }

  /** True until close(), or until the reaper thread died itself. */
  get running(): boolean {
    return this.closed === null && !this.exited;
  }

  /** A new channel: one end goes to the reaper, the other is returned for the watched worker. */
  port(): MessagePort {
    const id = this.nextId++;
    const { port1, port2 } = new MessageChannel();
    this.worker.postMessage({ type: "watch", id, port: port1 } satisfies ReaperMessage, [port1]);
    this.ids.set(port2, id);
    return port2;
  }

  /**
   * Tells the reaper which thread holds `port` (one from port(), handed to that thread).
   * @throws RangeError for a port this reaper did not make, or one bound already.
   */
  bind(port: MessagePort, threadId: number): void {
    const id = this.ids.get(port);
    if (id === undefined)
      throw new RangeError(
        `Cannot watch thread ${threadId}: its port is not one of this domain's watchPort()`,
      );
    this.ids.delete(port);
    this.worker.postMessage({ type: "bind", id, threadId } satisfies ReaperMessage);
  }

  /** Stops the reaper thread; watched threads that die later are not reaped by it. Idempotent. */
  close(): Promise<void> {
    this.closed ??= stopWorker(this.worker, this.exited, { type: "close" } satisfies ReaperMessage);
    return this.closed;
  }
}
