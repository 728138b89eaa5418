/**
 * Waking the callback engine (Ctl.WORKER_SLEEP is its futex word).
 *
 * The engine stores IDLE or DELAY in WORKER_SLEEP, re-checks for work, then waits on the word. A
 * waker that finds the engine asleep swaps the word to AWAKE and notifies; only the waker that won
 * the swap pays for the notify. New callbacks wake an IDLE engine only: during its batching delay
 * the engine is meant to let callbacks pile up. barrier(), callAndWait(), startPoll() and close()
 * wake it always.
 *
 *   engine                              waker
 *   store(SLEEP, IDLE)                  push work (CAS, full fence)
 *   look for work (atomic loads)        load(SLEEP) == IDLE -> CAS(SLEEP, IDLE, AWAKE), notify
 *   wait(SLEEP, IDLE, timeout)
 *
 * Either the engine's look sees the work, or the waker's load sees IDLE (both sides are SC). The
 * engine's waits are timed, so a wakeup lost anyway (a plain-load fast path) costs latency only.
 */
import { Ctl } from "./layout.js";

export const enum Sleep {
  AWAKE = 0,
  /** Nothing to do: any new callback wakes the engine. */
  IDLE = 1,
  /** Batching delay: only urgent requests wake the engine. */
  DELAY = 2,
}

/** After queueing a callback: wakes the engine if it sleeps idle. */
export function wakeForWork(ctl: Int32Array): void {
  if (
    Atomics.load(ctl, Ctl.WORKER_SLEEP) === Sleep.IDLE &&
    Atomics.compareExchange(ctl, Ctl.WORKER_SLEEP, Sleep.IDLE, Sleep.AWAKE) === Sleep.IDLE
  ) {
    Atomics.notify(ctl, Ctl.WORKER_SLEEP);
  }
}

/** For barrier(), callAndWait(), startPoll(), close(): wakes the engine from any sleep. */
export function wakeUrgent(ctl: Int32Array): void {
  if (Atomics.exchange(ctl, Ctl.WORKER_SLEEP, Sleep.AWAKE) !== Sleep.AWAKE)
    Atomics.notify(ctl, Ctl.WORKER_SLEEP);
}
