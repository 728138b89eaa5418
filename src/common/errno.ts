/**
 * Numeric status codes for hot paths, modelled on the kernel's negative errno values.
 *
 * Hot paths return one of these instead of throwing: `OK` (0) on success, a negative value otherwise.
 * Typed exceptions appear only at public boundaries (CLI, constructors, configuration).
 */
export const enum Errno {
  OK = 0,
  /** No such entry (e.g. no leaf at that address). */
  NOENT = -2,
  /** Internal "no block here" signal from map: descend and install a table instead. */
  E2BIG = -7,
  /** Lost a race or met a locked entry: back off and retry the whole operation. */
  AGAIN = -11,
  /** Out of memory: the pool or a memory cache is exhausted. */
  NOMEM = -12,
  /** Busy: the object is in use (e.g. RCU call inside a section that forbids it). */
  BUSY = -16,
  /** Already exists. */
  EXIST = -17,
  /** Invalid argument: misaligned input, bad permissions, wrong state. */
  INVAL = -22,
  /** Out of range: beyond the IPA size or the pool. */
  RANGE = -34,
  /** Operation timed out (stall detection). */
  TIMEDOUT = -110,
}

const NAMES: Record<number, string> = {
  0: "OK",
  [-2]: "ENOENT",
  [-7]: "E2BIG",
  [-11]: "EAGAIN",
  [-12]: "ENOMEM",
  [-16]: "EBUSY",
  [-17]: "EEXIST",
  [-22]: "EINVAL",
  [-34]: "ERANGE",
  [-110]: "ETIMEDOUT",
};

/** Human-readable name of a status code, e.g. `errnoName(-11) === "EAGAIN"`. */
export function errnoName(code: number): string {
  return NAMES[code] ?? `E${-code}`;
}

/** Error thrown at public boundaries when a hot path returned a failure status. */
export class Stage2Error extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(`${message}: ${errnoName(code)}`);
    this.name = "Stage2Error";
    this.code = code;
  }
}
