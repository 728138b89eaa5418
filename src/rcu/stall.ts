/**
 * Stall reports: a reader that stays in a read-side section too long, a qsbr thread that reports no
 * quiescent state, a grace-period driver or callback worker that makes no progress.
 *
 * Each report is counted in shared memory (Ctl.STALLS, LAST_STALL_*) so that every thread can see
 * it, and handed to the reporting thread's handler: by default a `console.warn` line naming the
 * thread id. Handlers are per thread (module state is thread-local).
 */
import { Ctl, StallWhat } from "./layout.js";

export interface RcuStallReport {
  readonly what: StallWhat;
  /** worker_threads threadId of the thread blamed (-1 when unknown). */
  readonly threadId: number;
  /** Reader slot of that thread, or -1. */
  readonly slot: number;
  /** How long the wait has lasted, in ms. */
  readonly ms: number;
  /** Grace period (GP_STARTED value) being waited for. */
  readonly gracePeriod: number;
  readonly message: string;
}

export type RcuStallHandler = (report: RcuStallReport) => void;

const defaultHandler: RcuStallHandler = (r) => console.warn(r.message);
let handler: RcuStallHandler = defaultHandler;

/** Sets this thread's stall handler (null restores the default `console.warn`). */
export function setRcuStallHandler(h: RcuStallHandler | null): void {
  handler = h ?? defaultHandler;
}

function describe(what: StallWhat, threadId: number, slot: number, ms: number, gp: number): string {
  const t = Math.round(ms);
  switch (what) {
    case StallWhat.READER:
      return `rcu: stall: thread ${threadId} (slot ${slot}) has been inside a read-side section for ${t} ms, blocking grace period ${gp}`;
    case StallWhat.QUIESCENT:
      return `rcu: stall: thread ${threadId} (slot ${slot}) is online and has reported no quiescent state for ${t} ms, blocking grace period ${gp}`;
    case StallWhat.GP_HOLDER:
      return `rcu: stall: grace period ${gp} has not completed after ${t} ms; thread ${threadId} holds the grace-period lock (reap it if that thread died)`;
    default:
      return `rcu: stall: barrier() has waited ${t} ms for the callback worker (thread ${threadId}), which is running callback kind ${slot}`;
  }
}

/** Counts a stall in shared memory and hands it to this thread's handler. */
export function reportStall(
  ctl: Int32Array,
  what: StallWhat,
  threadId: number,
  slot: number,
  ms: number,
  gp: number,
) {
  Atomics.store(ctl, Ctl.LAST_STALL_TID, threadId);
  Atomics.store(ctl, Ctl.LAST_STALL_MS, Math.min(Math.round(ms), 0x7fffffff));
  Atomics.store(ctl, Ctl.LAST_STALL_WHAT, what);
  Atomics.add(ctl, Ctl.STALLS, 1);
  handler({ what, threadId, slot, ms, gracePeriod: gp, message: describe(what, threadId, slot, ms, gp) });
}
