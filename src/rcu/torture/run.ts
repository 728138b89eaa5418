/**
 * rcutorture for this RCU: reader workers and one updater worker over a pipe of 10 elements
 * (pipe.ts), for one flavor and one way of retiring elements. Race-point delays are injected in
 * every thread, callback worker included, from one seed.
 *
 * Pass criteria (checked by the caller): readers saw only stages 0 and 1, and never a freed element.
 */
import { Worker } from "node:worker_threads";
import type { RcuFlavor } from "../options.js";
import { Rcu } from "../rcu.js";
import type { RcuStats } from "../stats.js";
import { ElemState, PIPE_LEN, Pipe } from "./pipe.js";
import type { ReaderResult, TortureWorkerData } from "./worker.js";

/** How the updater retires elements; `none` (no grace period) is the deliberately broken control. */
export type RetireMode = "sync" | "call" | "poll" | "none";

export interface TortureOptions {
  flavor: RcuFlavor;
  mode: RetireMode;
  /** Reader workers (at least 2 for the test). */
  readers: number;
  /** How long the updater runs, in ms. */
  durationMs: number;
  seed: number;
}

export interface TortureResult {
  updates: number;
  /** stages[s] = sections that saw stage s (2 = a freed element). */
  stages: number[];
  freedSeen: number;
  sections: number;
  stats: RcuStats;
}

function initPipe(pipe: Int32Array): void {
  for (let e = 0; e < PIPE_LEN; e++) {
    const at = Pipe.ELEMS + e * Pipe.STRIDE;
    pipe[at + Pipe.STAGE] = 2;
    pipe[at + Pipe.STATE] = ElemState.FREE;
  }
  pipe[Pipe.ELEMS + Pipe.STATE] = ElemState.IN_USE;
  pipe[Pipe.ELEMS + Pipe.STAGE] = 0;
  pipe[Pipe.ELEMS + Pipe.ALIVE] = 1;
  pipe[Pipe.CURRENT] = 0;
}

function start(
  rcu: Rcu,
  data: Omit<TortureWorkerData, "handle">,
): { worker: Worker; done: Promise<unknown> } {
  const worker = new Worker(new URL("./worker.js", import.meta.url), {
    workerData: { ...data, handle: rcu.handle },
  });
  rcu.watch(worker);
  const done = new Promise((resolve, reject) => {
    worker.on("message", (m: { type: string; result?: unknown }) => {
      if (m.type === "done") resolve(m.result);
    });
    worker.once("error", reject);
    worker.once("exit", (code) =>
      reject(new Error(`torture ${data.role} exited with code ${code} before it reported`)),
    );
  });
  return { worker, done };
}

function ready(w: Worker): Promise<void> {
  return new Promise((resolve) => w.once("message", () => resolve()));
}

export async function runTorture(opts: TortureOptions): Promise<TortureResult> {
  const pipeSab = new SharedArrayBuffer(Pipe.WORDS * 4);
  const pipe = new Int32Array(pipeSab);
  initPipe(pipe);
  const rcu = await Rcu.create({
    flavor: opts.flavor,
    gpDelayMs: 0.2,
    stallTimeoutMs: 20_000,
    plugins: [{ url: new URL("./pipe.js", import.meta.url).href, data: { pipe: pipeSab, seed: opts.seed } }],
  });
  const common = { mode: opts.mode, pipe: pipeSab };
  const readers = Array.from({ length: opts.readers }, (_, i) =>
    start(rcu, { ...common, role: "reader", seed: opts.seed + 7919 * (i + 1) }),
  );
  await Promise.all(readers.map((r) => ready(r.worker)));
  const updater = start(rcu, { ...common, role: "updater", seed: opts.seed });
  // The clock starts once the updater runs: a worker can take longer than a short run to start on
  // a loaded machine, and a run that stops it before its first update checks nothing.
  await ready(updater.worker);
  await new Promise((resolve) => setTimeout(resolve, opts.durationMs));
  Atomics.store(pipe, Pipe.STOP, 1);
  Atomics.notify(pipe, Pipe.FREE_COUNT);
  const { updates } = (await updater.done) as { updates: number };
  const results = (await Promise.all(readers.map((r) => r.done))) as ReaderResult[];
  await rcu.close();
  const stages = [0, 0, 0];
  let freedSeen = 0;
  let sections = 0;
  for (const r of results) {
    for (let s = 0; s < 3; s++) stages[s]! += r.stages[s];
    freedSeen += r.freedSeen;
    sections += r.sections;
  }
  return { updates, stages, freedSeen, sections, stats: rcu.stats() };
}
