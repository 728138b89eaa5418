/**
 * Log2 histograms of durations in nanoseconds: the one bucket rule and the one summary that every
 * layer's statistics use (RCU grace-period latency and callback durations, reclaim callback slices).
 *
 * Bucket b counts samples in [2^b, 2^(b+1)) ns; samples below 2 ns land in bucket 0 and samples
 * beyond the last bucket in the last one. The counts themselves live wherever their owner keeps
 * statistics (a Float64Array with one writer, an Int32Array bumped with Atomics): this module only
 * maps a sample to its bucket and summarizes a copy of the counts, so it imposes no memory layout.
 */

/**
 * The bucket of a duration of `ns` nanoseconds: floor(log2(ns)), clamped to 0..buckets-1.
 * Allocation-free; NaN and values below 2 give bucket 0.
 */
export function log2Bucket(ns: number, buckets = 64): number {
  if (!(ns >= 2)) return 0;
  const b = Math.floor(Math.log2(ns));
  return b >= buckets ? buckets - 1 : b;
}

/** A log2 histogram with its derived figures (ns, upper bounds of buckets). */
export interface Log2Histogram {
  /** counts[b] = samples in [2^b, 2^(b+1)) ns. */
  readonly counts: number[];
  readonly samples: number;
  /** Upper bound of the bucket holding the median / the 99th percentile / the largest sample, ns. */
  readonly p50Ns: number;
  readonly p99Ns: number;
  readonly maxNs: number;
}

/**
 * The upper bound (2^(b+1) ns) of the bucket that holds the sample of rank `q * samples`, or 0 for
 * an empty histogram. `q` must be in (0, 1].
 */
export function log2Quantile(counts: ArrayLike<number>, q: number): number {
  let samples = 0;
  for (let b = 0; b < counts.length; b++) samples += counts[b] as number;
  if (samples === 0) return 0;
  let seen = 0;
  for (let b = 0; b < counts.length; b++) {
    seen += counts[b] as number;
    if (seen >= q * samples) return 2 ** (b + 1);
  }
  return 2 ** counts.length;
}

/** Summarizes bucket counts (copied, so a live shared array may be passed). Allocates. */
export function summarizeLog2(counts: ArrayLike<number>): Log2Histogram {
  const copy = Array.from(counts);
  const samples = copy.reduce((a, b) => a + b, 0);
  let top = copy.length - 1;
  while (top >= 0 && copy[top] === 0) top--;
  return {
    counts: copy,
    samples,
    p50Ns: log2Quantile(copy, 0.5),
    p99Ns: log2Quantile(copy, 0.99),
    maxNs: top < 0 ? 0 : 2 ** (top + 1),
  };
}
