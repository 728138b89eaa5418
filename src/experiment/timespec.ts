/**
 * Times as the KVM selftests print them: `%ld.%.9lds` (seconds, a dot, nine digits of nanoseconds,
 * then `s`), from CLOCK_MONOTONIC differences. Here the clock is process.hrtime.bigint().
 */

/** `1.234567890s` for 1234567890 ns: exactly `printf("%ld.%.9lds", tv_sec, tv_nsec)`. */
export function formatTs(ns: bigint): string {
  const sec = ns / 1_000_000_000n;
  const nsec = ns % 1_000_000_000n;
  return `${sec}.${nsec.toString().padStart(9, "0")}s`;
}

/** timespec_div(ts, n): the average of `n` intervals, truncated to whole nanoseconds. */
export function divTs(ns: bigint, n: number): bigint {
  return n > 0 ? ns / BigInt(n) : 0n;
}
