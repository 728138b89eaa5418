/**
 * Worker of report-trace.test.ts: waits for the start word, then writes into its own slot either
 * `rounds` rounds of (begin PHASE, counter PENDING_PAGES, complete FAULT_BATCH, end PHASE)
 * ("pattern"), or a vCPU-like history on the real clock ("vcpu": phases holding fault batches that
 * each time a little busy work) or an RCU-worker-like one ("rcu": grace periods then callback batches).
 */
import { parentPort, workerData } from "node:worker_threads";
import { TraceBuffer, type TraceBufferHandle, TraceEvent, traceNowUs } from "../src/common/trace.js";

export interface TraceWorkerData {
  trace: TraceBufferHandle;
  slot: number;
  rounds: number;
  /** Word 0: workers ready; the main thread stores 1 into word 1 to start them all. */
  start: SharedArrayBuffer;
  kind?: "pattern" | "vcpu" | "rcu";
  name?: string;
}

function busy(n: number): number {
  let x = 0;
  for (let i = 0; i < n; i++) x = (x * 31 + i) | 0;
  return x;
}

const data = workerData as TraceWorkerData;
const w = TraceBuffer.attach(data.trace).writer(data.slot, data.name ?? `vcpu ${data.slot}`);
const start = new Int32Array(data.start);
Atomics.add(start, 0, 1);
// Pairs with the main thread's Atomics.store + notify of word 1.
while (Atomics.load(start, 1) === 0) Atomics.wait(start, 1, 0, 100);
let sink = 0;
if (data.kind === "vcpu") {
  for (let phase = 0; phase < data.rounds; phase++) {
    w.begin(TraceEvent.PHASE, traceNowUs(), phase);
    for (let b = 0; b < 20; b++) {
      w.begin(TraceEvent.FAULT_BATCH, traceNowUs(), 64);
      sink += busy(2000);
      w.end(TraceEvent.FAULT_BATCH);
    }
    w.end(TraceEvent.PHASE);
  }
} else if (data.kind === "rcu") {
  for (let i = 0; i < data.rounds * 10; i++) {
    const start = traceNowUs();
    sink += busy(3000);
    w.complete(TraceEvent.GRACE_PERIOD, start, traceNowUs() - start);
    w.begin(TraceEvent.CALLBACK_BATCH, traceNowUs(), 16);
    sink += busy(1000);
    w.end(TraceEvent.CALLBACK_BATCH);
  }
} else {
  for (let i = 0; i < data.rounds; i++) {
    w.begin(TraceEvent.PHASE, traceNowUs(), i);
    w.counter(TraceEvent.PENDING_PAGES, data.slot * 1_000_000 + i);
    w.complete(TraceEvent.FAULT_BATCH, traceNowUs(), 0.5, i);
    w.end(TraceEvent.PHASE, traceNowUs(), i);
  }
}
w.close();
parentPort!.postMessage(sink === 0.5 ? "" : "done");
