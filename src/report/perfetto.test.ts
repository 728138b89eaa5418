import assert from "node:assert/strict";
import { test } from "node:test";
import { TraceBuffer, type TraceCollection, TraceEvent, type TraceWriter } from "../common/trace.js";
import { Rng, seedFromEnv } from "../common/rng.js";
import { type ChromeTraceEvent, chromeTraceProblems, toChromeTrace } from "./perfetto.js";

const SLICES = [
  TraceEvent.PHASE,
  TraceEvent.FAULT_BATCH,
  TraceEvent.GRACE_PERIOD,
  TraceEvent.CALLBACK_BATCH,
  TraceEvent.WRITE_LOCK,
];

/** A random but well-formed history: nested begin/end, completes inside the open slice, counters. */
function randomHistory(w: TraceWriter, rng: Rng, steps: number, t0: number): void {
  const open: TraceEvent[] = [];
  let t = t0;
  for (let i = 0; i < steps; i++) {
    t += 1 + rng.below(50) + rng.next();
    const r = rng.below(10);
    if (r < 3 && open.length < 6) {
      const ev = SLICES[rng.below(SLICES.length)]!;
      open.push(ev);
      w.begin(ev, t, ev === TraceEvent.PHASE ? 0 : i);
    } else if (r < 6 && open.length > 0) w.end(open.pop()!, t);
    else if (r < 8) {
      const dur = rng.below(20) * rng.next();
      w.complete(TraceEvent.FAULT_BATCH, t, dur, 8);
      t += dur;
    } else w.counter(r === 8 ? TraceEvent.PENDING_PAGES : TraceEvent.PENDING_CALLBACKS, rng.below(1000));
  }
  while (open.length > 0) {
    t += 1;
    w.end(open.pop()!, t);
  }
}

function collectFrom(threads: string[], seed: number, steps: number): TraceCollection {
  const buf = TraceBuffer.create({ threads: threads.length, eventsPerThread: 4 * steps });
  const rng = new Rng(seed);
  threads.forEach((name, slot) => {
    randomHistory(buf.writer(slot, name), rng, steps, 1_700_000_000_000_000 + rng.below(1000));
  });
  return buf.collect();
}

test("toChromeTrace() names every thread, nests slices per tid and keeps counters", () => {
  const seed = seedFromEnv();
  console.log(`# perfetto: seed ${seed} (replay: STAGE2_SEED=${seed})`);
  const names = ["vcpu 0", "vcpu 1", "host", "rcu callbacks"];
  const trace = toChromeTrace(collectFrom(names, seed, 2000), { phaseNames: ["Populate memory"] });
  const parsed = JSON.parse(JSON.stringify(trace)) as typeof trace;
  const ev = parsed.traceEvents;
  const threadNames = ev.filter((e) => e.ph === "M" && e.name === "thread_name").map((e) => e.args!.name);
  assert.deepEqual(threadNames, names, `seed ${seed}`);
  assert.ok(ev.some((e) => e.ph === "M" && e.name === "process_name" && e.args!.name === "stage2"));
  assert.deepEqual(chromeTraceProblems(parsed, { threads: names }), [], `seed ${seed}`);
  for (const counter of ["pending pages", "pending callbacks"])
    assert.ok(ev.some((e) => e.ph === "C" && e.name === counter && typeof e.args![counter] === "number"));
  const tids = new Set(ev.filter((e) => e.ph === "X").map((e) => e.tid));
  assert.equal(tids.size, names.length, `every thread has slices (seed ${seed})`);
  assert.ok(
    ev.filter((e) => e.ph !== "M").every((e) => e.ts! >= 0),
    "timestamps start at 0",
  );
  assert.deepEqual(
    [parsed.otherData.unmatchedEnds, parsed.otherData.unclosedBegins, parsed.otherData.clippedSlices],
    [0, 0, 0],
  );
  assert.ok(
    ev.some((e) => e.ph === "X" && e.name === "Populate memory"),
    "phase slices take their names",
  );
});

test("chromeTraceProblems() catches overlapping slices, unnamed threads and missing counters", () => {
  const name: ChromeTraceEvent = { name: "thread_name", ph: "M", pid: 1, tid: 1, args: { name: "host" } };
  const x = (ts: number, dur: number, tid = 1): ChromeTraceEvent => ({
    name: "s",
    ph: "X",
    pid: 1,
    tid,
    ts,
    dur,
  });
  const c = (n: string): ChromeTraceEvent => ({ name: n, ph: "C", pid: 1, tid: 1, ts: 0, args: { [n]: 1 } });
  const counters = [c("pending pages"), c("pending callbacks")];
  const ok = { traceEvents: [name, x(0, 10), x(2, 3), x(10, 5), ...counters] };
  assert.deepEqual(chromeTraceProblems(ok, { threads: ["host"] }), []);
  const overlap = chromeTraceProblems({ traceEvents: [name, x(0, 10), x(5, 10), ...counters] });
  assert.deepEqual(overlap, ['pid/tid 1/1: "s" at 5 µs outlives "s" at 0 µs']);
  // The same tid in two processes (two runs in one trace) is two threads: no overlap.
  const twoRuns = {
    traceEvents: [name, { ...name, pid: 2 }, x(0, 10), { ...x(5, 10), pid: 2 }, ...counters],
  };
  assert.deepEqual(chromeTraceProblems(twoRuns), []);
  assert.deepEqual(chromeTraceProblems({ traceEvents: [name, x(0, 1, 2), ...counters] }), [
    'pid/tid 1/2 ("s") has no thread name',
  ]);
  assert.deepEqual(
    chromeTraceProblems({ traceEvents: [name, c("pending pages")] }, { threads: ["vcpu 0"] }),
    ['no track named "vcpu 0"', 'no samples of the counter "pending callbacks"'],
  );
  assert.deepEqual(chromeTraceProblems({}), ["not a Chrome JSON trace: no traceEvents array"]);
});

test("toChromeTrace() repairs and counts unmatched ends, unclosed begins and overlapping slices", () => {
  const buf = TraceBuffer.create({ threads: 1, eventsPerThread: 16 });
  const w = buf.writer(0, "host");
  w.begin(TraceEvent.PHASE, 100);
  w.begin(TraceEvent.WRITE_LOCK, 110);
  w.end(TraceEvent.GRACE_PERIOD, 120); // does not match the innermost open slice
  w.end(TraceEvent.WRITE_LOCK, 130);
  w.complete(TraceEvent.FAULT_BATCH, 125, 50); // inside PHASE, which stays open
  w.complete(TraceEvent.CALLBACK_BATCH, 105, 20); // overlaps WRITE_LOCK [110,130) without nesting
  // PHASE never ends: closed at the last timestamp (175)
  const trace = toChromeTrace(buf.collect());
  assert.equal(trace.otherData.unmatchedEnds, 1);
  assert.equal(trace.otherData.unclosedBegins, 1);
  assert.ok(trace.otherData.clippedSlices >= 1);
  assert.deepEqual(chromeTraceProblems(trace, { counters: [] }), []);
  const phase = trace.traceEvents.find((e) => e.ph === "X" && e.name === "phase")!;
  assert.equal(phase.dur, 75);
});

test("toChromeTrace() reports dropped events per thread", () => {
  const buf = TraceBuffer.create({ threads: 1, eventsPerThread: 2 });
  const w = buf.writer(0, "vcpu 0");
  for (let i = 0; i < 5; i++) w.counter(TraceEvent.PENDING_PAGES, i);
  const trace = toChromeTrace(buf.collect());
  assert.equal(trace.otherData.droppedEvents, 3);
  assert.deepEqual(trace.otherData.droppedByThread, { "vcpu 0": 3 });
});
