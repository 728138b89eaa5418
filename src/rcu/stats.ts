/**
 * RCU statistics, kept in shared memory so that any thread can read them at any time.
 *
 * Statistics block (`stats`, Float64Array; each group has one writer, so plain stores suffice and
 * readers may see a value a moment old):
 *
 *   index            field                   writer
 *   ---------------  ----------------------  -------------------------------------------
 *    0 CB_RUN        callbacks completed     callback engine
 *    1 CB_SLICES     runs that asked to run again (continuations)
 *    2 CB_ERRORS     callbacks that threw or had no registered kind
 *    3 PENDING_PEAK  most callbacks the engine ever held at once
 *    4 BATCH_MAX_N   most callbacks run in one batch
 *    5 BATCH_MAX_MS  longest batch, in ms
 *    6 FLOOD_ENTRIES times flood mode was entered
 *    7 FORCED_GPS    grace periods the engine started without its batching delay because of a flood
 *    8 BARRIERS      barrier markers completed
 *   16 GP_COUNT      grace periods completed   the driver holding the grace-period lock
 *   17 GP_SUM_MS     total grace-period time
 *   18 GP_MAX_MS     longest grace period
 *   64..127          GP latency histogram: bucket b counts periods of [2^b, 2^(b+1)) ns (driver)
 *  128..191          callback duration histogram, same buckets (engine)
 *
 * Counters that several threads update live elsewhere: queued and NOMEM counts per reader slot
 * (layout.ts, summed here), stall counts in the control block (Atomics.add).
 */
import { type Log2Histogram, log2Bucket, summarizeLog2 } from "../common/log2-histogram.js";
import { Ctl, Slot } from "./layout.js";

export { type Log2Histogram, log2Bucket };

export const enum Stat {
  CB_RUN = 0,
  CB_SLICES = 1,
  CB_ERRORS = 2,
  PENDING_PEAK = 3,
  BATCH_MAX_N = 4,
  BATCH_MAX_MS = 5,
  FLOOD_ENTRIES = 6,
  FORCED_GPS = 7,
  BARRIERS = 8,
  GP_COUNT = 16,
  GP_SUM_MS = 17,
  GP_MAX_MS = 18,
  GP_HIST = 64,
  CB_HIST = 128,
  HIST_BUCKETS = 64,
  WORDS = 192,
}

/** Adds one sample of `ms` milliseconds to the histogram at `base`. */
export function recordMs(stats: Float64Array, base: number, ms: number): void {
  stats[base + log2Bucket(ms * 1e6)] += 1;
}

/** A snapshot of a domain's statistics (`rcu.stats()`); counts are totals since creation. */
export interface RcuStats {
  readonly flavor: string;
  /** Callbacks handed to call()/callHead() (summed over all slots). */
  readonly queued: number;
  /** Callbacks completed. */
  readonly run: number;
  /** queued - run: callbacks waiting for a grace period or for their turn. */
  readonly pending: number;
  /** Most callbacks the engine held at once (spliced and not yet completed). */
  readonly pendingPeak: number;
  readonly slices: number;
  readonly errors: number;
  readonly nomem: number;
  readonly gracePeriods: number;
  readonly gpMeanMs: number;
  readonly gpMaxMs: number;
  readonly gpLatency: Log2Histogram;
  readonly callbackDuration: Log2Histogram;
  readonly longestBatch: { readonly callbacks: number; readonly ms: number };
  readonly floodEntries: number;
  readonly forcedGracePeriods: number;
  readonly flooding: boolean;
  readonly barriers: number;
  readonly stalls: number;
  /** The last stall reported: thread id, how long it had lasted (ms) and what it was about. */
  readonly lastStall: { readonly threadId: number; readonly ms: number; readonly what: string } | null;
  /** Reader slots in use now. */
  readonly threads: number;
}

const STALL_NAMES = ["none", "reader", "quiescent-state", "grace-period holder", "callbacks"];

function histogram(stats: Float64Array, base: number): Log2Histogram {
  return summarizeLog2(stats.subarray(base, base + Stat.HIST_BUCKETS));
}

/** Reads a snapshot of every statistic. Any thread; allocates (not for hot paths). */
export function readStats(
  flavor: string,
  ctl: Int32Array,
  slots: Int32Array,
  slotsF64: Float64Array,
  stats: Float64Array,
): RcuStats {
  let queued = 0;
  let nomem = 0;
  let threads = 0;
  const nslots = slots.length / Slot.STRIDE;
  for (let s = 0; s < nslots; s++) {
    queued += slotsF64[s * Slot.F64_STRIDE + Slot.F64_QUEUED];
    nomem += slotsF64[s * Slot.F64_STRIDE + Slot.F64_NOMEM];
    if (Atomics.load(slots, s * Slot.STRIDE + Slot.OWNER) !== 0) threads++;
  }
  const run = stats[Stat.CB_RUN];
  const gps = stats[Stat.GP_COUNT];
  const stalls = Atomics.load(ctl, Ctl.STALLS);
  return {
    flavor,
    queued,
    run,
    pending: Math.max(0, queued - run),
    pendingPeak: stats[Stat.PENDING_PEAK],
    slices: stats[Stat.CB_SLICES],
    errors: stats[Stat.CB_ERRORS],
    nomem,
    gracePeriods: gps,
    gpMeanMs: gps > 0 ? stats[Stat.GP_SUM_MS] / gps : 0,
    gpMaxMs: stats[Stat.GP_MAX_MS],
    gpLatency: histogram(stats, Stat.GP_HIST),
    callbackDuration: histogram(stats, Stat.CB_HIST),
    longestBatch: { callbacks: stats[Stat.BATCH_MAX_N], ms: stats[Stat.BATCH_MAX_MS] },
    floodEntries: stats[Stat.FLOOD_ENTRIES],
    forcedGracePeriods: stats[Stat.FORCED_GPS],
    flooding: Atomics.load(ctl, Ctl.FLOOD) !== 0,
    barriers: stats[Stat.BARRIERS],
    stalls,
    lastStall:
      stalls === 0
        ? null
        : {
            threadId: Atomics.load(ctl, Ctl.LAST_STALL_TID),
            ms: Atomics.load(ctl, Ctl.LAST_STALL_MS),
            what: STALL_NAMES[Atomics.load(ctl, Ctl.LAST_STALL_WHAT)] ?? "unknown",
          },
    threads,
  };
}
