/**
 * Argument helpers shared by the subcommands: strict flag parsing, number, seed and ratio parsing,
 * and the sanitizer every message that echoes user input goes through.
 *
 * Every helper throws `UsageError` with one line that names the flag (`what`) and the accepted
 * range; user text inside a message is always passed through `quote()`, so control characters,
 * escape sequences and NUL bytes never reach the terminal and a 10 MB argument is not echoed whole.
 */
import { parseArgs } from "node:util";
import { UsageError } from "./command.js";

export type OptionSpec = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;

export { SEED_MAX } from "../common/rng.js";
export { ECHO_MAX, quote, sanitize } from "../common/text.js";
import { parseSeedText, SEED_MAX } from "../common/rng.js";
import { findChoice, quote, sanitize } from "../common/text.js";

/**
 * parseArgs rejects `--vcpus -5` as "ambiguous" (the value starts with a dash). A negative number
 * after a string option is meant as its value: join them (`--vcpus=-5`) so the number parser can
 * say what range the flag takes.
 */
function joinNegativeValues(argv: readonly string[], options: OptionSpec): string[] {
  const takesValue = new Set<string>();
  for (const [name, spec] of Object.entries(options)) {
    if (spec.type !== "string") continue;
    takesValue.add(`--${name}`);
    if (spec.short !== undefined) takesValue.add(`-${spec.short}`);
  }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const next = argv[i + 1];
    if (arg === "--") {
      out.push(...argv.slice(i));
      break;
    }
    if (takesValue.has(arg) && next !== undefined && /^-\.?\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** The option name inside a parseArgs message ("Unknown option '--x'" -> "--x"). */
function optionIn(message: string): string {
  const m = /'(-[^' ]*)/.exec(message);
  return m?.[1] ?? "";
}

/** parseArgs in strict mode, turning its errors into one-line UsageErrors. */
export function parseFlags(
  argv: string[],
  options: OptionSpec,
  allowPositionals = false,
): { values: Record<string, string | boolean | string[] | boolean[] | undefined>; positionals: string[] } {
  try {
    const args = joinNegativeValues(argv, options);
    const { values, positionals } = parseArgs({ args, options, allowPositionals, strict: true });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const message = err.message ?? "";
    const option = optionIn(message);
    switch (err.code) {
      case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
        throw new UsageError(`unknown option ${quote(option)} (see --help)`);
      case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
        throw new UsageError(`unexpected argument ${quote(/'(.*)'/.exec(message)?.[1] ?? "")}`);
      case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
        if (/does not take an argument/.test(message))
          throw new UsageError(`${sanitize(option)} does not take a value`);
        throw new UsageError(`${sanitize(option)} needs a value`);
      default:
        throw new UsageError(sanitize(message.split("\n")[0] ?? "bad arguments", 200));
    }
  }
}

const SIZE_SUFFIX = new Map<string, number>([
  ["", 1],
  ["k", 1024],
  ["m", 1024 ** 2],
  ["g", 1024 ** 3],
  ["t", 1024 ** 4],
]);

/**
 * Parses a non-negative integer: decimal, 0x-hex, or a size with a K/M/G/T suffix (binary units,
 * optional trailing "B" or "iB"). Throws UsageError naming `what` when the text is not such a number
 * or exceeds 2^53.
 */
export function parseNumber(text: string, what: string): number {
  const t = text.trim().toLowerCase().replace(/_/g, "");
  if (/^-\s*(0x)?[0-9a-f.]+/.test(t))
    throw new UsageError(`${what}: ${quote(text)} is negative; it takes a number from 0 up`);
  let value: number;
  if (/^0x[0-9a-f]+$/.test(t)) {
    value = t.length > 15 ? Number(BigInt(t)) : Number.parseInt(t.slice(2), 16);
  } else {
    const m = /^(\d+)([kmgt]?)(i?b)?$/.exec(t);
    if (!m)
      throw new UsageError(`${what}: ${quote(text)} is not a number (use decimal, 0x hex, or a K/M/G size)`);
    value = Number(m[1]) * (SIZE_SUFFIX.get(m[2] ?? "") ?? 1);
  }
  if (!Number.isSafeInteger(value)) throw new UsageError(`${what}: ${quote(text)} is too large (over 2^53)`);
  return value;
}

/** parseNumber, then a range check whose message states the range: "--vcpus: 40 is not in 1..32". */
export function parseIntIn(text: string, what: string, min: number, max: number, why = ""): number {
  let value: number;
  try {
    value = parseNumber(text, what);
  } catch (e) {
    if (/^\s*-/.test(text)) throw new UsageError(`${what}: ${quote(text)} is not in ${min}..${max}${why}`);
    throw e;
  }
  if (value < min || value > max) throw new UsageError(`${what}: ${value} is not in ${min}..${max}${why}`);
  return value;
}

/**
 * A seed: decimal or 0x hex, 0..2^32-1. Anything else (empty, negative, fractional, larger, words)
 * is refused with the range, never wrapped or rounded: a replayed seed must be the seed printed.
 */
export function parseSeed(text: string, what: string): number {
  const v = parseSeedText(text);
  if (v === null)
    throw new UsageError(
      `${what}: ${quote(text)} is not a seed: use a whole number 0..${SEED_MAX} (decimal or 0x hex)`,
    );
  return v;
}

/** The seed for a run: `--seed` when given, else STAGE2_SEED when set and not empty, else random. */
export function chooseSeed(flag: string | undefined): number {
  if (flag !== undefined) return parseSeed(flag, "--seed");
  const env = process.env.STAGE2_SEED;
  if (env !== undefined && env !== "") return parseSeed(env, "STAGE2_SEED");
  return Math.floor(Math.random() * (SEED_MAX + 1));
}

/** A share between 0 and 1 written as a decimal ("0.6", ".25", "1"); empty text is refused. */
export function parseRatio(text: string, what: string): number {
  const t = text.trim();
  const v = /^(\d+\.?\d*|\.\d+)$/.test(t) ? Number(t) : Number.NaN;
  if (!(v >= 0 && v <= 1)) throw new UsageError(`${what}: ${quote(text)} is not a ratio between 0 and 1`);
  return v;
}

/** Parses a 64-bit value (decimal or 0x hex) as an unsigned BigInt. */
export function parseU64(text: string, what: string): bigint {
  const t = text.trim().toLowerCase().replace(/_/g, "");
  if (!/^(0x[0-9a-f]+|\d+)$/.test(t)) throw new UsageError(`${what}: ${quote(text)} is not a 64-bit number`);
  const v = BigInt(t);
  if (v >= 1n << 64n) throw new UsageError(`${what}: ${quote(text)} does not fit in 64 bits`);
  return v;
}

/** Reads a string flag that must be one of `choices` (compared without case). */
export function parseChoice<T extends string>(text: string, what: string, choices: readonly T[]): T {
  const found = findChoice(text, choices);
  if (found === undefined)
    throw new UsageError(`${what}: ${quote(text)} is not one of ${choices.join(", ")}`);
  return found;
}
