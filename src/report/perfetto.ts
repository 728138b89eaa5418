/**
 * Trace rings -> Chrome JSON trace (`{traceEvents: [...]}`), which Perfetto (ui.perfetto.dev) and
 * chrome://tracing open directly.
 *
 * One process ("stage2"), one named track per ring slot (each vCPU, the host, the RCU callback
 * worker), sorted by slot. Slices are emitted as complete (`X`) events: begin/end pairs are matched
 * per thread first, so a track shows only slices that nest. Counters (`C`) become the process's
 * counter tracks "pending pages" and "pending callbacks". Timestamps are microseconds from the
 * earliest event; `otherData.traceStartUs` keeps the absolute time.
 *
 * Repairs are counted in `otherData`, never silent: an end with no matching begin is dropped
 * (`unmatchedEnds`), a begin whose end was never recorded is closed at the thread's last timestamp
 * (`unclosedBegins`), and a slice that starts inside another but outlives it is cut at its parent's
 * end (`clippedSlices`).
 */
import {
  TRACE_EVENT_NAMES,
  type TraceCollection,
  TraceEvent,
  TraceKind,
  type TraceThread,
} from "../common/trace.js";

export interface ChromeTraceEvent {
  name: string;
  ph: "M" | "X" | "C" | "i";
  pid: number;
  tid: number;
  ts?: number;
  dur?: number;
  cat?: string;
  s?: "t";
  args?: Record<string, number | string>;
}

/** A Chrome/Perfetto JSON trace, with the repairs and drops counted in `otherData`. */
export interface ChromeTrace {
  traceEvents: ChromeTraceEvent[];
  displayTimeUnit: "ms";
  otherData: {
    traceStartUs: number;
    events: number;
    droppedEvents: number;
    droppedByThread: Record<string, number>;
    unmatchedEnds: number;
    unclosedBegins: number;
    clippedSlices: number;
  };
}

/** How trace rings become a trace: the process name and the names of PHASE slices. */
export interface PerfettoOptions {
  /** Process track name; default "stage2". */
  processName?: string;
  /** Names of PHASE slices by their arg (the RunResult's phase names). */
  phaseNames?: readonly string[];
}

const PID = 1;

/** Microseconds to 1 ns precision: keeps float noise ("13.749999999068677") out of the file. */
function us(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** What each event's numeric argument means, for the slice's args panel. */
const ARG_NAMES: Record<number, string> = {
  [TraceEvent.PHASE]: "phase",
  [TraceEvent.FAULT_BATCH]: "faults",
  [TraceEvent.CALLBACK_BATCH]: "callbacks",
  [TraceEvent.WRITE_LOCK]: "pages",
  [TraceEvent.SYNC_FALLBACK]: "pages",
  [TraceEvent.DESTROY]: "pages",
};

interface Slice {
  ev: TraceEvent;
  arg: number;
  start: number;
  end: number;
}

interface Repairs {
  unmatchedEnds: number;
  unclosedBegins: number;
  clippedSlices: number;
}

/** Pairs begins with ends (innermost first) and gathers complete slices, in start order. */
function slicesOf(t: TraceThread, repairs: Repairs): Slice[] {
  const out: Slice[] = [];
  const open: Slice[] = [];
  let last = Number.NEGATIVE_INFINITY;
  for (const e of t.events) {
    last = Math.max(last, e.kind === TraceKind.COMPLETE ? e.tsUs + e.value : e.tsUs);
    if (e.kind === TraceKind.BEGIN) open.push({ ev: e.ev, arg: e.arg, start: e.tsUs, end: e.tsUs });
    else if (e.kind === TraceKind.COMPLETE)
      out.push({ ev: e.ev, arg: e.arg, start: e.tsUs, end: e.tsUs + e.value });
    else if (e.kind === TraceKind.END) {
      const top = open[open.length - 1];
      if (top === undefined || top.ev !== e.ev) {
        repairs.unmatchedEnds++;
        continue;
      }
      open.pop();
      top.end = Math.max(top.start, e.tsUs);
      out.push(top);
    }
  }
  for (const s of open) {
    repairs.unclosedBegins++;
    s.end = Math.max(s.start, last);
    out.push(s);
  }
  // Parents first: earlier start, then longer.
  out.sort((a, b) => a.start - b.start || b.end - a.end);
  return out;
}

/** Cuts slices that outlive the slice they start in, so every track nests. */
function nest(slices: Slice[], repairs: Repairs): void {
  const stack: Slice[] = [];
  for (const s of slices) {
    while (stack.length > 0 && stack[stack.length - 1]!.end <= s.start) stack.pop();
    const parent = stack[stack.length - 1];
    if (parent !== undefined && s.end > parent.end) {
      s.end = parent.end;
      repairs.clippedSlices++;
    }
    stack.push(s);
  }
}

function sliceName(ev: TraceEvent, arg: number, opts: PerfettoOptions): string {
  if (ev === TraceEvent.PHASE && opts.phaseNames?.[arg] !== undefined) return opts.phaseNames[arg]!;
  return TRACE_EVENT_NAMES[ev] ?? `event ${ev}`;
}

function argsOf(ev: TraceEvent, arg: number): Record<string, number> {
  return { [ARG_NAMES[ev] ?? "arg"]: arg };
}

function threadEvents(t: TraceThread, t0: number, opts: PerfettoOptions, repairs: Repairs) {
  const tid = t.slot + 1;
  const out: ChromeTraceEvent[] = [
    { name: "thread_name", ph: "M", pid: PID, tid, args: { name: t.name || `slot ${t.slot}` } },
    { name: "thread_sort_index", ph: "M", pid: PID, tid, args: { sort_index: t.slot } },
  ];
  const slices = slicesOf(t, repairs);
  nest(slices, repairs);
  for (const s of slices) {
    out.push({
      name: sliceName(s.ev, s.arg, opts),
      cat: TRACE_EVENT_NAMES[s.ev] ?? "event",
      ph: "X",
      pid: PID,
      tid,
      ts: us(s.start - t0),
      // Rounding is monotonic, so rounded ends still nest.
      dur: us(us(s.end - t0) - us(s.start - t0)),
      args: argsOf(s.ev, s.arg),
    });
  }
  for (const e of t.events) {
    const name = TRACE_EVENT_NAMES[e.ev] ?? `event ${e.ev}`;
    if (e.kind === TraceKind.COUNTER)
      out.push({ name, ph: "C", pid: PID, tid, ts: us(e.tsUs - t0), args: { [name]: e.value } });
    else if (e.kind === TraceKind.INSTANT)
      out.push({ name, ph: "i", s: "t", pid: PID, tid, ts: us(e.tsUs - t0), args: argsOf(e.ev, e.arg) });
  }
  return out;
}

/** Converts collected trace rings into a Chrome JSON trace. */
export function toChromeTrace(trace: TraceCollection, opts: PerfettoOptions = {}): ChromeTrace {
  let t0 = Number.POSITIVE_INFINITY;
  for (const t of trace.threads) for (const e of t.events) t0 = Math.min(t0, e.tsUs);
  if (!Number.isFinite(t0)) t0 = 0;
  const repairs: Repairs = { unmatchedEnds: 0, unclosedBegins: 0, clippedSlices: 0 };
  const traceEvents: ChromeTraceEvent[] = [
    { name: "process_name", ph: "M", pid: PID, tid: 0, args: { name: opts.processName ?? "stage2" } },
    { name: "process_sort_index", ph: "M", pid: PID, tid: 0, args: { sort_index: 0 } },
  ];
  const droppedByThread: Record<string, number> = {};
  for (const t of trace.threads) {
    traceEvents.push(...threadEvents(t, t0, opts, repairs));
    if (t.dropped > 0) droppedByThread[t.name || `slot ${t.slot}`] = t.dropped;
  }
  return {
    traceEvents,
    displayTimeUnit: "ms",
    otherData: {
      traceStartUs: t0,
      events: trace.events,
      droppedEvents: trace.dropped,
      droppedByThread,
      ...repairs,
    },
  };
}

/** What `chromeTraceProblems` requires of a trace: thread names and counter tracks. */
export interface TraceExpectations {
  /** Thread names that must have a track. */
  threads?: readonly string[];
  /** Counter names that must have samples; default "pending pages" and "pending callbacks". */
  counters?: readonly string[];
}

/** Slices on one tid must be disjoint or nested (1 ps of float slack). */
function nestingProblems(events: readonly ChromeTraceEvent[]): string[] {
  // A thread is (pid, tid): a trace of several runs holds one process per run.
  const byThread = new Map<string, ChromeTraceEvent[]>();
  for (const e of events) {
    if (e.ph !== "X") continue;
    const key = `${e.pid}/${e.tid}`;
    const list = byThread.get(key);
    if (list) list.push(e);
    else byThread.set(key, [e]);
  }
  const problems: string[] = [];
  for (const [thread, xs] of byThread) {
    xs.sort((a, b) => a.ts! - b.ts! || b.dur! - a.dur!);
    const stack: ChromeTraceEvent[] = [];
    for (const x of xs) {
      while (stack.length > 0 && stack.at(-1)!.ts! + stack.at(-1)!.dur! <= x.ts!) stack.pop();
      const p = stack.at(-1);
      if (p !== undefined && x.ts! + x.dur! > p.ts! + p.dur! + 1e-6)
        problems.push(`pid/tid ${thread}: "${x.name}" at ${x.ts} µs outlives "${p.name}" at ${p.ts} µs`);
      stack.push(x);
    }
  }
  return problems;
}

/**
 * What is wrong with a Chrome JSON trace as stage2 writes it: events without a named thread,
 * slices that do not nest per thread, missing counters or threads. Empty when it is sound. For
 * tests of `--trace` output; takes the parsed file.
 */
export function chromeTraceProblems(trace: unknown, expect: TraceExpectations = {}): string[] {
  const events = (trace as ChromeTrace | null)?.traceEvents;
  if (!Array.isArray(events)) return ["not a Chrome JSON trace: no traceEvents array"];
  const problems: string[] = [];
  const named = new Map<string, string>();
  for (const e of events)
    if (e.ph === "M" && e.name === "thread_name" && typeof e.args?.name === "string" && e.args.name !== "")
      named.set(`${e.pid}/${e.tid}`, e.args.name);
  for (const e of events) {
    if (e.ph === "M") continue;
    if (typeof e.ts !== "number" || !Number.isFinite(e.ts)) problems.push(`"${e.name}" has no timestamp`);
    if (e.ph === "X" && !(typeof e.dur === "number" && e.dur >= 0))
      problems.push(`"${e.name}" has no duration`);
    if (!named.has(`${e.pid}/${e.tid}`))
      problems.push(`pid/tid ${e.pid}/${e.tid} ("${e.name}") has no thread name`);
  }
  problems.push(...nestingProblems(events));
  const names = new Set(named.values());
  for (const t of expect.threads ?? []) if (!names.has(t)) problems.push(`no track named "${t}"`);
  for (const c of expect.counters ?? ["pending pages", "pending callbacks"])
    if (!events.some((e) => e.ph === "C" && e.name === c && typeof e.args?.[c] === "number"))
      problems.push(`no samples of the counter "${c}"`);
  return [...new Set(problems)];
}
