/**
 * The RCU callbacks of the reclaim strategies. They run after a grace period, in whichever thread
 * runs RCU callbacks, on a thread-local Stage2 view of the same page pool.
 *
 * A subtree callback frees at most `sliceBudgetPages` pages per run and then reports that it is not
 * done, so that the RCU layer runs it again later: no callback hogs its thread, whatever the size
 * of the subtree (the reviewers' worry about long callbacks).
 */
import { RacePoint, racePoint } from "../../common/race-points.js";
import { TraceEvent, type TraceWriter } from "../../common/trace.js";
import { freeQuiescentSlice } from "../../pgtable/ops/unlinked.js";
import type { Stage2 } from "../../pgtable/stage2.js";
import { RStat, type ReclaimStats } from "./stats.js";

/** What reclaim callbacks need in the RCU callback worker: its table view, the statistics, the slice budget. */
export interface ReclaimCallbackContext {
  pgt: Stage2;
  stats: ReclaimStats;
  sliceBudgetPages: number;
  /** Test-only: spin this many microseconds in every callback (slow-callback injection). */
  slowCallbackUs: number;
  /** The callback worker's trace slot (`--trace`): each callback is a slice. */
  trace?: TraceWriter | null;
}

const sliceDone = { value: false };

function spinUs(us: number): void {
  const until = performance.now() + us / 1000;
  while (performance.now() < until) {
    // busy: a slow callback on purpose
  }
}

/** A callback's duration into the statistics, and into the trace as a slice (arg: pages freed). */
function recordCallback(ctx: ReclaimCallbackContext, t0: number, pages: number): void {
  const t1 = performance.now();
  ctx.stats.recordCallback((t1 - t0) * 1e6);
  ctx.trace?.complete(
    TraceEvent.CALLBACK_BATCH,
    (performance.timeOrigin + t0) * 1000,
    (t1 - t0) * 1000,
    pages,
  );
}

/** FREE_PAGE: one table page of a frozen subtree. Always completes. */
export function runFreePage(ctx: ReclaimCallbackContext, page: number): boolean {
  const t0 = performance.now();
  racePoint(RacePoint.RECLAIM_FREE);
  if (ctx.slowCallbackUs > 0) spinUs(ctx.slowCallbackUs);
  ctx.pgt.pool.freePage(page);
  const s = ctx.stats;
  s.add(RStat.PAGES_RECLAIMED);
  s.add(RStat.PENDING_PAGES, -1);
  s.add(RStat.PENDING_CALLBACKS, -1);
  s.add(RStat.CALLBACKS_RUN);
  recordCallback(ctx, t0, 1);
  return true;
}

/** FREE_SUBTREE: one budgeted slice. Returns true when the whole subtree is gone. */
export function runFreeSubtree(
  ctx: ReclaimCallbackContext,
  page: number,
  level: number,
  estimate: number,
): boolean {
  const t0 = performance.now();
  racePoint(RacePoint.RECLAIM_FREE);
  if (ctx.slowCallbackUs > 0) spinUs(ctx.slowCallbackUs);
  const freed = freeQuiescentSlice(ctx.pgt, page, level, ctx.sliceBudgetPages, sliceDone);
  const s = ctx.stats;
  s.add(RStat.PAGES_RECLAIMED, freed);
  s.add(RStat.CALLBACKS_RUN);
  if (sliceDone.value) {
    s.add(RStat.PENDING_PAGES, -estimate);
    s.add(RStat.PENDING_CALLBACKS, -1);
  } else {
    s.add(RStat.SLICES_REQUEUED);
  }
  recordCallback(ctx, t0, freed);
  return sliceDone.value;
}
