/**
 * RCU plugin of the RCU benchmark, loaded in the callback worker: kind COUNT adds its first
 * argument to a shared counter, about the least work a callback can do (the anchor's free()).
 */
import type { RcuCallbackRegistry } from "../rcu/mod.js";

export const BENCH_KIND_COUNT = 0;

export function registerRcuCallbacks(registry: RcuCallbackRegistry, data: unknown): void {
  const counter = new Float64Array((data as { counter: SharedArrayBuffer }).counter);
  registry.define(BENCH_KIND_COUNT, (a0) => {
    counter[0] += a0;
  });
}
