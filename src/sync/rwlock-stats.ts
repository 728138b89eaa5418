/**
 * Statistics of a `RwLock`, kept in shared memory so that any thread can read them.
 *
 * Every view (one per thread) owns one slot of 16 float64 counters, 128 bytes, so that two threads
 * never write the same cache line (nor an adjacent one, which the prefetcher pairs):
 *
 *     slot k = float64 words [16k, 16k + 16), by index:
 *        0 READ_ACQ              6 WRITE_WAIT_MAX_NS
 *        1 not a counter: the    7 READ_SLEEPS
 *          view's Int32 HOLD     8 WRITE_SLEEPS
 *          and GATE words are    9 YIELDS
 *          its halves (rwlock)  10 WRITE_ACQ
 *        2 READ_CONTENDED       11 READ_COUNTED
 *        3 WRITE_CONTENDED      12 FAST_WAKES
 *                               13-15 spare (padding to 128 bytes)
 *        4 READ_WAIT_NS
 *        5 WRITE_WAIT_NS
 *
 * Writers: only the thread that owns the slot, with plain (non-atomic) stores: an increment costs
 * ~1 ns instead of the ~10-20 ns of an atomic, and the read-lock fast path counts every acquisition.
 * Readers: any thread, with plain loads, summing all slots in use. A reader may see a count a few
 * increments old; the JS memory model allows a racing float64 read to tear, which aligned 8-byte
 * accesses on x86-64 and arm64 do not do in practice. Figures are for reports, never for control.
 */

/** Counter indices inside one slot. */
export const enum Stat {
  /** Next to the HOLD and GATE words (the halves of counter 1, rwlock.ts): what a read lock writes. */
  READ_ACQ = 0,
  WRITE_ACQ = 10,
  /** Read acquisitions that had to wait for a writer. */
  READ_CONTENDED = 2,
  /** Write acquisitions that did not get the lock with the first compare-and-swap. */
  WRITE_CONTENDED = 3,
  READ_WAIT_NS = 4,
  WRITE_WAIT_NS = 5,
  WRITE_WAIT_MAX_NS = 6,
  READ_SLEEPS = 7,
  WRITE_SLEEPS = 8,
  /** Times yieldRead()/yieldWrite() dropped and retook the lock. */
  YIELDS = 9,
  /**
   * Read acquisitions counted in STATE (an RMW of the word every core shares): all of them
   * without the reader bias; with it, those made while the bias was off. Written on that path
   * only, which already pays for an RMW of the shared word.
   */
  READ_COUNTED = 11,
  /** Biased read unlocks that woke a writer asleep on their GATE word (Gate.WAKE, rwlock.ts). */
  FAST_WAKES = 12,
  SLOT_SIZE = 16,
}

/** Totals over all threads, as returned by `RwLock.stats()`. */
export interface RwLockStats {
  readAcquisitions: number;
  /** Of readAcquisitions, those counted in the shared STATE word (not through the reader bias). */
  readCounted: number;
  writeAcquisitions: number;
  readContended: number;
  writeContended: number;
  /** Total time readers spent waiting, in nanoseconds. */
  readWaitNs: number;
  /** Total time writers spent waiting (claiming the lock and draining readers), in nanoseconds. */
  writeWaitNs: number;
  /** Longest single writer wait, in nanoseconds. */
  writeWaitMaxNs: number;
  /** Atomics.wait calls made while waiting for the lock (readSleeps + writeSleeps). */
  sleeps: number;
  readSleeps: number;
  writeSleeps: number;
  yields: number;
  /** Biased read unlocks that woke a writer asleep until they left. */
  fastWakes: number;
  /** Views (threads) that have attached so far. */
  threads: number;
}

/** Sums the first `slots` slots of `st`. Allocates the result: not for hot paths. */
export function sumStats(st: Float64Array, slots: number): RwLockStats {
  const out: RwLockStats = {
    readAcquisitions: 0,
    readCounted: 0,
    writeAcquisitions: 0,
    readContended: 0,
    writeContended: 0,
    readWaitNs: 0,
    writeWaitNs: 0,
    writeWaitMaxNs: 0,
    sleeps: 0,
    readSleeps: 0,
    writeSleeps: 0,
    yields: 0,
    fastWakes: 0,
    threads: slots,
  };
  for (let k = 0; k < slots; k++) {
    const b = k * Stat.SLOT_SIZE;
    out.readAcquisitions += st[b + Stat.READ_ACQ];
    out.readCounted += st[b + Stat.READ_COUNTED];
    out.writeAcquisitions += st[b + Stat.WRITE_ACQ];
    out.readContended += st[b + Stat.READ_CONTENDED];
    out.writeContended += st[b + Stat.WRITE_CONTENDED];
    out.readWaitNs += st[b + Stat.READ_WAIT_NS];
    out.writeWaitNs += st[b + Stat.WRITE_WAIT_NS];
    out.writeWaitMaxNs = Math.max(out.writeWaitMaxNs, st[b + Stat.WRITE_WAIT_MAX_NS]);
    out.readSleeps += st[b + Stat.READ_SLEEPS];
    out.writeSleeps += st[b + Stat.WRITE_SLEEPS];
    out.yields += st[b + Stat.YIELDS];
    out.fastWakes += st[b + Stat.FAST_WAKES];
  }
  out.sleeps = out.readSleeps + out.writeSleeps;
  return out;
}

/** Adds one wait of `ns` nanoseconds to a writer's slot (total and maximum). */
export function recordWriteWait(st: Float64Array, base: number, ns: number, sleeps: number): void {
  st[base + Stat.WRITE_CONTENDED]++;
  st[base + Stat.WRITE_WAIT_NS] += ns;
  if (ns > st[base + Stat.WRITE_WAIT_MAX_NS]) st[base + Stat.WRITE_WAIT_MAX_NS] = ns;
  st[base + Stat.WRITE_SLEEPS] += sleeps;
}

/** Adds one wait of `ns` nanoseconds to a reader's slot. */
export function recordReadWait(st: Float64Array, base: number, ns: number, sleeps: number): void {
  st[base + Stat.READ_CONTENDED]++;
  st[base + Stat.READ_WAIT_NS] += ns;
  st[base + Stat.READ_SLEEPS] += sleeps;
}
