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
