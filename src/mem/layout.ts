/**
 * Shared-memory layout of the page pool: the page memory and the allocator's metadata.
 *
 * Page memory (one SharedArrayBuffer of pageCount * granule bytes):
 *
 *   PA: basePa        basePa + granule                       basePa + (pageCount-1)*granule
 *   +-----------------+-----------------+---------+-------------------------------+
 *   | page 0          | page 1          |   ...   | page pageCount-1              |
 *   +-----------------+-----------------+---------+-------------------------------+
 *   each page: entriesPerPage 64-bit descriptors (`ptes`), i.e. 2*entriesPerPage 32-bit `words`,
 *   low word first (little-endian; checked at load time).
 *
 *   Writers: while a page is private (just allocated, not yet published by an atomic store of a table
 *   descriptor pointing to it) its owner writes it freely; the allocator zeroes it then with a plain
 *   fill. Once published, the page-table code updates entries with 64-bit Atomics only. In debug mode
 *   `freePage` writes PTE_POISON over every entry with Atomics.store. Readers: walkers (Atomics.load).
 *
 * Metadata (one SharedArrayBuffer viewed as an Int32Array): a header, then a fixed stride per page.
 *
 *   word  0 +---------------+  LOCK        free-list mutex (spin-mutex.ts): 0 free, else the all threads, Atomics
 *           |               |              holder's tag (threadId+1) << 2 | WAIT | LOCKED, set by the
 *           |               |              acquiring CAS; a reaper reads it (PagePool.reapDeadHolder)
 *         1 | lock + list   |  FREE_HEAD   first free-list page, -1 if empty     under LOCK, plain
 *         2 |               |  FREE_COUNT  pages on the free list                W: under LOCK (Atomics.store)
 *           |               |                                                    R: anyone (Atomics.load, hint)
 *        16 +---------------+  BUMP        next never-allocated page             allocators, CAS
 *        32 +---------------+  statistics, each updated with Atomics.add/CAS and read with Atomics.load
 *           | ALLOCATED PEAK ALLOCS FREES ALLOC_FAILURES DOUBLE_FREES LOCK_CONTENDED
 *           | POISON_VIOLATIONS REFCOUNT_UNDERFLOWS LOCK_REAPED         (ALLOCS/FREES wrap at 2^32)
 *           | (LOCK_REAPED: mutexes taken back from a dead holder, by reapDeadHolder)
 *        64 +---------------+  page 0: 8 words (PageMeta) + 8 spare, then page 1 at 80, ...
 *           | per page      |
 *           +---------------+
 *
 *   The three header groups sit on separate 64-byte lines, so spinning on LOCK does not slow bump
 *   allocation and statistics updates.
 *
 *   Per page (offset from HEADER_WORDS + page * PAGE_META_STRIDE):
 *   +0 REFCOUNT    getPage/putPage (Atomics.add/sub); allocator stores 1 at alloc, 0 at free
 *   +1 STATE       PageState. Allocator: TABLE at alloc (Atomics.store), FREE at free (Atomics.exchange,
 *                  which makes double frees race-free). Page-table code: UNLINKED. Read by isLive and
 *                  the leak check.
 *   +2 LEVEL       page-table code (setLevel); -1 after alloc
 *   +3 LINK        page-table/RCU code, for deferred-free lists; -1 after alloc
 *   +4 GENERATION  Atomics.add by freePage; read by walkers through isLive (use-after-free check)
 *   +5 FREE_NEXT   allocator-private, under LOCK: next page on the free list, -1 at the tail
 *   +6 FREE_PREV   allocator-private, under LOCK: previous page, -1 at the head, -2 when not listed
 *   +7 AUX         spare word for upper layers (aux/setAux); 0 after alloc
 */

/** Header word indices of the metadata Int32Array. */
export const enum PoolHeader {
  LOCK = 0,
  FREE_HEAD = 1,
  FREE_COUNT = 2,
  BUMP = 16,
  ALLOCATED = 32,
  PEAK = 33,
  ALLOCS = 34,
  FREES = 35,
  ALLOC_FAILURES = 36,
  DOUBLE_FREES = 37,
  LOCK_CONTENDED = 38,
  POISON_VIOLATIONS = 39,
  REFCOUNT_UNDERFLOWS = 40,
  LOCK_REAPED = 41,
}

/** Words before page 0's metadata. */
export const HEADER_WORDS = 64;

/** Word offsets inside one page's metadata. */
export const enum PageMeta {
  REFCOUNT = 0,
  STATE = 1,
  LEVEL = 2,
  LINK = 3,
  GENERATION = 4,
  FREE_NEXT = 5,
  FREE_PREV = 6,
  AUX = 7,
}

/**
 * Words of metadata per page: 8 used, padded to one 64-byte cache line, so that two vCPUs whose
 * table pages were allocated next to each other do not bounce a shared line on every refcount
 * update (measured: 2 vCPUs populating disjoint regions ran 2x slower than 1 with 32-byte metadata).
 */
export const PAGE_META_STRIDE = 16;

/** FREE_PREV value of a page that is not on the free list. */
export const NOT_LISTED = -2;

/** Lifecycle of a page, stored in PageMeta.STATE. */
export const enum PageState {
  /** In the allocator (free list, bump region or a batch being handed out). Reading it is a use-after-free. */
  FREE = 0,
  /** Allocated and in use (a live table, or a zeroed page waiting in a memory cache). */
  TABLE = 1,
  /** Removed from the tree, waiting for a grace period: RCU readers may still read it. */
  UNLINKED = 2,
}

/** Index of `slot` of `page` in the metadata array (no bounds check). */
export function metaIndex(page: number, slot: PageMeta): number {
  return HEADER_WORDS + page * PAGE_META_STRIDE + slot;
}

/** Int32 length of the metadata array of a pool with `pages` pages. */
export function metaWords(pages: number): number {
  return HEADER_WORDS + pages * PAGE_META_STRIDE;
}

/**
 * Sets the metadata of a new pool: empty free list, every page unlisted with level and link -1.
 * Runs once in `PagePool.create`, before the buffer is shared with any other thread.
 */
export function initMeta(meta: Int32Array, pages: number): void {
  meta[PoolHeader.FREE_HEAD] = -1;
  for (let p = 0; p < pages; p++) {
    const base = metaIndex(p, PageMeta.REFCOUNT);
    meta[base + PageMeta.LEVEL] = -1;
    meta[base + PageMeta.LINK] = -1;
    meta[base + PageMeta.FREE_NEXT] = -1;
    meta[base + PageMeta.FREE_PREV] = NOT_LISTED;
  }
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
if (!littleEndian) throw new Error("stage2 needs a little-endian host: the words view assumes it");
