/**
 * Readers for the pool's shared statistics and per-page metadata (layout.ts). The counters are updated
 * with Atomics by whichever thread allocates or frees, so any thread can read them; a snapshot taken
 * while others work is a set of individually atomic reads, not one consistent cut.
 */
import { PageMeta, PageState, PoolHeader } from "./layout.js";

/** The pool's shared counters, read with one atomic load each (not one consistent cut). */
export interface PoolStats {
  pageCount: number;
  /** Pages handed out and not yet freed (memory-cache contents included). */
  allocated: number;
  /** Highest value `allocated` reached. */
  peakAllocated: number;
  /** Pages handed out since creation (modulo 2^32). */
  allocs: number;
  /** Pages freed since creation (modulo 2^32). */
  frees: number;
  /** Allocation calls that got fewer pages than asked (pool exhausted). */
  allocFailures: number;
  /** Frees of a page that was already free (debug mode also throws). */
  doubleFrees: number;
  /** Pages on the free list now. */
  freeListPages: number;
  /** Pages never handed out yet (the bump region). */
  untouchedPages: number;
  /** Free-list lock acquisitions that found the lock taken. */
  lockContended: number;
  /** Debug mode: pages found modified while free (write-after-free). */
  poisonViolations: number;
  /** putPage calls that took a refcount below zero. */
  refcountUnderflows: number;
  /** Times the free-list mutex was taken back from a dead holder (`reapDeadHolder`). */
  locksReaped: number;
}

export function readStats(meta: Int32Array, pageCount: number): PoolStats {
  const at = (slot: PoolHeader) => Atomics.load(meta, slot);
  return {
    pageCount,
    allocated: at(PoolHeader.ALLOCATED),
    peakAllocated: at(PoolHeader.PEAK),
    allocs: at(PoolHeader.ALLOCS) >>> 0,
    frees: at(PoolHeader.FREES) >>> 0,
    allocFailures: at(PoolHeader.ALLOC_FAILURES),
    doubleFrees: at(PoolHeader.DOUBLE_FREES),
    freeListPages: at(PoolHeader.FREE_COUNT),
    untouchedPages: Math.max(0, pageCount - at(PoolHeader.BUMP)),
    lockContended: at(PoolHeader.LOCK_CONTENDED),
    poisonViolations: at(PoolHeader.POISON_VIOLATIONS),
    refcountUnderflows: at(PoolHeader.REFCOUNT_UNDERFLOWS),
    locksReaped: at(PoolHeader.LOCK_REAPED),
  };
}

/** One page's metadata as `pool.pageInfo(page)` reads it (leak reports, debugging). */
export interface PageInfo {
  page: number;
  pa: number;
  state: PageState;
  refcount: number;
  level: number;
  link: number;
  generation: number;
  aux: number;
}

/** Snapshot of the metadata at `base` (the index of page's REFCOUNT word). */
export function pageInfo(meta: Int32Array, base: number, page: number, pa: number): PageInfo {
  const at = (slot: PageMeta) => Atomics.load(meta, base + slot);
  return {
    page,
    pa,
    state: at(PageMeta.STATE),
    refcount: at(PageMeta.REFCOUNT),
    level: at(PageMeta.LEVEL),
    link: at(PageMeta.LINK),
    generation: at(PageMeta.GENERATION),
    aux: at(PageMeta.AUX),
  };
}

/** Name of a page state for messages, e.g. "UNLINKED". */
export function pageStateName(state: PageState): string {
  switch (state) {
    case PageState.FREE:
      return "FREE";
    case PageState.TABLE:
      return "TABLE";
    case PageState.UNLINKED:
      return "UNLINKED";
    default:
      return `state ${state}`;
  }
}

/** One line per page, e.g. "page 3 (PA 0x40003000): TABLE refcount 2 level 2 gen 1", for leak reports. */
export function formatPages(pages: readonly PageInfo[]): string {
  return pages
    .map(
      (p) =>
        `page ${p.page} (PA 0x${p.pa.toString(16)}): ${pageStateName(p.state)} refcount ${p.refcount} ` +
        `level ${p.level} gen ${p.generation}`,
    )
    .join("\n");
}
