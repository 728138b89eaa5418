/** Every workload `stage2 run` offers, by name (a Map: a user's word never reaches a plain object). */
import type { WorkloadName } from "../result.js";
import type { Workload } from "../runner.js";
import { accessTracking } from "./access-tracking.js";
import { collapseStorm } from "./collapse-storm.js";
import { dirtyLogPerf } from "./dirty-log-perf.js";
import { memslotPerf } from "./memslot-perf.js";
import { pageTableStress } from "./page-table-stress.js";

/**
 * Every workload `stage2 run` offers, by name. Each has its own parameter type; callers only pass
 * a workload the parameters its own `parse()` returned.
 */
export const WORKLOAD_TABLE: ReadonlyMap<WorkloadName, Workload<unknown>> = new Map<
  WorkloadName,
  Workload<unknown>
>([
  ["dirty-log-perf", dirtyLogPerf],
  ["access-tracking", accessTracking],
  ["memslot-perf", memslotPerf],
  ["page-table-stress", pageTableStress],
  ["collapse-storm", collapseStorm],
]);
