/**
 * Argument helpers shared by the subcommands: strict flag parsing and number/size parsing with
 * messages that name the offending flag.
 */
import { parseArgs } from "node:util";
import { UsageError } from "./command.js";

export type OptionSpec = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;

/** parseArgs in strict mode, turning its errors into one-line UsageErrors. */
export function parseFlags(
  argv: string[],
  options: OptionSpec,
  allowPositionals = false,
): { values: Record<string, string | boolean | string[] | boolean[] | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals, strict: true });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (e) {
    throw new UsageError((e as Error).message.split("\n")[0] ?? "bad arguments");
  }
}

const SIZE_SUFFIX: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/**
 * Parses a non-negative integer: decimal, 0x-hex, or a size with a K/M/G/T suffix (binary units,
 * optional trailing "B" or "iB"). Throws UsageError naming `what` when the text is not such a number
 * or exceeds 2^53.
 */
export function parseNumber(text: string, what: string): number {
  const t = text.trim().toLowerCase().replace(/_/g, "");
  let value: number;
  if (/^0x[0-9a-f]+$/.test(t)) {
    value = Number.parseInt(t.slice(2), 16);
    if (t.length > 15) value = Number(BigInt(t));
  } else {
    const m = /^(\d+)([kmgt]?)(i?b)?$/.exec(t);
    if (!m) throw new UsageError(`${what}: "${text}" is not a number (use decimal, 0x hex, or a K/M/G size)`);
    value = Number(m[1]) * (SIZE_SUFFIX[m[2] ?? ""] ?? 1);
  }
  if (!Number.isSafeInteger(value)) throw new UsageError(`${what}: "${text}" is too large`);
  return value;
}

/** Parses a 64-bit value (decimal or 0x hex) as an unsigned BigInt. */
export function parseU64(text: string, what: string): bigint {
  const t = text.trim().toLowerCase().replace(/_/g, "");
  if (!/^(0x[0-9a-f]+|\d+)$/.test(t)) throw new UsageError(`${what}: "${text}" is not a 64-bit number`);
  const v = BigInt(t);
  if (v >= 1n << 64n) throw new UsageError(`${what}: "${text}" does not fit in 64 bits`);
  return v;
}

/** Reads a string flag that must be one of `choices`. */
export function parseChoice<T extends string>(text: string, what: string, choices: readonly T[]): T {
  const t = text.toLowerCase() as T;
  if (!choices.includes(t)) throw new UsageError(`${what}: "${text}" is not one of ${choices.join(", ")}`);
  return t;
}
