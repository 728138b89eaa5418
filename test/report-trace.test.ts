/**
 * Trace rings written by several worker threads at once: each slot keeps its own events in order,
 * a live collect() never sees a half-written record, and overflow drops the newest events, counts
 * them exactly and keeps every recorded slice closed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import {
  TraceBuffer,
  TraceEvent,
  TraceKind,
  type TraceRecord,
  type TraceThread,
  traceNowUs,
} from "../src/common/trace.js";
import { chromeTraceProblems, toChromeTrace } from "../src/report/perfetto.js";
import type { TraceWorkerData } from "./report-trace-worker.js";

const WORKERS = 4;
/** Rounds that fit whole (4 records each); the ring holds 2 more: one begin and its reserved end. */
const FIT = 20_000;
const ROUNDS = 25_000;
const CAPACITY = 4 * FIT + 2;

/** The record expected at index i of a slot (see the drop rule in trace.ts). */
function expected(slot: number, i: number): [TraceKind, TraceEvent, number] {
  if (i === 4 * FIT) return [TraceKind.BEGIN, TraceEvent.PHASE, FIT];
  if (i === 4 * FIT + 1) return [TraceKind.END, TraceEvent.PHASE, FIT];
  const round = Math.floor(i / 4);
  switch (i % 4) {
    case 0:
      return [TraceKind.BEGIN, TraceEvent.PHASE, round];
    case 1:
      return [TraceKind.COUNTER, TraceEvent.PENDING_PAGES, slot * 1_000_000 + round];
    case 2:
      return [TraceKind.COMPLETE, TraceEvent.FAULT_BATCH, round];
    default:
      return [TraceKind.END, TraceEvent.PHASE, round];
  }
}

function actual(e: TraceRecord): [TraceKind, TraceEvent, number] {
  return [e.kind, e.ev, e.kind === TraceKind.COUNTER ? e.value : e.arg];
}

/** Every record of the thread matches the expected sequence (a prefix of it while writers run). */
function checkPrefix(t: TraceThread): void {
  for (let i = 0; i < t.events.length; i++) {
    const want = expected(t.slot, i);
    const got = actual(t.events[i]!);
    if (got[0] !== want[0] || got[1] !== want[1] || got[2] !== want[2])
      assert.fail(`slot ${t.slot} record ${i}: got ${got.join("/")}, want ${want.join("/")}`);
  }
}

/** Starts one worker per entry, all released at once; resolves when every one is done. */
async function startWorkers(entries: Omit<TraceWorkerData, "start">[]): Promise<{ done: Promise<void> }> {
  const start = new SharedArrayBuffer(8);
  const startWords = new Int32Array(start);
  const done = entries.map((e) => {
    const data: TraceWorkerData = { ...e, start };
    const w = new Worker(new URL("./report-trace-worker.js", import.meta.url), { workerData: data });
    return new Promise<void>((resolve, reject) => {
      w.once("message", () => resolve());
      w.once("error", reject);
      w.once("exit", (code) => {
        if (code !== 0) reject(new Error(`trace worker exited with code ${code}`));
      });
    });
  });
  while (Atomics.load(startWords, 0) < entries.length) await new Promise((r) => setTimeout(r, 1));
  Atomics.store(startWords, 1, 1); // pairs with the workers' Atomics.load of word 1
  Atomics.notify(startWords, 1);
  return { done: Promise.all(done).then(() => undefined) };
}

test("TraceBuffer: concurrent workers fill their own rings; overflow is counted, never wraps", async () => {
  const buf = TraceBuffer.create({ threads: WORKERS, eventsPerThread: CAPACITY });
  const before = traceNowUs();
  const running = await startWorkers(
    Array.from({ length: WORKERS }, (_, slot) => ({ trace: buf.handle, slot, rounds: ROUNDS })),
  );
  let finished = false;
  const all = running.done.then(() => {
    finished = true;
  });
  let liveCollects = 0;
  while (!finished) {
    for (const t of buf.collect().threads) checkPrefix(t);
    liveCollects++;
    await new Promise((r) => setImmediate(r));
  }
  await all;
  const after = traceNowUs();

  const c = buf.collect();
  assert.equal(c.threads.length, WORKERS);
  for (const t of c.threads) {
    assert.equal(t.name, `vcpu ${t.slot}`);
    checkPrefix(t);
    assert.equal(t.events.length, CAPACITY, `slot ${t.slot} filled its ring`);
    assert.equal(t.dropped, 4 * ROUNDS - CAPACITY, `slot ${t.slot} counted every dropped event`);
    assert.equal(t.unbalanced, 0);
    for (const e of t.events) {
      // One clock for every thread: worker timestamps fall between the main thread's readings.
      assert.ok(e.tsUs >= before - 2000 && e.tsUs <= after + 2000, `slot ${t.slot} ts ${e.tsUs}`);
    }
  }
  assert.equal(c.events, WORKERS * CAPACITY);
  assert.equal(c.dropped, WORKERS * (4 * ROUNDS - CAPACITY));
  console.log(`# report-trace: ${liveCollects} collects while the workers wrote`);
});

for (const eventsPerThread of [4096, 64]) {
  test(`trace of real vCPU, host and RCU threads converts to a sound Perfetto trace (${eventsPerThread} events per thread)`, async () => {
    const buf = TraceBuffer.create({ threads: 4, eventsPerThread });
    const host = buf.writer(0, "host");
    const running = await startWorkers([
      { trace: buf.handle, slot: 1, rounds: 5, kind: "vcpu", name: "vcpu 0" },
      { trace: buf.handle, slot: 2, rounds: 5, kind: "vcpu", name: "vcpu 1" },
      { trace: buf.handle, slot: 3, rounds: 5, kind: "rcu", name: "rcu callbacks" },
    ]);
    let finished = false;
    const all = running.done.then(() => {
      finished = true;
    });
    host.begin(TraceEvent.PHASE, traceNowUs(), 0);
    // At most 200 samples, so that a slow machine cannot fill the host's ring in the 4096 case.
    for (let i = 0; !finished; i++) {
      if (i >= 200) {
        await all;
        break;
      }
      host.counter(TraceEvent.PENDING_PAGES, i % 97);
      host.counter(TraceEvent.PENDING_CALLBACKS, i % 13);
      if (i % 8 === 0) {
        host.begin(TraceEvent.WRITE_LOCK);
        host.end(TraceEvent.WRITE_LOCK);
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    await all;
    host.end(TraceEvent.PHASE);
    const collected = buf.collect();
    const trace = JSON.parse(JSON.stringify(toChromeTrace(collected, { phaseNames: ["Populate memory"] })));
    assert.deepEqual(
      chromeTraceProblems(trace, { threads: ["host", "vcpu 0", "vcpu 1", "rcu callbacks"] }),
      [],
    );
    assert.equal(trace.otherData.unmatchedEnds + trace.otherData.unclosedBegins, 0);
    if (eventsPerThread === 64) assert.ok(collected.dropped > 0, "the small rings overflowed");
    else assert.equal(collected.dropped, 0);
    assert.equal(trace.otherData.droppedEvents, collected.dropped);
  });
}
