/**
 * Stopping a helper thread that serves a domain (the RCU reaper, a VM's death watch): ask it by
 * message to close, keep the process alive until it has exited, resolve then.
 */
import type { Worker } from "node:worker_threads";

/**
 * Posts `message` (the thread's own "close") to `worker` and resolves once it has exited; at once
 * if `exited` says it already did. The worker is ref'd meanwhile: an unref'd helper would let the
 * process end before its close ran.
 */
export function stopWorker(worker: Worker, exited: boolean, message: unknown): Promise<void> {
  return new Promise((resolve) => {
    if (exited) {
      resolve();
      return;
    }
    worker.ref(); // until it has exited
    worker.once("exit", () => resolve());
    worker.postMessage(message);
  });
}
