/**
 * Errors of the RCU layer. Hot paths return `Errno` codes; these are thrown only for misuse that
 * would otherwise deadlock or corrupt state (waiting for a grace period inside a read-side section,
 * an unbalanced unlock, a thread registered twice). They are bugs in the caller, never conditions
 * to retry.
 */
/** Misuse of the RCU API (see above): fix the caller; never catch it to retry. */
export class RcuUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RcuUsageError";
  }
}

/**
 * The domain's callback worker died (a callback called process.exit(), the worker ran out of
 * memory or was terminated): the callbacks it held are lost. Thrown by every wait for it
 * (barrier(), callAndWait()) and by startPoll(); call() returns Errno.INVAL from then on. Not a
 * misuse: catch it to shut down cleanly; the domain's grace periods still work.
 */
export class RcuCallbackWorkerLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RcuCallbackWorkerLostError";
  }
}

/** The message of RcuCallbackWorkerLostError for `what` (a call such as "barrier()"). */
export function callbackWorkerLost(what: string): RcuCallbackWorkerLostError {
  return new RcuCallbackWorkerLostError(
    `Cannot ${what}: the RCU callback worker died; the callbacks it held are lost and call() returns EINVAL`,
  );
}
