/**
 * Run requests: what `stage2 run WORKLOAD ...` asks for, parsed once, and the self-contained
 * command line that replays each run of it (`stage2 compare --plan` prints those for batch tools).
 */
import type { FaultMode } from "../kvm/fault.js";
import type { RcuFlavor } from "../kvm/reclaim/rcu-glue.js";
import { fileURLToPath } from "node:url";
import { STRATEGIES, type StrategySpec } from "../kvm/reclaim/strategy.js";
import { isBuiltinStrategy, resolveStrategy, StrategyLoadError } from "../kvm/reclaim/user-strategy.js";
import { type LongOption, parseArgs, parseChoice, parseSeed } from "./args.js";
import { ConfigError, shown } from "./errors.js";
import { WORKLOADS, type WorkloadName } from "./result.js";
import { WORKLOAD_TABLE } from "./workloads/index.js";

/** Fault modes: faults under the read lock in parallel, or under the write lock. */
export const MODES: readonly FaultMode[] = ["shared", "exclusive"];
/** RCU flavors a run can use. */
export const RCU_FLAVORS: readonly RcuFlavor[] = ["mb", "qsbr"];

/** One run, fully specified. */
export interface RunSpec {
  workload: WorkloadName;
  /** The workload's own (selftest) flags, as typed. */
  workloadArgs: string[];
  /** A built-in strategy, or a user strategy module resolved by `parseStrategies`. */
  strategy: StrategySpec;
  mode: FaultMode;
  rcu: RcuFlavor;
  seed: number;
  check: boolean;
  /** Guest accesses through the vCPU MMU model (`--mmu on|off`; absent: on). */
  mmu?: boolean;
}

/** What `stage2 run` was asked: one spec per strategy, and where the output goes. */
export interface RunRequest {
  specs: RunSpec[];
  json: boolean;
  tracePath: string | null;
  outDir: string | null;
}

/** Long options `stage2 run WORKLOAD` accepts next to the workload's own flags. */
export const RUN_OPTIONS: ReadonlyMap<string, LongOption> = new Map([
  ["strategy", { value: true, multiple: true }],
  ["mode", { value: true }],
  ["rcu", { value: true }],
  ["seed", { value: true }],
  ["json", { value: false }],
  ["trace", { value: true }],
  ["out", { value: true }],
  ["check", { value: false }],
  ["no-check", { value: false }],
  ["mmu", { value: true }],
]);

/** Comma- or repeat-separated list of one of `choices`, in order, without duplicates. */
export function parseList<T extends string>(values: string[], what: string, choices: readonly T[]): T[] {
  const out: T[] = [];
  for (const v of values.flatMap((x) => x.split(","))) {
    const c = v === "all" ? null : parseChoice(v, what, choices);
    for (const x of c === null ? choices : [c]) if (!out.includes(x)) out.push(x);
  }
  if (out.length === 0) throw new ConfigError(`${what}: empty list (valid: ${choices.join(", ")}, all)`);
  return out;
}

/**
 * `--strategy` words, comma-separated or repeated: built-in names (a Map lookup), `all`, or the
 * path of a user strategy module (imported and checked here, on the host).
 */
export async function parseStrategies(values: string[]): Promise<StrategySpec[]> {
  const out: StrategySpec[] = [];
  for (const word of values.flatMap((x) => x.split(","))) {
    if (word === "all") {
      for (const s of STRATEGIES) if (!out.includes(s)) out.push(s);
    } else if (isBuiltinStrategy(word) && word !== "unsafe-sync") {
      if (!out.includes(word)) out.push(word);
    } else if (/[/\\.]/.test(word) && word !== "unsafe-sync") {
      try {
        out.push(await resolveStrategy(word));
      } catch (e) {
        if (e instanceof StrategyLoadError) throw new ConfigError(`--strategy: ${shown(e.message, 200)}`);
        throw e;
      }
    } else {
      throw new ConfigError(
        `--strategy: "${shown(word)}" is not one of ${[...STRATEGIES, "all"].join(", ")} nor a module path`,
      );
    }
  }
  if (out.length === 0)
    throw new ConfigError(`--strategy: empty list (valid: ${STRATEGIES.join(", ")}, all)`);
  return out;
}

/** The `--strategy` word that selects `spec` again: its name, or its module's file path. */
export function strategyWord(spec: StrategySpec): string {
  return typeof spec === "string" ? spec : fileURLToPath(spec.url);
}

/** The workload a user named, or a ConfigError listing the valid ones. */
export function workloadNamed(name: string | undefined): WorkloadName {
  if (name === undefined) throw new ConfigError(`a workload is required (valid: ${WORKLOADS.join(", ")})`);
  const found = WORKLOADS.find((w) => w === name);
  if (!found) throw new ConfigError(`unknown workload "${shown(name)}" (valid: ${WORKLOADS.join(", ")})`);
  return found;
}

/**
 * Parses `WORKLOAD [flags]` (without the leading `run`). Every flag is checked here, workload flags
 * included (by parsing them once), so a bad run is refused before anything starts.
 */
export async function parseRunRequest(
  argv: readonly string[],
  extra?: ReadonlyMap<string, LongOption>,
): Promise<{
  request: RunRequest;
  long: Map<string, string[]>;
}> {
  const workload = workloadNamed(argv[0]);
  const w = WORKLOAD_TABLE.get(workload);
  if (!w) throw new ConfigError(`unknown workload "${shown(workload)}"`);
  const longs = new Map([...RUN_OPTIONS, ...(extra ?? [])]);
  const parsed = parseArgs(argv.slice(1), w.getopt, longs, workload);
  if (parsed.positionals.length > 0) {
    throw new ConfigError(`${workload}: unexpected argument "${shown(parsed.positionals[0] as string)}"`);
  }
  if (parsed.short.has("h")) throw new ConfigError(`${workload}: -h: use --help for the flags`);
  w.parse(parsed.short);
  const one = (k: string) => parsed.long.get(k)?.[0];
  const strategies = await parseStrategies(parsed.long.get("strategy") ?? ["per-subtree"]);
  const mode = one("mode") === undefined ? "shared" : parseChoice(one("mode") as string, "--mode", MODES);
  const rcu = one("rcu") === undefined ? "mb" : parseChoice(one("rcu") as string, "--rcu", RCU_FLAVORS);
  const seed = one("seed") === undefined ? 1 : parseSeed(one("seed") as string, "--seed");
  if (parsed.long.has("check") && parsed.long.has("no-check")) {
    throw new ConfigError("--check and --no-check contradict each other");
  }
  const mmuArg = one("mmu") ?? "on";
  if (mmuArg !== "on" && mmuArg !== "off")
    throw new ConfigError(`--mmu: "${shown(mmuArg)}" is not on or off`);
  const trace = one("trace");
  const out = one("out");
  if (trace === "") throw new ConfigError("--trace: needs a file name");
  if (out === "") throw new ConfigError("--out: needs a directory");
  const workloadArgs = stripLong(argv.slice(1), longs);
  return {
    request: {
      specs: strategies.map((strategy) => ({
        workload,
        workloadArgs,
        strategy,
        mode,
        rcu,
        seed,
        check: !parsed.long.has("no-check"),
        mmu: mmuArg === "on",
      })),
      json: parsed.long.has("json"),
      tracePath: trace ?? null,
      outDir: out ?? null,
    },
    long: parsed.long,
  };
}

/** `argv` without the long options (and their values): the workload's own flags. */
function stripLong(argv: readonly string[], longs: ReadonlyMap<string, LongOption>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a.startsWith("--") && a !== "--") {
      const name = a.slice(2).split("=")[0] as string;
      if (longs.get(name)?.value && !a.includes("=")) i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

/** The `stage2 run ... --json` command line that replays `spec` on its own. */
export function replayArgs(spec: RunSpec): string[] {
  return [
    "run",
    spec.workload,
    ...spec.workloadArgs,
    "--strategy",
    strategyWord(spec.strategy),
    "--mode",
    spec.mode,
    "--rcu",
    spec.rcu,
    "--seed",
    String(spec.seed),
    ...(spec.check ? [] : ["--no-check"]),
    ...(spec.mmu === false ? ["--mmu", "off"] : []),
    "--json",
  ];
}

/** A shell-safe rendering of an argument list. */
export function shellJoin(args: readonly string[]): string {
  return args.map((a) => (/^[A-Za-z0-9_./:=,+-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(" ");
}
