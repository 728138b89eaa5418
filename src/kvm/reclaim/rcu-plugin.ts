/**
 * RCU callback worker plugin: defines the reclaim callback kinds on a Stage2 view of the VM's
 * page pool (attached from the plugin data in the callback worker's thread).
 */
import { TraceBuffer, TraceEvent } from "../../common/trace.js";
import { RacePoint, setRaceHook } from "../../common/race-points.js";
import type { RcuCallbackRegistry } from "../../rcu/mod.js";
import { RCU_AGAIN } from "../../rcu/mod.js";
import { Stage2 } from "../../pgtable/stage2.js";
import { type ReclaimCallbackContext, runFreePage, runFreeSubtree } from "./callbacks.js";
import type { ReclaimPluginData } from "./rcu-glue.js";
import { ReclaimStats } from "./stats.js";
import { ReclaimKind } from "./strategy.js";

/** Plugin entry point, run once in the callback worker: defines FREE_PAGE and FREE_SUBTREE on the VM's pool. */
export function registerRcuCallbacks(registry: RcuCallbackRegistry, data: unknown): void {
  const d = data as ReclaimPluginData;
  const ctx: ReclaimCallbackContext = {
    pgt: Stage2.attach(d.pgt),
    stats: new ReclaimStats(d.reclaimStats),
    sliceBudgetPages: d.sliceBudgetPages,
    slowCallbackUs: d.slowCallbackUs,
    trace: d.trace ? TraceBuffer.attach(d.trace.handle).writer(d.trace.slot, "RCU callback worker") : null,
  };
  const t = ctx.trace;
  if (t) {
    // Grace periods this worker drives, as slices of its track (hooks are per thread).
    setRaceHook((point) => {
      if (point === RacePoint.RCU_GP_STARTED) t.begin(TraceEvent.GRACE_PERIOD);
      else if (point === RacePoint.RCU_GP_BEFORE_COMPLETE) t.end(TraceEvent.GRACE_PERIOD);
    });
  }
  registry.define(ReclaimKind.FREE_PAGE, (page) => {
    runFreePage(ctx, page);
    ctx.pgt.flushStats();
  });
  registry.define(ReclaimKind.FREE_SUBTREE, (page, level, estimate) => {
    const done = runFreeSubtree(ctx, page, level, estimate);
    ctx.pgt.flushStats();
    return done ? 0 : RCU_AGAIN;
  });
}
