/**
 * Reclaim strategies for unlinked stage-2 subtrees: the `freeUnlinked(page, level, shared)` hook.
 *
 * Exclusive walks (write lock held, no concurrent walker) free the subtree at once in every
 * strategy. Shared walks must not: another walker may be inside the subtree until a grace period
 * has passed. The strategies differ in how they wait:
 *
 *   per-table    freeze the subtree now, then one RCU callback per table page (the RFC; x86 style)
 *   per-subtree  one RCU callback per subtree, which frees it in budgeted slices (merged Linux)
 *   bounded      per-subtree, but past a cap of pending pages the vCPU itself waits for a grace
 *                period and frees, after it has left mmu_lock and its read-side section
 *   batched      kfree_rcu style: per-thread arrays of subtree roots stamped with a polled
 *                grace-period cookie, freed in bulk at fault epilogues once the cookie expired
 *   unsafe-sync  TEST ONLY: frees at once even in a shared walk (the bug the others avoid)
 *
 * Contract with the fault handler: `freeUnlinked` runs inside the read-side section and must not
 * block or allocate from the pool; `afterUnlock()` runs after the lock and read-side section are
 * dropped and may wait; `drain()` runs before the thread exits and leaves nothing of its own behind.
 */
import { decodeOa, pteIsTable } from "../../arch/descriptor.js";
import { Errno } from "../../common/errno.js";
import { RacePoint, racePoint } from "../../common/race-points.js";
import { PageState } from "../../mem/mod.js";
import { freeSubtreeNow } from "../../pgtable/ops/free.js";
import { freeQuiescentSlice, freezeSubtree } from "../../pgtable/ops/unlinked.js";
import type { ReclaimHook, Stage2 } from "../../pgtable/stage2.js";
import { RStat, type ReclaimStats } from "./stats.js";

/** Reclaim strategy names; `unsafe-sync` is the test-only negative control. */
export type StrategyName = "per-table" | "per-subtree" | "bounded" | "batched" | "unsafe-sync";
/** The real strategies, for loops over all of them (the test-only one is left out). */
export const STRATEGIES: readonly StrategyName[] = ["per-table", "per-subtree", "bounded", "batched"];

/** Callback kinds the strategies queue; implemented in callbacks.ts. */
export const enum ReclaimKind {
  /** a0 = table page: free it. */
  FREE_PAGE = 1,
  /** a0 = subtree root page, a1 = level of its parent entry, a2 = estimated pages. */
  FREE_SUBTREE = 2,
}

/** What the strategies need from RCU. */
export interface ReclaimRcu {
  /** Queues callback `kind` to run after a grace period. Never blocks. OK or NOMEM. */
  call(kind: number, a0: number, a1: number, a2: number): number;
  startPoll(): number;
  pollState(cookie: number): boolean;
  /** Waits for a grace period. Never call inside a read-side section. */
  synchronize(): void;
}

/** Reclaim configuration shared by every vCPU of a VM (VmOptions.reclaim). */
export interface ReclaimOptions {
  strategy: StrategyName;
  /** Pages a subtree callback (or epilogue) frees before yielding. */
  sliceBudgetPages: number;
  /** bounded: pending pages past which vCPUs reclaim synchronously. */
  boundedCapPages: number;
  /** batched: seal an array once it is this old (ms), even if not full. */
  batchMaxAgeMs: number;
}

/** Defaults for VmOptions.reclaim. */
export const DEFAULT_RECLAIM: ReclaimOptions = {
  strategy: "per-subtree",
  sliceBudgetPages: 64,
  boundedCapPages: 2048,
  batchMaxAgeMs: 1,
};

/** Table pages in a subtree, counted by a read-only scan (exact once the subtree is quiescent). */
export function countSubtreePages(pgt: Stage2, page: number, level: number): number {
  if (level + 1 >= 3) return 1;
  let pages = 1;
  const base = page * pgt.entriesPerPage;
  for (let i = 0; i < pgt.entriesPerPage; i++) {
    const pte = Atomics.load(pgt.ptes, base + i);
    if (pteIsTable(pte, level + 1)) {
      const child = pgt.pool.paToPage(decodeOa(pte, pgt.geo.granule));
      if (child >= 0) pages += countSubtreePages(pgt, child, level + 1);
    }
  }
  return pages;
}

const done = { value: false };

/** Frees a quiescent subtree entirely, in one go. Returns pages freed. */
export function freeQuiescent(pgt: Stage2, page: number, level: number): number {
  return freeQuiescentSlice(pgt, page, level, Number.MAX_SAFE_INTEGER, done);
}

/**
 * Base of the strategies: the `freeUnlinked` hook plus the vCPU-side epilogue list of subtrees
 * the thread frees itself after a grace period. One instance per vCPU thread.
 */
export abstract class ReclaimStrategy implements ReclaimHook {
  readonly name: StrategyName;
  protected readonly rcu: ReclaimRcu;
  protected readonly stats: ReclaimStats;
  protected readonly opts: ReclaimOptions;
  /** Subtrees this thread must free itself after a grace period (linked through page metadata). */
  private epilogueHead = -1;

  constructor(name: StrategyName, rcu: ReclaimRcu, stats: ReclaimStats, opts: ReclaimOptions) {
    this.name = name;
    this.rcu = rcu;
    this.stats = stats;
    this.opts = opts;
  }

  freeUnlinked(pgt: Stage2, page: number, level: number, shared: boolean): void {
    racePoint(RacePoint.RECLAIM_UNLINKED);
    if (!shared) {
      const freed = freeSubtreeNow(pgt, page, level);
      this.stats.add(RStat.FREED_NOW, freed);
      return;
    }
    this.stats.add(RStat.SUBTREES);
    this.deferShared(pgt, page, level);
  }

  protected abstract deferShared(pgt: Stage2, page: number, level: number): void;

  /** Marks every page of the subtree unlinked and counts it pending; returns the estimate. */
  protected markPending(pgt: Stage2, page: number, level: number): number {
    pgt.pool.setState(page, PageState.UNLINKED);
    const pages = countSubtreePages(pgt, page, level);
    this.stats.add(RStat.PAGES_DEFERRED, pages);
    this.stats.addPending(RStat.PENDING_PAGES, pages);
    return pages;
  }

  /** Queues a callback, or on NOMEM leaves the subtree for the epilogue. */
  protected queue(pgt: Stage2, kind: ReclaimKind, page: number, level: number, pages: number): void {
    if (this.rcu.call(kind, page, level, pages) === Errno.OK) {
      this.stats.add(RStat.CALLBACKS_QUEUED);
      this.stats.addPending(RStat.PENDING_CALLBACKS, 1);
      return;
    }
    this.stats.add(RStat.CALL_NOMEM);
    this.deferToEpilogue(pgt, page, level, pages);
  }

  /** Keeps a subtree for afterUnlock(), which waits for a grace period and frees it. */
  protected deferToEpilogue(pgt: Stage2, page: number, level: number, pages: number): void {
    pgt.pool.setLink(page, this.epilogueHead);
    pgt.pool.setAux(page, level * 0x10000 + Math.min(pages, 0xffff));
    this.epilogueHead = page;
  }

  /** Fault epilogue: the lock and the read-side section are dropped. */
  afterUnlock(pgt: Stage2): void {
    if (this.epilogueHead < 0) return;
    this.rcu.synchronize();
    this.stats.add(RStat.SYNC_FALLBACKS);
    let page = this.epilogueHead;
    this.epilogueHead = -1;
    while (page >= 0) {
      const next = pgt.pool.link(page);
      const aux = pgt.pool.aux(page);
      const level = Math.floor(aux / 0x10000);
      const estimate = aux % 0x10000;
      racePoint(RacePoint.RECLAIM_FREE);
      const freed = freeQuiescent(pgt, page, level);
      this.stats.add(RStat.PAGES_RECLAIMED, freed);
      this.stats.add(RStat.PENDING_PAGES, -estimate);
      page = next;
    }
  }

  /** Before the thread goes away: nothing of this thread's may stay pending. */
  drain(pgt: Stage2): void {
    this.afterUnlock(pgt);
  }

  /** Whether this thread holds deferred work that afterUnlock() would do. */
  hasEpilogueWork(): boolean {
    return this.epilogueHead >= 0;
  }
}

/** The RFC: freeze the subtree, then one callback per table page. */
export class PerTableStrategy extends ReclaimStrategy {
  private readonly pages: number[] = [];

  protected deferShared(pgt: Stage2, page: number, level: number): void {
    const pages = this.pages;
    pages.length = 0;
    if (freezeSubtree(pgt, page, level, pages) !== Errno.OK) return; // counted as corruption; pages leak
    this.stats.add(RStat.PAGES_DEFERRED, pages.length);
    this.stats.addPending(RStat.PENDING_PAGES, pages.length);
    for (let i = 0; i < pages.length; i++) {
      const p = pages[i] as number;
      pgt.pool.setState(p, PageState.UNLINKED);
      this.queue(pgt, ReclaimKind.FREE_PAGE, p, 2, 1);
    }
  }
}

/** Merged Linux: one callback per subtree, freeing it in budgeted slices. */
export class PerSubtreeStrategy extends ReclaimStrategy {
  protected deferShared(pgt: Stage2, page: number, level: number): void {
    const pages = this.markPending(pgt, page, level);
    this.queue(pgt, ReclaimKind.FREE_SUBTREE, page, level, pages);
  }
}

/** Per-subtree with a cap: past it, the vCPU waits for a grace period itself after unlocking. */
export class BoundedStrategy extends ReclaimStrategy {
  protected deferShared(pgt: Stage2, page: number, level: number): void {
    const pages = this.markPending(pgt, page, level);
    if (this.stats.get(RStat.PENDING_PAGES) > this.opts.boundedCapPages) {
      this.deferToEpilogue(pgt, page, level, pages);
      return;
    }
    this.queue(pgt, ReclaimKind.FREE_SUBTREE, page, level, pages);
  }
}

/** Test only: the bug. Frees a subtree that concurrent walkers may still be reading. */
export class UnsafeSyncStrategy extends ReclaimStrategy {
  protected deferShared(pgt: Stage2, page: number, level: number): void {
    const freed = freeQuiescent(pgt, page, level);
    this.stats.add(RStat.FREED_NOW, freed);
  }
}
