/**
 * The allocator's free list: a doubly linked list threaded through the FREE_NEXT/FREE_PREV words of the
 * page metadata (see layout.ts). Every function here must be called with the pool's LOCK held: the
 * mutex's acquire/release pair orders these plain reads and writes between threads. The only word read
 * without the lock is FREE_COUNT, a hint for "is it worth taking the lock", so it is stored atomically.
 *
 * The list is doubly linked so that `allocContiguous` can take a run of adjacent free pages out of the
 * middle of it in O(1) per page; push and pop work at the head (LIFO: recently freed pages are the
 * warmest in the cache).
 */
import { metaIndex, NOT_LISTED, PageMeta, PageState, PoolHeader } from "./layout.js";

/** Puts `page` at the head of the free list. */
export function freeListPush(meta: Int32Array, page: number): void {
  const head = meta[PoolHeader.FREE_HEAD]!;
  meta[metaIndex(page, PageMeta.FREE_NEXT)] = head;
  meta[metaIndex(page, PageMeta.FREE_PREV)] = -1;
  if (head >= 0) meta[metaIndex(head, PageMeta.FREE_PREV)] = page;
  meta[PoolHeader.FREE_HEAD] = page;
  // Pairs with the unlocked Atomics.load hint in PagePool: a stale value only costs a useless lock trip.
  Atomics.store(meta, PoolHeader.FREE_COUNT, meta[PoolHeader.FREE_COUNT]! + 1);
}

/** Takes the head of the free list; -1 if the list is empty. */
export function freeListPop(meta: Int32Array): number {
  const page = meta[PoolHeader.FREE_HEAD]!;
  if (page >= 0) freeListUnlink(meta, page);
  return page;
}

/** Removes `page`, which must be on the list, from wherever it sits. */
export function freeListUnlink(meta: Int32Array, page: number): void {
  const next = meta[metaIndex(page, PageMeta.FREE_NEXT)]!;
  const prev = meta[metaIndex(page, PageMeta.FREE_PREV)]!;
  if (prev >= 0) meta[metaIndex(prev, PageMeta.FREE_NEXT)] = next;
  else meta[PoolHeader.FREE_HEAD] = next;
  if (next >= 0) meta[metaIndex(next, PageMeta.FREE_PREV)] = prev;
  meta[metaIndex(page, PageMeta.FREE_NEXT)] = -1;
  meta[metaIndex(page, PageMeta.FREE_PREV)] = NOT_LISTED;
  Atomics.store(meta, PoolHeader.FREE_COUNT, meta[PoolHeader.FREE_COUNT]! - 1);
}

/** True when `page` is on the free list. */
export function isListed(meta: Int32Array, page: number): boolean {
  return meta[metaIndex(page, PageMeta.FREE_PREV)] !== NOT_LISTED;
}

/**
 * First page of a run of `n` adjacent listed pages below `limit`, or -1. A linear scan of the metadata:
 * meant for the rare entry-level table allocation once the bump region is exhausted.
 */
export function findFreeRun(meta: Int32Array, limit: number, n: number, align = 1, basePage = 0): number {
  let run = 0;
  for (let p = 0; p < limit; p++) {
    // A run may only start on a page whose physical frame number is a multiple of `align`.
    if (run === 0 && (basePage + p) % align !== 0) continue;
    run = isListed(meta, p) ? run + 1 : 0;
    if (run === n) return p - n + 1;
  }
  return -1;
}

/**
 * Checks the free list against the page states and returns one line per problem (empty when sound).
 * `bump` is the BUMP word: pages at or above it were never handed out.
 */
export function auditFreeList(meta: Int32Array, pageCount: number, bump: number): string[] {
  const problems: string[] = [];
  let count = 0;
  let prev = -1;
  for (let p = meta[PoolHeader.FREE_HEAD]!; p >= 0; p = meta[metaIndex(p, PageMeta.FREE_NEXT)]!) {
    if (p >= bump || count >= pageCount) {
      problems.push(`free list reaches page ${p} after ${count} pages (bump ${bump}): corrupt or cyclic`);
      return problems;
    }
    if (meta[metaIndex(p, PageMeta.FREE_PREV)] !== prev) problems.push(`page ${p}: FREE_PREV is not ${prev}`);
    if (meta[metaIndex(p, PageMeta.STATE)] !== PageState.FREE)
      problems.push(`page ${p}: listed but not FREE`);
    prev = p;
    count++;
  }
  if (count !== meta[PoolHeader.FREE_COUNT]) {
    problems.push(`free list holds ${count} pages but FREE_COUNT says ${meta[PoolHeader.FREE_COUNT]}`);
  }
  for (let p = 0; p < bump; p++) {
    const free = meta[metaIndex(p, PageMeta.STATE)] === PageState.FREE;
    if (free !== isListed(meta, p))
      problems.push(`page ${p}: state ${free ? "FREE" : "in use"} but listed=${!free}`);
  }
  return problems;
}
