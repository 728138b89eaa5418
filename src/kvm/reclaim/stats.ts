/**
 * Reclaim statistics, shared by every thread of one VM (vCPUs, the RCU callback worker, the host).
 *
 * One Int32Array in its own SharedArrayBuffer. Every slot is updated with Atomics (add, or a
 * compare-exchange loop for the peaks) and read with Atomics.load; these are counts only and order
 * no other memory. Updates happen per unlinked subtree or per callback, never per fault.
 *
 *   0 CALLBACKS_QUEUED     RCU callbacks queued by the strategy
 *   1 CALLBACKS_RUN        callbacks (or callback slices) that ran
 *   2 PENDING_CALLBACKS    queued and not finished
 *   3 PEAK_CALLBACKS       high-water mark of PENDING_CALLBACKS
 *   4 PAGES_DEFERRED       table pages handed to a grace period (estimated at unlink for subtrees)
 *   5 PAGES_RECLAIMED      table pages freed after a grace period
 *   6 PENDING_PAGES        deferred and not yet freed
 *   7 PEAK_PAGES           high-water mark of PENDING_PAGES
 *   8 SUBTREES             shared-walk unlinks seen
 *   9 FREED_NOW            table pages freed at once by exclusive walks
 *  10 SYNC_FALLBACKS       times a vCPU waited for a grace period itself (bounded cap, no array, NOMEM)
 *  11 BATCH_ARRAYS         kfree_rcu-style arrays sealed
 *  12 CALL_NOMEM           call() refused for lack of callback records
 *  13 SLICES_REQUEUED      subtree callbacks that ran out of budget and continued later
 *  14 MAX_CALLBACK_NS      longest callback slice, ns
 *  15 CALLBACK_100NS_TOTAL  sum of callback slice durations, in units of 100 ns (total reclaim work)
 *  16.. 16+HIST_BUCKETS    callback slice durations, log2(ns) buckets: bucket b counts [2^b, 2^(b+1)) ns
 */
import { log2Bucket, summarizeLog2 } from "../../common/log2-histogram.js";

/** Slots of the reclaim statistics array (see the layout above). */
export const enum RStat {
  CALLBACKS_QUEUED = 0,
  CALLBACKS_RUN = 1,
  PENDING_CALLBACKS = 2,
  PEAK_CALLBACKS = 3,
  PAGES_DEFERRED = 4,
  PAGES_RECLAIMED = 5,
  PENDING_PAGES = 6,
  PEAK_PAGES = 7,
  SUBTREES = 8,
  FREED_NOW = 9,
  SYNC_FALLBACKS = 10,
  BATCH_ARRAYS = 11,
  CALL_NOMEM = 12,
  SLICES_REQUEUED = 13,
  MAX_CALLBACK_NS = 14,
  CALLBACK_100NS_TOTAL = 15,
  HIST = 16,
  HIST_BUCKETS = 40,
  COUNT = 56,
}

/** Reclaim statistics at one moment (`ReclaimStats.snapshot`); page counts in pages, durations in ns. */
export interface ReclaimStatsSnapshot {
  callbacksQueued: number;
  callbacksRun: number;
  pendingCallbacks: number;
  peakPendingCallbacks: number;
  pagesDeferred: number;
  pagesReclaimed: number;
  pendingPages: number;
  peakPendingPages: number;
  peakPendingBytes: number;
  subtrees: number;
  freedNow: number;
  syncFallbacks: number;
  batchArrays: number;
  callNomem: number;
  slicesRequeued: number;
  callbackNs: { p50: number; p99: number; max: number; count: number };
}

/** A view of the shared reclaim statistics (layout above); every thread of a VM may attach one. */
export class ReclaimStats {
  readonly words: Int32Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.words = new Int32Array(buffer ?? new SharedArrayBuffer(RStat.COUNT * 4));
  }

  get handle(): SharedArrayBuffer {
    return this.words.buffer as SharedArrayBuffer;
  }

  add(slot: RStat, n = 1): number {
    return Atomics.add(this.words, slot, n) + n;
  }

  /** Adds to a pending counter and raises its peak. */
  addPending(slot: RStat.PENDING_PAGES | RStat.PENDING_CALLBACKS, n: number): void {
    const now = this.add(slot, n);
    this.raise(slot === RStat.PENDING_PAGES ? RStat.PEAK_PAGES : RStat.PEAK_CALLBACKS, now);
  }

  raise(slot: RStat, value: number): void {
    let cur = Atomics.load(this.words, slot);
    while (value > cur) {
      const seen = Atomics.compareExchange(this.words, slot, cur, value);
      if (seen === cur) return;
      cur = seen;
    }
  }

  /** Records one callback slice's duration. */
  recordCallback(ns: number): void {
    const b = log2Bucket(ns, RStat.HIST_BUCKETS);
    Atomics.add(this.words, RStat.HIST + b, 1);
    Atomics.add(this.words, RStat.CALLBACK_100NS_TOTAL, Math.round(ns / 100));
    this.raise(RStat.MAX_CALLBACK_NS, Math.min(0x7fffffff, Math.round(ns)));
  }

  get(slot: RStat): number {
    return Atomics.load(this.words, slot);
  }

  snapshot(pageSize: number): ReclaimStatsSnapshot {
    const g = (s: RStat) => this.get(s);
    return {
      callbacksQueued: g(RStat.CALLBACKS_QUEUED),
      callbacksRun: g(RStat.CALLBACKS_RUN),
      pendingCallbacks: g(RStat.PENDING_CALLBACKS),
      peakPendingCallbacks: g(RStat.PEAK_CALLBACKS),
      pagesDeferred: g(RStat.PAGES_DEFERRED),
      pagesReclaimed: g(RStat.PAGES_RECLAIMED),
      pendingPages: g(RStat.PENDING_PAGES),
      peakPendingPages: g(RStat.PEAK_PAGES),
      peakPendingBytes: g(RStat.PEAK_PAGES) * pageSize,
      subtrees: g(RStat.SUBTREES),
      freedNow: g(RStat.FREED_NOW),
      syncFallbacks: g(RStat.SYNC_FALLBACKS),
      batchArrays: g(RStat.BATCH_ARRAYS),
      callNomem: g(RStat.CALL_NOMEM),
      slicesRequeued: g(RStat.SLICES_REQUEUED),
      callbackNs: this.callbackPercentiles(),
    };
  }

  /** p50/p99 as the upper bound of the log2 bucket holding that rank; max exact. */
  private callbackPercentiles(): { p50: number; p99: number; max: number; count: number } {
    const h = summarizeLog2(this.words.subarray(RStat.HIST, RStat.HIST + RStat.HIST_BUCKETS));
    const max = this.get(RStat.MAX_CALLBACK_NS);
    return { p50: Math.min(h.p50Ns, max), p99: Math.min(h.p99Ns, max), max, count: h.samples };
  }
}
