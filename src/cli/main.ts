#!/usr/bin/env node
/**
 * `stage2` command-line entry point: dispatches to the subcommands listed in commands/index.ts.
 * Exit codes: 0 success, 1 a run that failed its own checks, 2 bad input (UsageError).
 */
import { readFile } from "node:fs/promises";
import { type CliIo, UsageError } from "./command.js";
import { COMMANDS } from "./commands/index.js";

const io: CliIo = {
  out: (text) => process.stdout.write(text.endsWith("\n") ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith("\n") ? text : `${text}\n`),
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
  ].join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    io.out(topUsage());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version") {
    io.out("stage2 0.1.0");
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.err(`stage2: unknown command "${name}" (run \`stage2 --help\` for the list)`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.out(command.usage);
    return 0;
  }
  try {
    return await command.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`stage2 ${name}: ${e.message}`);
      return 2;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`stage2: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
