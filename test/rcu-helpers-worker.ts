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
  const seen = new Set<string>();
  worker.on("message", (m: string) => {
    const w = waiting.get(m);
    if (w) w();
    else seen.add(m);
  });
  worker.on("error", (e) => console.error("script worker failed:", e));
  const exited = new Promise<number>((resolve) => worker.once("exit", resolve));
  const next = (msg: string) =>
    seen.delete(msg) ? Promise.resolve() : new Promise<void>((resolve) => waiting.set(msg, resolve));
  return { worker, next, exited };
}

export function testPlugin(counters: SharedArrayBuffer) {
  return { url: new URL("./rcu-test-plugin-worker.js", import.meta.url).href, data: { counters } };
}
