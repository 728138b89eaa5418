/**
 * TLB and cache maintenance as seen by the page-table code.
 *
 * The page-table layer never invalidates a TLB itself: it calls a `TlbMaintenance` implementation,
 * so that the counting one below can later be swapped for an MMU model with per-vCPU TLBs,
 * broadcast invalidation and completion (DSB). Cache maintenance (CMOs done before a new mapping
 * becomes visible to a guest with caches off) goes through `CacheMaintenance` the same way.
 *
 * Shared-memory layout of the counters (one Int32Array; each thread view counts into a thread-local
 * array and `flush()` adds the deltas with Atomics.add, so that a maintenance operation on every
 * fault does not bounce a shared cache line between cores; readers use Atomics.load after the
 * writers flushed; counts only, they order nothing):
 *
 *   index  0        1          2          3             4              5
 *        +--------+----------+----------+-------------+--------------+-------------+
 *        | by IPA | by range | by VMID  | range pages | dcache clean | icache inval|
 *        +--------+----------+----------+-------------+--------------+-------------+
 */

/**
 * TLB invalidation as the page-table and host code issue it. Every call is complete when it
 * returns (TLBI ..IS then DSB ISH): every vCPU's TLB and walk cache has dropped what the call
 * covers, and no hardware walk that began before it is still in flight.
 */
export interface TlbMaintenance {
  /**
   * TLBI IPAS2E1IS for one IPA with `level` as the TTL hint (-1: none): the leaf of that level,
   * and without a hint the walk-cache entries too. A wrong hint may invalidate nothing: leaves only.
   */
  flushIpa(vmid: number, ipa: number, level: number): void;
  /** TLBI IPAS2LE1IS: the leaf for one IPA (hint `level`, -1 none); walk caches keep table entries. */
  flushIpaLastLevel(vmid: number, ipa: number, level: number): void;
  /** Invalidate every leaf and walk-cache entry overlapping [ipa, ipa+size) (what unlinking a table needs). */
  flushRange(vmid: number, ipa: number, size: number): void;
  /** Invalidate every entry of the VMID (TLBI VMALLS12E1IS). */
  flushVmid(vmid: number): void;
  /**
   * Brackets a table update that removes or narrows a translation, from before its first store
   * to after its invalidation returned. A model's checkers use it to tell a TLB entry whose
   * invalidation is still in flight from a stale one. Calls nest and may come from any thread.
   */
  updateBegin(): void;
  updateEnd(): void;
  /**
   * vCPU `vcpu` died with updates begun and never ended, and they are over now: the entries it
   * left locked were repaired and their invalidation completed (the OWNER_DEAD repair, death.ts).
   */
  abandonUpdates(vcpu: number): void;
}

/** Data-cache maintenance (CMOs) before a mapping becomes visible; skipped with SKIP_CMO. */
export interface CacheMaintenance {
  /** Clean and invalidate the data cache to PoC for the memory a new mapping exposes. */
  cleanInvalDcache(pa: number, size: number): void;
  /** Invalidate the instruction cache to PoU for an executable mapping. */
  invalIcache(pa: number, size: number): void;
}

/** Slots of CountingMaintenance's shared counters, one per kind of maintenance. */
export const enum MaintCounter {
  TLBI_IPA = 0,
  TLBI_RANGE = 1,
  TLBI_VMID = 2,
  TLBI_RANGE_BYTES_KB = 3,
  DCACHE_CLEAN = 4,
  ICACHE_INVAL = 5,
  COUNT = 6,
}

/** A snapshot of CountingMaintenance's counters. */
export interface MaintenanceCounts {
  tlbiIpa: number;
  tlbiRange: number;
  tlbiVmid: number;
  tlbiRangeKiB: number;
  dcacheClean: number;
  icacheInval: number;
}

/** Counts every invalidation by kind in shared memory; any thread can attach and read. */
export class CountingMaintenance implements TlbMaintenance, CacheMaintenance {
  readonly counters: Int32Array;
  /** This thread's counts not yet added to `counters`. */
  private readonly pending = new Int32Array(MaintCounter.COUNT);

  constructor(counters?: Int32Array) {
    this.counters = counters ?? new Int32Array(new SharedArrayBuffer(MaintCounter.COUNT * 4));
  }

  get handle(): SharedArrayBuffer {
    return this.counters.buffer as SharedArrayBuffer;
  }

  static attach(handle: SharedArrayBuffer): CountingMaintenance {
    return new CountingMaintenance(new Int32Array(handle));
  }

  flushIpa(_vmid: number, _ipa: number, _level: number): void {
    (this.pending[MaintCounter.TLBI_IPA] as number)++;
  }

  flushIpaLastLevel(_vmid: number, _ipa: number, _level: number): void {
    (this.pending[MaintCounter.TLBI_IPA] as number)++;
  }

  updateBegin(): void {}

  updateEnd(): void {}

  abandonUpdates(_vcpu: number): void {}

  flushRange(_vmid: number, _ipa: number, size: number): void {
    (this.pending[MaintCounter.TLBI_RANGE] as number)++;
    (this.pending[MaintCounter.TLBI_RANGE_BYTES_KB] as number) += Math.ceil(size / 1024);
  }

  flushVmid(_vmid: number): void {
    (this.pending[MaintCounter.TLBI_VMID] as number)++;
  }

  cleanInvalDcache(_pa: number, _size: number): void {
    (this.pending[MaintCounter.DCACHE_CLEAN] as number)++;
  }

  invalIcache(_pa: number, _size: number): void {
    (this.pending[MaintCounter.ICACHE_INVAL] as number)++;
  }

  /** Adds this thread's counts to the shared counters. */
  flush(): void {
    for (let i = 0; i < MaintCounter.COUNT; i++) {
      const n = this.pending[i] as number;
      if (n !== 0) {
        Atomics.add(this.counters, i, n);
        this.pending[i] = 0;
      }
    }
  }

  /** Shared counts, after flushing this thread's own. */
  counts(): MaintenanceCounts {
    this.flush();
    const c = this.counters;
    return {
      tlbiIpa: Atomics.load(c, MaintCounter.TLBI_IPA),
      tlbiRange: Atomics.load(c, MaintCounter.TLBI_RANGE),
      tlbiVmid: Atomics.load(c, MaintCounter.TLBI_VMID),
      tlbiRangeKiB: Atomics.load(c, MaintCounter.TLBI_RANGE_BYTES_KB),
      dcacheClean: Atomics.load(c, MaintCounter.DCACHE_CLEAN),
      icacheInval: Atomics.load(c, MaintCounter.ICACHE_INVAL),
    };
  }
}
