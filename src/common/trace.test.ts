import assert from "node:assert/strict";
import { test } from "node:test";
import { TRACE_EVENT_NAMES, TraceBuffer, TraceEvent, TraceKind, traceNowUs } from "./trace.js";

test("TraceBuffer.writer() records events in order with the thread name", () => {
  const buf = TraceBuffer.create({ threads: 2, eventsPerThread: 16 });
  const w = buf.writer(1, "vcpu 0");
  w.begin(TraceEvent.PHASE, 100, 3);
  w.counter(TraceEvent.PENDING_PAGES, 42);
  w.complete(TraceEvent.FAULT_BATCH, 110, 5, 64);
  w.instant(TraceEvent.MARK, 7);
  w.end(TraceEvent.PHASE, 200);
  const c = buf.collect();
  assert.equal(c.threads.length, 1, "an unused slot is left out");
  const t = c.threads[0]!;
  assert.equal(t.name, "vcpu 0");
  assert.equal(t.slot, 1);
  assert.deepEqual(
    t.events.map((e) => [e.kind, e.ev, e.arg]),
    [
      [TraceKind.BEGIN, TraceEvent.PHASE, 3],
      [TraceKind.COUNTER, TraceEvent.PENDING_PAGES, 0],
      [TraceKind.COMPLETE, TraceEvent.FAULT_BATCH, 64],
      [TraceKind.INSTANT, TraceEvent.MARK, 7],
      [TraceKind.END, TraceEvent.PHASE, 0],
    ],
  );
  assert.equal(t.events[1]!.value, 42);
  assert.equal(t.events[2]!.tsUs, 110);
  assert.equal(t.events[2]!.value, 5);
  assert.equal(c.events, 5);
  assert.equal(c.dropped, 0);
});

test("TraceWriter drops the newest event when full and keeps room for open slices' ends", () => {
  const buf = TraceBuffer.create({ threads: 1, eventsPerThread: 4 });
  const w = buf.writer(0, "host");
  w.begin(TraceEvent.PHASE); // 1 record + 1 reserved
  w.begin(TraceEvent.WRITE_LOCK); // 2 records + 2 reserved: full
  w.counter(TraceEvent.PENDING_PAGES, 1); // dropped
  w.begin(TraceEvent.GRACE_PERIOD); // dropped
  w.end(TraceEvent.GRACE_PERIOD); // dropped with its begin
  w.end(TraceEvent.WRITE_LOCK);
  w.end(TraceEvent.PHASE);
  w.instant(TraceEvent.MARK); // dropped: ring full
  const t = buf.collect().threads[0]!;
  assert.deepEqual(
    t.events.map((e) => [e.kind, e.ev]),
    [
      [TraceKind.BEGIN, TraceEvent.PHASE],
      [TraceKind.BEGIN, TraceEvent.WRITE_LOCK],
      [TraceKind.END, TraceEvent.WRITE_LOCK],
      [TraceKind.END, TraceEvent.PHASE],
    ],
  );
  assert.equal(t.dropped, 4);
});

test("TraceWriter.end() without a begin() is counted as unbalanced, not recorded", () => {
  const buf = TraceBuffer.create({ threads: 1, eventsPerThread: 4 });
  const w = buf.writer(0, "host");
  w.end(TraceEvent.PHASE);
  const t = buf.collect().threads[0]!;
  assert.equal(t.events.length, 0);
  assert.equal(t.unbalanced, 1);
});

test("TraceBuffer.writer() refuses a second writer on a slot until close()", () => {
  const buf = TraceBuffer.create({ threads: 1, eventsPerThread: 8 });
  const w = buf.writer(0, "a");
  w.instant(TraceEvent.MARK);
  assert.throws(() => buf.writer(0, "b"), /another writer holds it/);
  w.close();
  const w2 = buf.writer(0, "b");
  w2.instant(TraceEvent.MARK);
  const t = buf.collect().threads[0]!;
  assert.equal(t.name, "b");
  assert.equal(t.events.length, 2, "a new writer appends after the old one's records");
  assert.throws(() => buf.writer(1, "c"), RangeError);
  assert.throws(() => TraceBuffer.create({ threads: 0 }), RangeError);
});

test("traceNowUs() is wall-clock microseconds", () => {
  const us = traceNowUs();
  assert.ok(Math.abs(us / 1000 - Date.now()) < 5000);
});

test("TRACE_EVENT_NAMES names every TraceEvent", () => {
  assert.equal(TRACE_EVENT_NAMES.length, TraceEvent.COUNT);
  assert.equal(new Set(TRACE_EVENT_NAMES).size, TRACE_EVENT_NAMES.length);
  assert.equal(TRACE_EVENT_NAMES[TraceEvent.PENDING_PAGES], "pending pages");
  assert.equal(TRACE_EVENT_NAMES[TraceEvent.PENDING_CALLBACKS], "pending callbacks");
});
