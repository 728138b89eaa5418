/**
 * Main-thread helpers of the multi-worker RCU tests (named *-worker.ts only to sit with them):
 * start a script worker (rcu-script-worker.ts) and wait for its messages.
 */
import { Worker } from "node:worker_threads";
import type { Rcu } from "../src/rcu/mod.js";
import type { Step } from "./rcu-script-worker.js";

export interface ScriptWorker {
  worker: Worker;
  /** Resolves with the next message equal to `msg`. */
  next(msg: string): Promise<void>;
  exited: Promise<number>;
}

export function startScript(rcu: Rcu, flags: SharedArrayBuffer, steps: Step[]): ScriptWorker {
  const worker = new Worker(new URL("./rcu-script-worker.js", import.meta.url), {
    workerData: { handle: rcu.handle, flags, steps },
  });
  rcu.watch(worker);
  const waiting = new Map<string, () => void>();
  /** Messages that arrived with nobody waiting, counted (a script may post one text twice). */
  const seen = new Map<string, number>();
  worker.on("message", (m: string) => {
    const w = waiting.get(m);
    if (w) {
      waiting.delete(m); // one waiter per message
      w();
    } else seen.set(m, (seen.get(m) ?? 0) + 1);
  });
  worker.on("error", (e) => console.error("script worker failed:", e));
  const exited = new Promise<number>((resolve) => worker.once("exit", resolve));
  const next = (msg: string) => {
    const n = seen.get(msg) ?? 0;
    if (n === 0) return new Promise<void>((resolve) => waiting.set(msg, resolve));
    if (n === 1) seen.delete(msg);
    else seen.set(msg, n - 1);
    return Promise.resolve();
  };
  return { worker, next, exited };
}

export function testPlugin(counters: SharedArrayBuffer) {
  return { url: new URL("./rcu-test-plugin-worker.js", import.meta.url).href, data: { counters } };
}
