/**
 * Benchmark of the RCU layer (src/rcu), held against liburcu on the same machine
 * (/work/shared/anchors/liburcu_bench.c measures the same things in C).
 *
 *   mbReadPairNs      readLock + one protected load + readUnlock, mb flavor (anchor: memb pair)
 *   qsbrReadPairNs    the same in qsbr, plus one quiescentState() per 64 reads, like the anchor
 *   syncIdleUs        synchronize() with no reader in a section
 *   syncWithReaderUs  publish a node, synchronize(), "free" the old one, while a worker reads in a loop
 *   callPerSec        call() N callbacks, then barrier(): callbacks run per second, end to end
 *   callEnqueuePerSec call() alone
 *
 * Read pairs are the best of several rounds (noise from the other core only adds). quick: a few
 * hundred ms in all, for smoke tests.
 */
import { Worker } from "node:worker_threads";
import { Rcu, type RcuThread } from "../rcu/mod.js";
import type { BenchOptions } from "./options.js";
import { BENCH_KIND_COUNT } from "./rcu-callbacks.js";

export interface RcuBenchResult {
  mbReadPairNs: number;
  qsbrReadPairNs: number;
  syncIdleUs: number;
  syncWithReaderUs: number;
  callPerSec: number;
  callEnqueuePerSec: number;
  /** Grace periods the call() run needed (one per batch the worker took). */
  callGracePeriods: number;
}

interface Sizes {
  pairs: number;
  rounds: number;
  syncs: number;
  calls: number;
}

const FULL: Sizes = { pairs: 20_000_000, rounds: 5, syncs: 2000, calls: 2_000_000 };
const QUICK: Sizes = { pairs: 200_000, rounds: 2, syncs: 200, calls: 50_000 };

// The protected load is a plain Int32 read, the counterpart of the anchor's rcu_dereference()
// (a READ_ONCE: no fence; Int32 reads never tear). Atomics.load would add ~4 ns here.
function timeMbPairs(t: RcuThread, ptr: Int32Array, n: number): number {
  let sum = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    t.readLock();
    sum += ptr[ptr[0] as number] as number;
    t.readUnlock();
  }
  const ns = ((performance.now() - t0) * 1e6) / n;
  return sum === -1 ? 0 : ns;
}

function timeQsbrPairs(t: RcuThread, ptr: Int32Array, n: number): number {
  let sum = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    t.readLock();
    sum += ptr[ptr[0] as number] as number;
    t.readUnlock();
    if ((i & 63) === 0) t.quiescentState();
  }
  const ns = ((performance.now() - t0) * 1e6) / n;
  return sum === -1 ? 0 : ns;
}

async function readPairNs(flavor: "mb" | "qsbr", sz: Sizes): Promise<number> {
  const rcu = await Rcu.create({ flavor, callbackWorker: false });
  const t = rcu.register();
  const ptr = new Int32Array(new SharedArrayBuffer(64));
  ptr[0] = 4;
  const time = flavor === "mb" ? timeMbPairs : timeQsbrPairs;
  time(t, ptr, Math.min(sz.pairs, 2_000_000));
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < sz.rounds; r++) best = Math.min(best, time(t, ptr, sz.pairs));
  t.unregister();
  return best;
}

function timeSyncs(t: RcuThread, n: number, ptr: Int32Array | null): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    if (ptr !== null) Atomics.store(ptr, 0, 4 + (i & 7)); // publish another node
    t.synchronize();
    if (ptr !== null) ptr[4 + ((i + 7) & 7)] = i; // "free" (reuse) the node retired before
  }
  return ((performance.now() - t0) * 1000) / n;
}

async function syncIdleUs(sz: Sizes): Promise<number> {
  const rcu = await Rcu.create({ flavor: "mb", callbackWorker: false });
  const t = rcu.register();
  timeSyncs(t, sz.syncs, null);
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < 3; r++) best = Math.min(best, timeSyncs(t, sz.syncs, null));
  t.unregister();
  return best;
}

async function syncWithReaderUs(sz: Sizes): Promise<number> {
  const rcu = await Rcu.create({ flavor: "mb", callbackWorker: false });
  const t = rcu.register();
  const node = new SharedArrayBuffer(64);
  const stop = new SharedArrayBuffer(4);
  const ptr = new Int32Array(node);
  ptr[0] = 4;
  const reader = new Worker(new URL("./rcu-reader-worker.js", import.meta.url), {
    workerData: { handle: rcu.handle, node, stop },
  });
  rcu.watch(reader);
  await new Promise((resolve) => reader.once("message", resolve));
  timeSyncs(t, Math.min(sz.syncs, 500), ptr);
  const us = timeSyncs(t, sz.syncs, ptr);
  const done = new Promise((resolve) => reader.once("exit", resolve));
  Atomics.store(new Int32Array(stop), 0, 1);
  await done;
  t.unregister();
  return us;
}

async function callThroughput(sz: Sizes): Promise<{ perSec: number; enqueuePerSec: number; gps: number }> {
  const counter = new SharedArrayBuffer(8);
  const rcu = await Rcu.create({
    flavor: "mb",
    poolHeads: sz.calls + 65536,
    plugins: [{ url: new URL("./rcu-callbacks.js", import.meta.url).href, data: { counter } }],
  });
  const t = rcu.register();
  for (let i = 0; i < 10_000; i++) t.call(BENCH_KIND_COUNT, 1); // warm up the JIT and the worker
  t.barrier();
  const gps0 = rcu.stats().gracePeriods;
  const t0 = performance.now();
  for (let i = 0; i < sz.calls; i++) {
    if (t.call(BENCH_KIND_COUNT, 1) !== 0) throw new Error("rcu bench: call() failed: pool sized too small");
  }
  const t1 = performance.now();
  t.barrier();
  const t2 = performance.now();
  const gps = rcu.stats().gracePeriods - gps0;
  const ran = new Float64Array(counter)[0] as number;
  t.unregister();
  await rcu.close();
  if (ran !== sz.calls + 10_000)
    throw new Error(`rcu bench: ${ran} callbacks ran, expected ${sz.calls + 10_000}`);
  return { perSec: (sz.calls * 1000) / (t2 - t0), enqueuePerSec: (sz.calls * 1000) / (t1 - t0), gps };
}

/** Runs every RCU measurement; quick keeps the total to a few hundred ms. */
export async function runRcuBench(opts: BenchOptions = {}): Promise<RcuBenchResult> {
  const sz = opts.quick ? QUICK : FULL;
  const step = (done: number, what: string): void => opts.progress?.(done, 5, what);
  step(0, "mb read pairs");
  const mbReadPairNs = await readPairNs("mb", sz);
  step(1, "qsbr read pairs");
  const qsbrReadPairNs = await readPairNs("qsbr", sz);
  step(2, "synchronize, idle");
  const syncIdle = await syncIdleUs(sz);
  step(3, "synchronize, busy reader");
  const syncReader = await syncWithReaderUs(sz);
  step(4, "call_rcu throughput");
  const calls = await callThroughput(sz);
  return {
    mbReadPairNs,
    qsbrReadPairNs,
    syncIdleUs: syncIdle,
    syncWithReaderUs: syncReader,
    callPerSec: calls.perSec,
    callEnqueuePerSec: calls.enqueuePerSec,
    callGracePeriods: calls.gps,
  };
}
