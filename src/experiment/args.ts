/**
 * Command-line parsing for workloads: the selftests' getopt flags (`-v 2 -b 1G -eg`, `-s -1`) next
 * to stage2's own long options (`--strategy per-table --json`).
 *
 * getopt rules: a cluster `-eg` sets each flag; a flag that takes a value takes the rest of its
 * token or else the next argument, even one that starts with `-` (so `-s -1` works, which
 * node:util parseArgs refuses in strict mode). Long options take `--name value` or `--name=value`.
 * Every error is a ConfigError naming the flag and what it accepts.
 */
import { parseSeedText, SEED_MAX } from "../common/rng.js";
import { findChoice } from "../common/text.js";
import { ConfigError, shown } from "./errors.js";

export interface LongOption {
  /** Takes a value (else a boolean switch). */
  value: boolean;
  /** May be given more than once (values collected in order). */
  multiple?: boolean;
}

export interface ParsedArgs {
  /** Short flags: letter -> value ("" for a switch). The last occurrence wins. */
  short: Map<string, string>;
  /** Long options: name -> values ("" for a switch). */
  long: Map<string, string[]>;
  positionals: string[];
}

/**
 * Parses `argv` against a getopt string (`"ab:c:"`: `b` and `c` take values) and a table of long
 * options. `what` names the command in messages.
 */
export function parseArgs(
  argv: readonly string[],
  getopt: string,
  longs: ReadonlyMap<string, LongOption>,
  what: string,
): ParsedArgs {
  const takes = new Map<string, boolean>();
  for (let i = 0; i < getopt.length; i++) {
    const c = getopt[i] as string;
    if (c === ":") continue;
    takes.set(c, getopt[i + 1] === ":");
  }
  const out: ParsedArgs = { short: new Map(), long: new Map(), positionals: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--") {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      const spec = longs.get(name);
      if (!spec) {
        throw new ConfigError(
          `${what}: unknown option --${shown(name)} (valid: ${[...longs.keys()].map((k) => `--${k}`).join(", ")})`,
        );
      }
      let value = "";
      if (spec.value) {
        if (eq >= 0) value = arg.slice(eq + 1);
        else if (i + 1 < argv.length) value = argv[++i] as string;
        else throw new ConfigError(`${what}: --${name} needs a value`);
      } else if (eq >= 0) {
        throw new ConfigError(`${what}: --${name} takes no value`);
      }
      const list = out.long.get(name) ?? [];
      if (!spec.multiple && list.length > 0) list.length = 0;
      list.push(value);
      out.long.set(name, list);
      continue;
    }
    if (arg.length > 1 && arg.startsWith("-")) {
      for (let j = 1; j < arg.length; j++) {
        const c = arg[j] as string;
        const t = takes.get(c);
        if (t === undefined) {
          throw new ConfigError(
            `${what}: unknown flag -${shown(c)} (valid: ${[...takes.keys()].map((k) => `-${k}`).join(" ")})`,
          );
        }
        if (!t) {
          out.short.set(c, "");
          continue;
        }
        let value: string;
        if (j + 1 < arg.length) value = arg.slice(j + 1);
        else if (i + 1 < argv.length) value = argv[++i] as string;
        else throw new ConfigError(`${what}: -${c} needs a value`);
        out.short.set(c, value);
        break;
      }
      continue;
    }
    out.positionals.push(arg);
  }
  return out;
}

const SIZE_UNITS = new Map<string, number>([
  ["", 1],
  ["k", 1024],
  ["m", 1024 ** 2],
  ["g", 1024 ** 3],
  ["t", 1024 ** 4],
]);

/**
 * The selftests' parse_size(): a number as strtoull reads it with base 0 (decimal, 0x hex, 0 octal)
 * and an optional unit letter k/m/g/t (binary) or b, case-insensitive; like parse_size, a trailing
 * "B" after the unit is accepted ("1GB").
 */
export function parseSize(text: string, what: string): number {
  const m = /^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)([kmgtbKMGTB]?)([bB]?)$/.exec(text);
  if (!m) {
    throw new ConfigError(`${what}: "${shown(text)}" is not a size (a number with an optional k/m/g/t)`);
  }
  const digits = m[1] as string;
  const base = /^0[xX]/.test(digits)
    ? BigInt(digits)
    : /^0[0-7]+$/.test(digits)
      ? BigInt(`0o${digits.slice(1)}`)
      : BigInt(digits);
  const unit = (m[2] as string).toLowerCase();
  const v = Number(base) * (SIZE_UNITS.get(unit === "b" ? "" : unit) as number);
  if (!Number.isSafeInteger(v)) throw new ConfigError(`${what}: "${shown(text)}" is too large`);
  return v;
}

/** A decimal integer in [min, max]; the message names the flag and the range. */
export function parseInt32(text: string, what: string, min: number, max: number): number {
  if (!/^-?[0-9]+$/.test(text)) {
    throw new ConfigError(`${what}: "${shown(text)}" is not an integer (valid: ${min}..${max})`);
  }
  const v = Number(text);
  if (v < min || v > max)
    throw new ConfigError(`${what}: ${shown(text)} is out of range (valid: ${min}..${max})`);
  return v;
}

/** A seed: decimal or 0x hex, 0..2^32-1 (the selftests' `-r` takes a 32-bit seed). */
export function parseSeed(text: string, what: string): number {
  const v = parseSeedText(text);
  if (v === null) {
    throw new ConfigError(
      `${what}: "${shown(text)}" is not a seed (valid: 0..${SEED_MAX}, decimal or 0x hex)`,
    );
  }
  return v;
}

/** One of `choices`, compared without case (findChoice); else a ConfigError naming the flag. */
export function parseChoice<T extends string>(text: string, what: string, choices: readonly T[]): T {
  const found = findChoice(text, choices);
  if (found === undefined) {
    throw new ConfigError(`${what}: "${shown(text)}" is not one of ${choices.join(", ")}`);
  }
  return found;
}
