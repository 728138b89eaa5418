/** Every workload `stage2 run` offers, by name (a Map: a user's word never reaches a plain object). */
import type { WorkloadName } from "../result.js";
import type { Workload } from "../runner.js";
import { accessTracking } from "./access-tracking.js";
import { collapseStorm } from "./collapse-storm.js";
import { dirtyLogPerf } from "./dirty-log-perf.js";
import { memslotPerf } from "./memslot-perf.js";
import { pageTableStress } from "./page-table-stress.js";

// biome-ignore lint/suspicious/noExplicitAny: each workload has its own parameter type
/** Every workload `stage2 run` offers, by name. */
export const WORKLOAD_TABLE: ReadonlyMap<WorkloadName, Workload<any>> = new Map<WorkloadName, Workload<any>>([
  ["dirty-log-perf", dirtyLogPerf],
  ["access-tracking", accessTracking],
  ["memslot-perf", memslotPerf],
  ["page-table-stress", pageTableStress],
  ["collapse-storm", collapseStorm],
]);
