/**
 * User-written reclaim strategies, loaded from a module path (`stage2 faults --strategy ./mine.js`).
 *
 * A strategy module is an ES module whose default export is a `ReclaimStrategyFactory`; it may also
 * export a string `name` (the name reports print; the file name otherwise):
 *
 *   export const name = "polled";
 *   export default function createStrategy(env) { return new PolledStrategy(env); }
 *
 * Every vCPU worker builds its own instance, so the module is loaded in each of them:
 *
 *   host     resolveStrategy(word, cwd): a built-in name stays a name (a Map lookup); anything else
 *            is a path, resolved against `cwd` to an absolute file URL, imported once to check its
 *            shape and read its name -> StrategySpec (a name, or { name, url })
 *   worker   loadStrategyFactory(spec): imports the URL (async) before attachVcpu, which is sync
 *            and takes the already imported factory
 *
 * The module's top level therefore runs in the host and in every vCPU worker: keep it free of side
 * effects, and build per-thread state in the factory. A strategy module imports stage2 through the
 * package (`stage2/kvm`, `stage2/pgtable`, `stage2/mem`), never through dist/ paths.
 */
import { existsSync } from "node:fs";
import { basename, extname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import {
  type ReclaimStrategy,
  type ReclaimStrategyFactory,
  STRATEGIES,
  type StrategyName,
  type StrategySpec,
  type UserStrategyRef,
} from "./strategy.js";

/** Built-in strategy names: looked up in a Map, so that no user word reaches an object's keys. */
const BUILTIN = new Map<string, StrategyName>(
  [...STRATEGIES, "unsafe-sync" as const].map((n): [string, StrategyName] => [n, n]),
);

/** A strategy module that cannot be used: missing, unloadable, or of the wrong shape. */
export class StrategyLoadError extends Error {
  /** The module path or URL as given. */
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(`Cannot load reclaim strategy ${path}: ${message}`, options);
    this.name = "StrategyLoadError";
    this.path = path;
  }
}

/** Whether `word` names a built-in strategy (including the test-only `unsafe-sync`). */
export function isBuiltinStrategy(word: string): word is StrategyName {
  return BUILTIN.has(word);
}

/**
 * Resolves a `--strategy` word on the host: a built-in name as is, otherwise a module path
 * (relative to `cwd`) or a `file:` URL, which is imported to check that it default-exports a
 * factory function. Throws StrategyLoadError for a module that is missing or malformed.
 */
export async function resolveStrategy(word: string, cwd: string = process.cwd()): Promise<StrategySpec> {
  const builtin = BUILTIN.get(word);
  if (builtin !== undefined) return builtin;
  const url = word.startsWith("file:") ? word : pathToFileURL(resolve(cwd, word)).href;
  if (!word.startsWith("file:") && !existsSync(resolve(cwd, word))) {
    throw new StrategyLoadError(
      word,
      `no such file (built-in strategies: ${STRATEGIES.join(", ")}; a module path must name a file)`,
    );
  }
  const mod = await importStrategyModule(word, url);
  const own = mod.name;
  const name = typeof own === "string" && own !== "" ? own : basename(word, extname(word));
  return { name, url };
}

interface StrategyModule {
  default?: unknown;
  name?: unknown;
}

async function importStrategyModule(path: string, url: string): Promise<StrategyModule> {
  let mod: StrategyModule;
  try {
    mod = (await import(url)) as StrategyModule;
  } catch (e) {
    throw new StrategyLoadError(path, `import failed: ${(e as Error).message}`, { cause: e });
  }
  if (typeof mod.default !== "function") {
    throw new StrategyLoadError(path, "its default export is not a strategy factory function");
  }
  return mod;
}

/**
 * In a worker: the factory of a user strategy (imported from its URL), or null for a built-in name.
 * Call before attachVcpu and pass the result in.
 */
export async function loadStrategyFactory(spec: StrategySpec): Promise<ReclaimStrategyFactory | null> {
  if (typeof spec === "string") return null;
  const mod = await importStrategyModule(spec.name, spec.url);
  return mod.default as ReclaimStrategyFactory;
}

const HOOKS = ["freeUnlinked", "afterUnlock", "drain", "hasEpilogueWork"] as const;

/** Checks that a user factory built something with every hook; throws TypeError naming it. */
export function checkStrategy(ref: UserStrategyRef, made: unknown): ReclaimStrategy {
  if (typeof made !== "object" || made === null) {
    throw new TypeError(
      `Reclaim strategy "${ref.name}": its factory returned ${String(made)}, not an object`,
    );
  }
  const obj = made as Record<string, unknown>;
  for (const hook of HOOKS) {
    if (typeof obj[hook] !== "function")
      throw new TypeError(`Reclaim strategy "${ref.name}" has no ${hook}() method`);
  }
  return made as ReclaimStrategy;
}
