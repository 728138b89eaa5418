/**
 * Per-vCPU memory cache of zeroed pages, modelled on KVM's `kvm_mmu_memory_cache`.
 *
 * The fault path calls `topup(min)` before it takes any lock or enters an RCU read-side section, so the
 * allocations that need the pool's lock (or could fail) happen there; afterwards `alloc()` is a plain
 * array pop that cannot fail for the first `min` pages. A cache is thread-local plain JS, not shared:
 * create one per worker. Pages waiting in a cache are allocated as far as the pool is concerned (state
 * TABLE, refcount 1), so `drain()` every cache before a leak check or teardown.
 */
import { Errno } from "../common/errno.js";
import { RacePoint, shouldFail } from "../common/race-points.js";
import type { PagePool } from "./page-pool.js";

/** Default capacity, as KVM_ARCH_NR_OBJS_PER_MEMORY_CACHE on arm64 (a fault needs at most levels - 1). */
export const MEMCACHE_DEFAULT_CAPACITY = 16;

/**
 * A per-thread cache of zeroed pages (KVM's kvm_mmu_memory_cache): `topup` outside locks,
 * `alloc` inside them, `drain` before a leak check. Not shared between threads.
 */
export class MemCache {
  readonly pool: PagePool;
  readonly capacity: number;
  private readonly pages: Int32Array;
  private cached = 0;

  constructor(pool: PagePool, capacity = MEMCACHE_DEFAULT_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`Cannot create memory cache: capacity ${capacity} is not a positive integer`);
    }
    this.pool = pool;
    this.capacity = capacity;
    this.pages = new Int32Array(capacity);
  }

  /**
   * Makes sure at least `min` pages are cached. When fewer are, fills toward capacity with one batch
   * allocation. Returns Errno.OK, or Errno.NOMEM when the pool could not provide `min` pages; the pages
   * it did get stay cached (drain() returns them), so nothing leaks.
   */
  topup(min: number): number {
    if (this.cached >= min) return Errno.OK;
    if (!(min <= this.capacity)) {
      throw new RangeError(`Cannot top up memory cache to ${min} pages: its capacity is ${this.capacity}`);
    }
    // Injected ENOMEM (torture): nothing taken, so nothing to give back.
    if (shouldFail(RacePoint.MEMCACHE_TOPUP)) return Errno.NOMEM;
    this.cached += this.pool.allocBatch(this.pages, this.capacity - this.cached, this.cached);
    return this.cached >= min ? Errno.OK : Errno.NOMEM;
  }

  /** A zeroed page (refcount 1, state TABLE) from the cache, or -1 when it is empty. */
  alloc(): number {
    return this.cached > 0 ? this.pages[--this.cached]! : -1;
  }

  get count(): number {
    return this.cached;
  }

  /** Returns every cached page to the pool in one batch (KVM: kvm_mmu_free_memory_cache). */
  drain(): void {
    this.pool.freeBatch(this.pages, this.cached);
    this.cached = 0;
  }
}
