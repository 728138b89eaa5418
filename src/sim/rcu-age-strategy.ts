/**
 * The torture's reclaim strategy module: a built-in strategy (named by the spec, `{ name:
 * "per-table", url: AGE_STRATEGY_URL }`) wrapped so that every subtree a shared walk unlinks is
 * recorded in the RCU age table (`rcu-age.ts`) before the strategy sees it. Everything else is the
 * built-in strategy's own behaviour. Loaded in each vCPU worker as a user strategy module; the
 * torture vCPU command installs the age table in the same module instance (same URL).
 */
import { BatchedStrategy } from "../kvm/reclaim/batched.js";
import {
  BoundedStrategy,
  PerSubtreeStrategy,
  PerTableStrategy,
  type ReclaimStrategy,
  type ReclaimStrategyEnv,
  STRATEGIES,
  type StrategyName,
} from "../kvm/reclaim/strategy.js";
import type { Stage2 } from "../pgtable/stage2.js";
import { recordUnlinked } from "./rcu-age.js";

/** The module's URL, for `VmOptions.reclaim.strategy = { name, url: AGE_STRATEGY_URL }`. */
export const AGE_STRATEGY_URL = import.meta.url;

/** Records shared unlinks, then hands them to the built-in strategy. */
class AgeRecordingStrategy implements ReclaimStrategy {
  readonly name: string;
  constructor(private readonly inner: ReclaimStrategy) {
    this.name = inner.name;
  }
  freeUnlinked(pgt: Stage2, page: number, level: number, shared: boolean): void {
    if (shared) recordUnlinked(pgt, page, level);
    this.inner.freeUnlinked(pgt, page, level, shared);
  }
  afterUnlock(pgt: Stage2): void {
    this.inner.afterUnlock(pgt);
  }
  drain(pgt: Stage2): void {
    this.inner.drain(pgt);
  }
  hasEpilogueWork(): boolean {
    return this.inner.hasEpilogueWork();
  }
}

function builtin(env: ReclaimStrategyEnv): ReclaimStrategy {
  const name = env.name as StrategyName;
  switch (name) {
    case "per-table":
      return new PerTableStrategy(name, env.rcu, env.stats, env.options);
    case "per-subtree":
      return new PerSubtreeStrategy(name, env.rcu, env.stats, env.options);
    case "bounded":
      return new BoundedStrategy(name, env.rcu, env.stats, env.options);
    case "batched":
      return new BatchedStrategy(name, env.rcu, env.stats, env.options);
    default:
      throw new RangeError(`rcu-age strategy: "${env.name}" is not one of ${STRATEGIES.join(", ")}`);
  }
}

/** The factory (a user strategy module's default export). */
export default function createAgeRecordingStrategy(env: ReclaimStrategyEnv): ReclaimStrategy {
  return new AgeRecordingStrategy(builtin(env));
}
