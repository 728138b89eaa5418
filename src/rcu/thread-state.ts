/**
 * Thread-local facts the RCU layer checks to turn deadlocks into errors (module state is per
 * thread in worker_threads).
 */

/** True while this thread runs RCU callbacks: barrier() there would wait for itself. */
export let inCallbackEngine = false;

export function setInCallbackEngine(value: boolean): void {
  inCallbackEngine = value;
}
