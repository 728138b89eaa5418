/**
 * The experiment layer's one error for bad input: a workload's flags, sizes or combinations that
 * cannot run. Front ends print its one-line message and exit with 2 (bad input); nothing has been
 * started or written when it is thrown.
 */
export class ConfigError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** User text made safe to echo in a one-line message (see common/text.ts). */
export { sanitize as shown } from "../common/text.js";
