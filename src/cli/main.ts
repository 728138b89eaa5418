#!/usr/bin/env node
/**
 * `stage2` command-line entry point: dispatches to the subcommands listed in commands/index.ts.
 *
 * Before anything else it raises V8's inlining budget for the process (common/v8-budget.ts):
 * without it, which calls of the fault path V8 inlines depends on compile order, and workers
 * running the same faults differed by up to 40%. `Vm.create()` does the same for programs that
 * embed the library; a budget given on node's command line wins.
 *
 * Exit codes:
 *   0  success; also when stdout is closed early (`stage2 ... | head -1`): the reader has all it
 *      wanted, so the command ends quietly, as Unix tools do
 *   1  the run failed its own checks (and printed FAIL), or its output or files could not be written
 *      (one line naming the error, e.g. ENOSPC)
 *   2  bad input: one line naming the problem on stderr, nothing on stdout, nothing written
 *   70 internal error (a bug): one line asking for a report; STAGE2_DEBUG=1 adds the stack
 *
 * No path prints a stack trace unless STAGE2_DEBUG=1.
 */
import { readFile } from "node:fs/promises";
import { raiseInliningBudget } from "../common/v8-budget.js";
import { ConfigError } from "../experiment/errors.js";
import { type CliIo, OutputError, UsageError } from "./command.js";
import { COMMANDS } from "./commands/index.js";
import { quote, sanitize } from "./parse.js";

/** sysexits.h EX_SOFTWARE: the program itself is wrong. */
const EXIT_INTERNAL = 70;

const io: CliIo = {
  out: (text) => {
    process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
  },
  err: (text) => {
    process.stderr.write(text.endsWith("\n") ? text : `${text}\n`);
  },
  async readInput(path) {
    if (path !== "-") return readFile(path, "utf8");
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  },
};

function topUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    "stage2: ARM64 stage-2 page tables with parallel fault handling protected by RCU",
    "",
    "Usage: stage2 <command> [options]",
    "",
    "Commands:",
    ...lines,
    "",
    "Run `stage2 <command> --help` for a command's options.",
    "Exit codes: 0 success, 1 checks failed or output could not be written, 2 bad input, 70 bug.",
  ].join("\n");
}

const HELP = new Set(["--help", "-h", "help"]);

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    const names = COMMANDS.map((c) => c.name).join(", ");
    io.err(`stage2: missing command: one of ${names} (run \`stage2 --help\` for what each does)`);
    return 2;
  }
  if (HELP.has(name)) {
    io.out(topUsage());
    return 0;
  }
  if (name === "--version") {
    io.out("stage2 0.1.0");
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.err(`stage2: unknown command ${quote(name)} (run \`stage2 --help\` for the list)`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.out(command.help?.(rest) ?? command.usage);
    return 0;
  }
  try {
    return await command.run(rest, io);
  } catch (e) {
    // Bad input, from the CLI's own parsing or from the experiment layer's workload flags.
    if (e instanceof UsageError || e instanceof ConfigError) {
      io.err(`stage2 ${name}: ${e.message}`);
      return 2;
    }
    if (e instanceof OutputError) {
      io.err(`stage2 ${name}: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

/** Errors a write to a closed or failing stream reports; anything else is a bug. */
function ioErrorLine(e: NodeJS.ErrnoException, stream: string): string {
  return `stage2: cannot write ${stream}: ${e.code ?? "error"} (${sanitize(e.message.split("\n")[0] ?? "", 120)})`;
}

/**
 * stdout closed by its reader (EPIPE): end quietly with 0. Any other write error (ENOSPC, EIO):
 * one line on stderr, exit 1. Registered before any output, so no write error is ever unhandled.
 */
function watchOutput(): void {
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    try {
      process.stderr.write(`${ioErrorLine(e, "standard output")}\n`);
    } finally {
      process.exit(1);
    }
  });
  // Nowhere left to report a stderr failure: a closed stderr ends the run like a closed stdout.
  process.stderr.on("error", (e: NodeJS.ErrnoException) => process.exit(e.code === "EPIPE" ? 0 : 1));
}

/** A bug: one line, the stack only under STAGE2_DEBUG=1. */
function internalError(e: unknown): void {
  const err = e instanceof Error ? e : new Error(String(e));
  const debug = process.env.STAGE2_DEBUG === "1";
  const detail = debug ? `\n${err.stack ?? ""}` : " (STAGE2_DEBUG=1 shows the stack)";
  process.stderr.write(
    `stage2: internal error: ${sanitize(`${err.name}: ${err.message.split("\n")[0]}`, 200)}; please report it${detail}\n`,
  );
  process.exitCode = EXIT_INTERNAL;
}

watchOutput();
process.on("uncaughtException", (e) => {
  internalError(e);
  process.exit(EXIT_INTERNAL);
});
raiseInliningBudget();
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => internalError(e),
);
