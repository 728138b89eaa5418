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
 * Contract with the fault handler: see the `ReclaimStrategy` interface below, which user-written
 * strategies (loaded from a module path, see user-strategy.ts) implement as well.
 */
import { decodeOa, pteIsTable } from "../../arch/descriptor.js";
import { Errno } from "../../common/errno.js";
import { RacePoint, racePoint } from "../../common/race-points.js";
import { PageState } from "../../mem/mod.js";
import { freeSubtreeNow } from "../../pgtable/ops/free.js";
import { freeQuiescentSlice, freezeSubtree } from "../../pgtable/ops/unlinked.js";
import type { ReclaimHook, Stage2 } from "../../pgtable/stage2.js";
import { Rec } from "../vcpu-record.js";
import { RStat, type ReclaimStats } from "./stats.js";

/** The built-in strategies (and the test-only broken one). */
export type StrategyName = "per-table" | "per-subtree" | "bounded" | "batched" | "unsafe-sync";
/** The built-in strategies a user may choose. */
export const STRATEGIES: readonly StrategyName[] = ["per-table", "per-subtree", "bounded", "batched"];

/**
 * A user-written strategy, resolved on the host: its display name and the absolute `file:` URL of
 * its module, which every vCPU worker imports before it attaches (see user-strategy.ts).
 */
export interface UserStrategyRef {
  readonly name: string;
  readonly url: string;
}

/** Which strategy a VM uses: a built-in name, or a user module resolved by `resolveStrategy()`. */
export type StrategySpec = StrategyName | UserStrategyRef;

/** The name to print for a strategy: the built-in name, or the user strategy's own name. */
export function strategyLabel(spec: StrategySpec): string {
  return typeof spec === "string" ? spec : spec.name;
}

/**
 * Callback kinds any strategy may queue with `ReclaimRcu.call()` (implemented in callbacks.ts, run
 * in the RCU callback worker after a grace period). Each does its own half of the accounting:
 * `CALLBACKS_RUN += 1` per run, `PENDING_CALLBACKS -= 1` when done.
 */
export const enum ReclaimKind {
  /**
   * a0 = a table page (of a frozen subtree, or a single table): frees it;
   * `PAGES_RECLAIMED += 1`, `PENDING_PAGES -= 1`.
   */
  FREE_PAGE = 1,
  /**
   * a0 = subtree root page, a1 = level of its parent entry, a2 = the estimate counted pending:
   * frees `sliceBudgetPages` per run until done; `PAGES_RECLAIMED += freed`, then `PENDING_PAGES -= a2`.
   */
  FREE_SUBTREE = 2,
}

/**
 * What a strategy may ask of the VM's RCU domain (one port per thread; the thread is registered).
 *
 * - `call()` and `startPoll()`/`pollState()` never block: use them anywhere, including inside
 *   `freeUnlinked()` (under mmu_lock, in the read-side section).
 * - `synchronize()` blocks until a grace period has passed: call it only from `afterUnlock()` or
 *   `drain()`, never under mmu_lock and never inside the read-side section (it would wait for itself).
 */
export interface ReclaimRcu {
  /**
   * Queues callback `kind` (a `ReclaimKind`) with arguments `a0..a2` to run in the RCU callback
   * worker after a grace period. Never blocks. Returns `Errno.OK`, or `Errno.NOMEM` when no callback
   * record could be had (the caller keeps the work and must do it another way).
   */
  call(kind: number, a0: number, a1: number, a2: number): number;
  /**
   * Returns a cookie for a grace period that starts no earlier than now, and makes sure one starts
   * (the callback worker drives it even if nobody calls synchronize). Never blocks.
   */
  startPoll(): number;
  /** Whether the grace period named by `cookie` has completed. Never blocks. */
  pollState(cookie: number): boolean;
  /** Waits for a grace period. Never call under mmu_lock or inside a read-side section. */
  synchronize(): void;
}

/**
 * A reclaim strategy: what the page table and the fault handler call when a walk unlinks a subtree
 * (a block installed over a table) and after each fault. One instance per thread (each vCPU worker
 * builds its own), so instance fields need no synchronization; state shared between threads must
 * live in shared memory.
 *
 * Where each hook runs, and what it may do:
 *
 * - `freeUnlinked(pgt, page, level, shared)`: the subtree rooted at table `page` (linked from an
 *   entry at `level`) is unreachable for new walkers. The caller holds mmu_lock; when `shared` is
 *   true it also is inside an RCU read-side section and other walkers may still be inside the
 *   subtree (and may even write into it), so nothing may be freed yet. May neither block, nor wait,
 *   nor allocate from the page pool. When `shared` is false the walk is exclusive and the subtree
 *   may be freed at once (`freeSubtreeNow`).
 * - `afterUnlock(pgt)`: the fault epilogue, after mmu_lock and the read-side section are dropped,
 *   called only when `hasEpilogueWork()` says so. May wait for a grace period and free pages.
 * - `drain(pgt)`: before the thread goes away. Must leave nothing of this thread's pending: every
 *   page the strategy holds is freed (waiting for a grace period if need be) or owned by a queued
 *   RCU callback, which `Vm.destroy()`'s barrier then runs.
 * - `hasEpilogueWork()`: cheap, called after every fault; true when `afterUnlock` has work.
 *
 * Accounting in `ReclaimStats` (the leak check and the peak figures depend on it):
 *
 * - exclusive frees: `FREED_NOW += pages freed`;
 * - each shared unlink: `SUBTREES += 1`, `PAGES_DEFERRED += estimate` and
 *   `addPending(PENDING_PAGES, estimate)` (which also raises `PEAK_PAGES`), where the estimate is
 *   `countSubtreePages()`; when the subtree is finally freed, `PAGES_RECLAIMED += pages freed` and
 *   `PENDING_PAGES -= estimate` (the same estimate, so pending returns to 0);
 * - a queued callback: `CALLBACKS_QUEUED += 1` and `addPending(PENDING_CALLBACKS, 1)`; the built-in
 *   callback kinds (`ReclaimKind`) do the matching decrements and the page accounting when they run;
 * - the strategy's own waits for a grace period: `SYNC_FALLBACKS += 1`.
 *
 * `BaseReclaimStrategy` implements all of this for the common cases; extend it, or implement this
 * interface directly.
 */
export interface ReclaimStrategy extends ReclaimHook {
  /** The name reports print. */
  readonly name: string;
  freeUnlinked(pgt: Stage2, page: number, level: number, shared: boolean): void;
  afterUnlock(pgt: Stage2): void;
  drain(pgt: Stage2): void;
  hasEpilogueWork(): boolean;
}

/** What a strategy factory gets, in the thread that will use the strategy. */
export interface ReclaimStrategyEnv {
  /** The strategy's display name. */
  readonly name: string;
  /** This thread's port to the VM's RCU domain. */
  readonly rcu: ReclaimRcu;
  /** The VM's shared reclaim statistics. */
  readonly stats: ReclaimStats;
  /** The VM's reclaim options (budgets and caps a strategy may honour). */
  readonly options: ReclaimOptions;
}

/**
 * Builds one thread's instance of a strategy. A user strategy module's default export. Called once
 * per vCPU thread, synchronously, before the thread's first fault.
 */
export type ReclaimStrategyFactory = (env: ReclaimStrategyEnv) => ReclaimStrategy;

/** Options of a VM's reclaim. */
export interface ReclaimOptions {
  /** A built-in strategy, or a user strategy module resolved with `resolveStrategy()`. */
  strategy: StrategySpec;
  /** Pages a subtree callback (or epilogue) frees before yielding. */
  sliceBudgetPages: number;
  /** bounded: pending pages past which vCPUs reclaim synchronously. */
  boundedCapPages: number;
  /** batched: seal an array once it is this old (ms), even if not full. */
  batchMaxAgeMs: number;
  /**
   * batched: if above 0, age is counted in the vCPU's fault exits (afterUnlock calls) instead of
   * milliseconds: seal an array once this many have passed since it was opened. A controlled run
   * uses it, so that what the strategy does depends on the schedule and not on the clock.
   */
  batchMaxAgeExits: number;
}

/** Defaults for VmOptions.reclaim. */
export const DEFAULT_RECLAIM: ReclaimOptions = {
  strategy: "per-subtree",
  sliceBudgetPages: 64,
  boundedCapPages: 2048,
  batchMaxAgeMs: 1,
  batchMaxAgeExits: 0,
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
 * The base of the built-in strategies, open to user strategies: exclusive frees at once, shared
 * unlinks counted and handed to `deferShared()`, helpers that queue callbacks with the accounting
 * above, and an epilogue list for subtrees this thread frees itself after `synchronize()`.
 */
export abstract class BaseReclaimStrategy implements ReclaimStrategy {
  readonly name: string;
  protected readonly rcu: ReclaimRcu;
  protected readonly stats: ReclaimStats;
  protected readonly opts: ReclaimOptions;
  /** Subtrees this thread must free itself after a grace period (linked through page metadata). */
  private epilogueHead = -1;
  /** A vCPU record (vcpu-record.ts) where the lists this thread holds are noted for a reaper, or null. */
  private rec: Int32Array | null = null;
  private recBase = 0;

  constructor(name: string, rcu: ReclaimRcu, stats: ReclaimStats, opts: ReclaimOptions) {
    this.name = name;
    this.rcu = rcu;
    this.stats = stats;
    this.opts = opts;
  }

  /**
   * Notes the heads of this thread's deferred lists in the vCPU record at `words[base..]`, so that
   * if the thread dies a reaper can still free their pages after a grace period (death.ts).
   */
  publishTo(words: Int32Array, base: number): void {
    this.rec = words;
    this.recBase = base;
  }

  /** Stores `value` in record field `field` (a plain store: the reaper reads it after our death). */
  protected note(field: Rec, value: number): void {
    if (this.rec !== null) this.rec[this.recBase + field] = value;
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

  /** A shared walk unlinked the subtree (already counted in SUBTREES): defer its free. */
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
    this.note(Rec.EPI_HEAD, page);
  }

  /** Fault epilogue: the lock and the read-side section are dropped. */
  afterUnlock(pgt: Stage2): void {
    if (this.epilogueHead < 0) return;
    this.rcu.synchronize();
    this.stats.add(RStat.SYNC_FALLBACKS);
    let page = this.epilogueHead;
    this.epilogueHead = -1;
    this.note(Rec.EPI_HEAD, -1); // before any page goes: a death leaves them unaccounted, not freed twice
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
export class PerTableStrategy extends BaseReclaimStrategy {
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
export class PerSubtreeStrategy extends BaseReclaimStrategy {
  protected deferShared(pgt: Stage2, page: number, level: number): void {
    const pages = this.markPending(pgt, page, level);
    this.queue(pgt, ReclaimKind.FREE_SUBTREE, page, level, pages);
  }
}

/** Per-subtree with a cap: past it, the vCPU waits for a grace period itself after unlocking. */
export class BoundedStrategy extends BaseReclaimStrategy {
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
export class UnsafeSyncStrategy extends BaseReclaimStrategy {
  protected deferShared(pgt: Stage2, page: number, level: number): void {
    const freed = freeQuiescent(pgt, page, level);
    this.stats.add(RStat.FREED_NOW, freed);
  }
}
