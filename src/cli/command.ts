/**
 * The shape every `stage2` subcommand has, and the error that means "bad input" (exit code 2).
 *
 * A command parses its own arguments (with `node:util` parseArgs, see `parse.ts`), writes its output
 * through `io`, and returns the process exit code. Bad flags, numbers or script lines throw
 * `UsageError` with a one-line message that names the problem; main.ts prints it and exits with 2.
 */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** Reads a whole file, or standard input for "-". */
  readInput(path: string): Promise<string>;
}

export interface Command {
  /** Name as typed after `stage2`, e.g. "geometry" or "bench". */
  readonly name: string;
  /** One line for `stage2 --help`. */
  readonly summary: string;
  /** Full usage text for `stage2 <name> --help`. */
  readonly usage: string;
  /** Usage for `stage2 <name> ARGS --help` when the arguments select something (a workload), else null. */
  help?(argv: readonly string[]): string | null;
  run(argv: string[], io: CliIo): Promise<number>;
}

/**
 * Output or files that could not be written for a reason that is not the user's input (a full disk,
 * an I/O error): one line, exit code 1, no stack.
 */
export class OutputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OutputError";
  }
}

/** Bad command-line input. The message is one line and names the offending flag, value or line. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
