/**
 * Worker of report-trace.test.ts: waits for the start word, then writes `rounds` rounds of
 * (begin PHASE, counter PENDING_PAGES, complete FAULT_BATCH, end PHASE) into its own slot.
 */
import { parentPort, workerData } from "node:worker_threads";
import { TraceBuffer, type TraceBufferHandle, TraceEvent, traceNowUs } from "../src/common/trace.js";

export interface TraceWorkerData {
  trace: TraceBufferHandle;
  slot: number;
  rounds: number;
  /** Word 0: workers ready; the main thread stores 1 into word 1 to start them all. */
  start: SharedArrayBuffer;
}

const data = workerData as TraceWorkerData;
const w = TraceBuffer.attach(data.trace).writer(data.slot, `vcpu ${data.slot}`);
const start = new Int32Array(data.start);
Atomics.add(start, 0, 1);
// Pairs with the main thread's Atomics.store + notify of word 1.
while (Atomics.load(start, 1) === 0) Atomics.wait(start, 1, 0, 100);
for (let i = 0; i < data.rounds; i++) {
  w.begin(TraceEvent.PHASE, traceNowUs(), i);
  w.counter(TraceEvent.PENDING_PAGES, data.slot * 1_000_000 + i);
  w.complete(TraceEvent.FAULT_BATCH, traceNowUs(), 0.5, i);
  w.end(TraceEvent.PHASE, traceNowUs(), i);
}
w.close();
parentPort!.postMessage("done");
