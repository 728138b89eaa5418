/**
 * Physical memory: the shared page pool and its allocator, per-vCPU memory caches, debug poisoning.
 */
export { MEMCACHE_DEFAULT_CAPACITY, MemCache } from "./memcache.js";
export {
  type Granule,
  MAX_CONTIGUOUS_PAGES,
  type PageInfo,
  PagePool,
  type PagePoolHandle,
  type PagePoolOptions,
  PageState,
  type PoolStats,
  PTE_POISON,
} from "./page-pool.js";
export { type PageMisuseKind, PageMisuseError } from "./poison.js";
export { DEFAULT_BASE_PA, MAX_POOL_PAGES } from "./pool-options.js";
export { formatPages, pageStateName } from "./pool-stats.js";
