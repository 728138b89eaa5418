/**
 * V8's inlining budget, raised for the fault path.
 *
 * TurboFan inlines at most `--max-inlined-bytecode-size-cumulative` bytes of bytecode into one
 * optimized function (920 by default). A vCPU's fault path is a dozen calls deep (populate, handle,
 * userMemAbort, map, walk, visitEntry, the visitor, tryLeaf, ...); within the default budget,
 * which of them get inlined depends on the order V8 happens to compile them in, and workers running
 * the same faults differed by up to 40% (BENCHMARKS.md). With 3000 bytes every worker gets the
 * fast code.
 *
 * The flag is process-wide (every worker's isolate reads it when it optimizes a function), and
 * Node.js 20 leaves V8's flags writable after start-up (`--no-freeze-flags-after-init` is its
 * default), so `v8.setFlagsFromString` raises it for every function optimized afterwards, in any
 * thread. `Vm.create()` and the CLI call `raiseInliningBudget()` before any vCPU worker starts,
 * so a program that embeds the library gets the same code as `npx stage2` without flags of its
 * own. A value given on node's command line wins: pass `--max-inlined-bytecode-size-cumulative=920`
 * to keep V8's default.
 *
 * The flag changes only which calls the optimizing compiler inlines, never what the code does.
 */
import { setFlagsFromString } from "node:v8";

/** The budget stage2 sets, in bytes of bytecode. */
export const INLINING_BUDGET = 3000;

const FLAG = "max-inlined-bytecode-size-cumulative";

/** The budget the process runs with, and who chose it. */
export interface InliningBudget {
  /** Bytes of bytecode; null when the node flag's value could not be read. */
  bytes: number | null;
  /** `stage2`: set by raiseInliningBudget(); `node`: given on node's command line. */
  source: "stage2" | "node";
}

/**
 * The budget given in a list of Node.js options (`--flag=N`, `--flag N`, with `-` or `_` between
 * the words), or undefined when none is; null when the flag is there without a readable value.
 * The last one given counts, as for V8.
 */
export function budgetFromArgs(args: readonly string[]): number | null | undefined {
  let found: number | null | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (!arg.startsWith("--")) continue;
    const eq = arg.indexOf("=");
    const name = (eq < 0 ? arg.slice(2) : arg.slice(2, eq)).replace(/_/g, "-");
    if (name !== FLAG) continue;
    const value = eq < 0 ? args[i + 1] : arg.slice(eq + 1);
    if (eq < 0 && value !== undefined) i++;
    found = value !== undefined && /^\d+$/.test(value) ? Number(value) : null;
  }
  return found;
}

let current: InliningBudget | null = null;

/**
 * Raises V8's inlining budget to INLINING_BUDGET for the whole process, unless node was given
 * the flag. Idempotent; returns the budget in force. Call it before the hot code is optimized
 * (before starting vCPU workers): functions optimized earlier keep their code.
 */
export function raiseInliningBudget(): InliningBudget {
  if (current !== null) return current;
  // Node's own options only: NODE_OPTIONS refuses V8 flags such as this one.
  const given = budgetFromArgs(process.execArgv);
  if (given !== undefined) current = { bytes: given, source: "node" };
  else {
    setFlagsFromString(`--${FLAG}=${INLINING_BUDGET}`);
    current = { bytes: INLINING_BUDGET, source: "stage2" };
  }
  return current;
}
