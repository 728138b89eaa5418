/**
 * Stall reports: a reader that stays in a read-side section too long, a qsbr thread that reports no
 * quiescent state, a grace-period driver or callback worker that makes no progress.
 *
 * Stalls are found by whichever thread waits: a synchronize() caller, the callback worker driving
 * a grace period, a barrier() caller. The handler is per domain: `rcu.onStall = fn` makes the
 * calling thread the domain's handler thread (Ctl.STALL_HANDLER), and every report, from any
 * thread, reaches `fn` there. Functions cannot cross threads, so reports travel as data:
 *
 *   reporter (any thread)                          handler thread
 *   seq = STALLS++ (Atomics.add)                   Atomics.waitAsync(STALLS, seen) on its event loop,
 *   entry seq % ENTRIES: fields, then SEQ = seq+1  and drains in its own blocking waits
 *   notify(STALLS)                                 for s in seen..STALLS: entry SEQ == s+1 -> fn(report)
 *
 * The handler thread delivers its own reports at once, in order with the others. Delivery to
 * another thread needs it to run: from its event loop (waitAsync) or from one of its RCU waits
 * (synchronize, barrier, callAndWait). A thread blocked elsewhere gets them when it next runs; the
 * ring keeps the last ENTRIES (8) reports, older ones are dropped (stats().stalls counts them all).
 * With no handler set (or its thread reaped), the reporting thread prints the report with its own
 * default handler: `console.warn` unless `setRcuStallHandler()` replaced it.
 */
import { threadId as reporterId } from "node:worker_threads";
import { Ctl, StallEntry, StallWhat } from "./layout.js";

/** One stall report, as a stall handler receives it. */
export interface RcuStallReport {
  readonly what: StallWhat;
  /** worker_threads threadId of the thread blamed (-1 when unknown). */
  readonly threadId: number;
  /**
   * Reader slot of that thread, or -1; for StallWhat.CALLBACKS, the kind the worker is running;
   * for StallWhat.DIED, the number of reader slots the reaper released.
   */
  readonly slot: number;
  /** How long the wait had lasted when it was reported, in whole ms. */
  readonly ms: number;
  /** Grace period (GP_STARTED value) being waited for. */
  readonly gracePeriod: number;
  /** worker_threads threadId of the thread that found the stall. */
  readonly reporter: number;
  readonly message: string;
}

/** Receives stall reports. Keep it short and never block in it: it runs inside RCU waits. */
export type RcuStallHandler = (report: RcuStallReport) => void;

const defaultHandler: RcuStallHandler = (r) => console.warn(r.message);
let threadDefault: RcuStallHandler = defaultHandler;

/**
 * Sets this thread's default handler: it prints the reports this thread finds for domains that have
 * no handler (`rcu.onStall`). Null restores `console.warn`. Prefer `rcu.onStall`, which is per domain.
 */
export function setRcuStallHandler(h: RcuStallHandler | null): void {
  threadDefault = h ?? defaultHandler;
}

interface Delivery {
  readonly handler: RcuStallHandler;
  readonly ctl: Int32Array;
  /** STALLS value up to which reports were delivered (or dropped). */
  seen: number;
}

/** Atomics.waitAsync (Node 20 has it; the ES2022 typings this project compiles against do not). */
type WaitAsync = (
  a: Int32Array,
  index: number,
  value: number,
) => { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** This thread's domain handlers, by Ctl.DOMAIN_ID. */
const deliveries = new Map<number, Delivery>();

/**
 * Makes this thread the handler thread of the domain of `ctl`, with `handler` (null: no handler,
 * reporters print again). Reports made before the call are not delivered.
 */
export function setDomainStallHandler(ctl: Int32Array, handler: RcuStallHandler | null): void {
  const id = ctl[Ctl.DOMAIN_ID] as number;
  const me = reporterId + 1;
  if (handler === null) {
    deliveries.delete(id);
    Atomics.compareExchange(ctl, Ctl.STALL_HANDLER, me, 0);
    return;
  }
  const d: Delivery = { handler, ctl, seen: Atomics.load(ctl, Ctl.STALLS) };
  deliveries.set(id, d);
  // Pairs with reportStall()'s load: later reports are left in the ring for this thread.
  Atomics.store(ctl, Ctl.STALL_HANDLER, me);
  listen(id, d);
}

/** Drains on this thread's event loop whenever STALLS moves. Does not keep the process alive. */
function listen(id: number, d: Delivery): void {
  const r = waitAsync(d.ctl, Ctl.STALLS, d.seen);
  const again = () => {
    if (deliveries.get(id) !== d) return; // replaced or cleared
    // A report counted but not yet published: look again shortly instead of spinning.
    if (!drain(d)) setTimeout(again, 1).unref();
    else listen(id, d);
  };
  if (r.async) void r.value.then(again);
  else setImmediate(again).unref();
}

/**
 * Delivers the reports other threads left for this thread, if it is the handler thread of the
 * domain of `ctl`. Cheap when there is nothing to do; RCU waits call it while they wait.
 */
export function deliverStalls(ctl: Int32Array): void {
  if (deliveries.size === 0) return;
  const d = deliveries.get(ctl[Ctl.DOMAIN_ID] as number);
  if (d !== undefined) drain(d);
}

/** Delivers ring entries d.seen..STALLS-1. False if it stopped at an entry not yet published. */
function drain(d: Delivery): boolean {
  const ctl = d.ctl;
  const end = Atomics.load(ctl, Ctl.STALLS);
  for (; d.seen !== end; d.seen = (d.seen + 1) | 0) {
    const at = Ctl.STALL_RING + (d.seen & (StallEntry.ENTRIES - 1)) * StallEntry.STRIDE;
    const want = (d.seen + 1) | 0;
    // Pairs with reportStall()'s final SEQ store: the fields read below are the ones it wrote.
    const tag = Atomics.load(ctl, at + StallEntry.SEQ);
    if (((tag - want) | 0) < 0) return false; // not published yet
    if (tag !== want) continue; // overwritten by a newer report: dropped
    const what = Atomics.load(ctl, at + StallEntry.WHAT) as StallWhat;
    const tid = Atomics.load(ctl, at + StallEntry.TID);
    const slot = Atomics.load(ctl, at + StallEntry.SLOT);
    const ms = Atomics.load(ctl, at + StallEntry.MS);
    const gp = Atomics.load(ctl, at + StallEntry.GP);
    const reporter = Atomics.load(ctl, at + StallEntry.REPORTER);
    if (Atomics.load(ctl, at + StallEntry.SEQ) !== want) continue; // overwritten while read
    deliver(d.handler, what, tid, slot, ms, gp, reporter);
  }
  return true;
}

function deliver(
  handler: RcuStallHandler,
  what: StallWhat,
  tid: number,
  slot: number,
  ms: number,
  gp: number,
  reporter: number,
): void {
  const message = describe(what, tid, slot, ms, gp);
  try {
    handler({ what, threadId: tid, slot, ms, gracePeriod: gp, reporter, message });
  } catch (e) {
    console.error("rcu: the stall handler threw:", e);
  }
}

function describe(what: StallWhat, threadId: number, slot: number, ms: number, gp: number): string {
  switch (what) {
    case StallWhat.READER:
      return `rcu: stall: thread ${threadId} (slot ${slot}) has been inside a read-side section for ${ms} ms, blocking grace period ${gp}`;
    case StallWhat.QUIESCENT:
      return `rcu: stall: thread ${threadId} (slot ${slot}) is online and has reported no quiescent state for ${ms} ms, blocking grace period ${gp}`;
    case StallWhat.GP_HOLDER:
      return `rcu: stall: grace period ${gp} has not completed after ${ms} ms; thread ${threadId} holds the grace-period lock (reap it if that thread died)`;
    case StallWhat.DIED:
      return `rcu: thread ${threadId} died while registered and was reaped: ${slot} reader slot(s) released, grace period ${gp} no longer waits for it`;
    default:
      return `rcu: stall: a wait for the callback worker (thread ${threadId}) has lasted ${ms} ms; it is running callback kind ${slot}`;
  }
}

/**
 * Counts a stall in shared memory and hands it to the domain's handler: at once when this thread
 * holds it, through the ring when another thread does, else to this thread's default handler.
 */
export function reportStall(
  ctl: Int32Array,
  what: StallWhat,
  threadId: number,
  slot: number,
  ms: number,
  gp: number,
) {
  const wholeMs = Math.min(Math.round(ms), 0x7fffffff);
  Atomics.store(ctl, Ctl.LAST_STALL_TID, threadId);
  Atomics.store(ctl, Ctl.LAST_STALL_MS, wholeMs);
  Atomics.store(ctl, Ctl.LAST_STALL_WHAT, what);
  // Claims ring entry seq; drain() reads STALLS (Atomics.load) to learn how many were claimed.
  const seq = Atomics.add(ctl, Ctl.STALLS, 1);
  const at = Ctl.STALL_RING + (seq & (StallEntry.ENTRIES - 1)) * StallEntry.STRIDE;
  Atomics.store(ctl, at + StallEntry.WHAT, what);
  Atomics.store(ctl, at + StallEntry.TID, threadId);
  Atomics.store(ctl, at + StallEntry.SLOT, slot);
  Atomics.store(ctl, at + StallEntry.MS, wholeMs);
  Atomics.store(ctl, at + StallEntry.GP, gp);
  Atomics.store(ctl, at + StallEntry.REPORTER, reporterId);
  // Publication: pairs with drain()'s first and last loads of SEQ.
  Atomics.store(ctl, at + StallEntry.SEQ, (seq + 1) | 0);
  // Pairs with setDomainStallHandler()'s store: a handler set elsewhere gets the entry.
  const holder = Atomics.load(ctl, Ctl.STALL_HANDLER);
  if (holder === reporterId + 1) {
    deliverStalls(ctl);
  } else if (holder === 0) {
    deliver(threadDefault, what, threadId, slot, wholeMs, gp, reporterId);
  } else {
    Atomics.notify(ctl, Ctl.STALLS); // wakes the handler thread's waitAsync
  }
}
