/**
 * The `stage2 script` language: one operation per line on one stage-2 table.
 *
 *   # comment (anywhere on a line); blank lines are ignored
 *   map IPA SIZE PA PROT [device]     map, using blocks where range and alignment allow
 *   collapse IPA SIZE PA PROT [device] map one block (SIZE a block size), replacing any table
 *   unmap IPA SIZE                    remove mappings and annotations, free emptied tables
 *   wrprotect IPA SIZE                clear write permission (dirty logging)
 *   relax IPA PROT                    grant PROT on the leaf mapping IPA
 *   mkyoung IPA                       set the access flag of the leaf mapping IPA
 *   mkold IPA SIZE                    test_clear_young: report whether young, clear AF
 *   owner IPA SIZE ID                 annotate as owned by ID (1..255) with invalid entries
 *   split IPA SIZE                    split every block in the range down to pages
 *   flush IPA SIZE                    clean+invalidate the data cache of cacheable leaves
 *   get IPA                           print the entry that translates IPA
 *   dump                              print the ptdump listing at this point
 *
 * Numbers: decimal, 0x hex, or sizes with K/M/G/T (binary). PROT: letters r, w, x in any order
 * ("-" allowed, as ptdump prints them: "rw-"), optionally followed by the word "device".
 * Parsing checks syntax only; alignment and ranges are checked when the operation runs.
 */
import { Prot } from "../arch/descriptor.js";
import { UsageError } from "./command.js";
import { parseNumber, quote } from "./parse.js";

export type RangeOpKind = "unmap" | "wrprotect" | "split" | "flush" | "mkold";

export type ScriptOp =
  | { kind: "map" | "collapse"; ipa: number; size: number; pa: number; prot: number }
  | { kind: RangeOpKind; ipa: number; size: number }
  | { kind: "relax"; ipa: number; prot: number }
  | { kind: "mkyoung" | "get"; ipa: number }
  | { kind: "owner"; ipa: number; size: number; owner: number }
  | { kind: "dump" };

export interface ScriptLine {
  /** 1-based line number in the source. */
  line: number;
  /** The line without its comment, whitespace collapsed: what error messages quote. */
  text: string;
  op: ScriptOp;
}

/** Argument lists, as usage strings name them. */
const SYNTAX: Record<ScriptOp["kind"], string> = {
  map: "IPA SIZE PA PROT [device]",
  collapse: "IPA SIZE PA PROT [device]",
  unmap: "IPA SIZE",
  wrprotect: "IPA SIZE",
  relax: "IPA PROT",
  mkyoung: "IPA",
  mkold: "IPA SIZE",
  owner: "IPA SIZE ID",
  split: "IPA SIZE",
  flush: "IPA SIZE",
  get: "IPA",
  dump: "",
};

export const SCRIPT_OPS = Object.keys(SYNTAX) as readonly ScriptOp["kind"][];

/** Parses PROT ("rw", "r-x", "rwx"...); `device` adds Prot.DEVICE. Throws Error with the reason. */
export function parseProt(text: string, device: boolean): number {
  const t = text.toLowerCase();
  if (!/^[rwx-]+$/.test(t)) throw new Error(`PROT ${quote(text)} is not a combination of r, w and x`);
  let prot = 0;
  for (const c of t.replace(/-/g, "")) {
    const bit = c === "r" ? Prot.R : c === "w" ? Prot.W : Prot.X;
    if (prot & bit) throw new Error(`PROT ${quote(text)} repeats "${c}"`);
    prot |= bit;
  }
  if (prot === 0) throw new Error(`PROT ${quote(text)} grants nothing: use at least one of r, w, x`);
  return device ? prot | Prot.DEVICE : prot;
}

function num(text: string, what: string): number {
  try {
    return parseNumber(text, what);
  } catch (e) {
    throw new Error((e as Error).message);
  }
}

function size(text: string): number {
  const n = num(text, "SIZE");
  if (n === 0) throw new Error("SIZE must not be zero");
  return n;
}

function parseOp(kind: ScriptOp["kind"], args: string[]): ScriptOp {
  const want = SYNTAX[kind] === "" ? 0 : SYNTAX[kind].split(" ").filter((w) => !w.startsWith("[")).length;
  const device = (kind === "map" || kind === "collapse") && args.length === 5;
  if (device && args[4]?.toLowerCase() !== "device") {
    throw new Error(`unexpected argument ${quote(args[4] as string)} (only "device" may follow PROT)`);
  }
  if (args.length !== want && !device) {
    const usage = SYNTAX[kind] === "" ? "no arguments" : SYNTAX[kind];
    throw new Error(`expected ${usage}, got ${args.length} argument${args.length === 1 ? "" : "s"}`);
  }
  const a = args as [string, string, string, string];
  switch (kind) {
    case "map":
    case "collapse":
      return {
        kind,
        ipa: num(a[0], "IPA"),
        size: size(a[1]),
        pa: num(a[2], "PA"),
        prot: parseProt(a[3], device),
      };
    case "relax":
      return { kind, ipa: num(a[0], "IPA"), prot: parseProt(a[1], false) };
    case "mkyoung":
    case "get":
      return { kind, ipa: num(a[0], "IPA") };
    case "owner": {
      const owner = num(a[2], "ID");
      if (owner < 1 || owner > 255) throw new Error(`ID ${owner} is not an owner id (1..255)`);
      return { kind, ipa: num(a[0], "IPA"), size: size(a[1]), owner };
    }
    case "dump":
      return { kind };
    default:
      return { kind, ipa: num(a[0], "IPA"), size: size(a[1]) };
  }
}

/**
 * Parses a whole script. Throws UsageError for the first bad line: "line N: OP: problem", or
 * "line N: unknown operation ..." when the first word is not an operation.
 */
export function parseScript(source: string): ScriptLine[] {
  const out: ScriptLine[] = [];
  const lines = source.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const words = (lines[i] as string)
      .replace(/#.*/, "")
      .trim()
      .split(/\s+/)
      .filter((w) => w !== "");
    if (words.length === 0) continue;
    const name = (words[0] as string).toLowerCase();
    if (!Object.hasOwn(SYNTAX, name)) {
      throw new UsageError(
        `line ${i + 1}: unknown operation ${quote(words[0] as string)} (use ${SCRIPT_OPS.join(", ")})`,
      );
    }
    const kind = name as ScriptOp["kind"];
    try {
      out.push({ line: i + 1, text: [name, ...words.slice(1)].join(" "), op: parseOp(kind, words.slice(1)) });
    } catch (e) {
      throw new UsageError(`line ${i + 1}: ${kind}: ${(e as Error).message}`);
    }
  }
  return out;
}
