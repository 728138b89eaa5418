/**
 * The RCU's own check, for `stage2 torture`: how old, in grace periods, are the table pages that
 * readers are inside?
 *
 * When a shared walk unlinks a subtree, the torture's reclaim wrapper (`rcu-age-strategy.ts`)
 * calls `recordUnlinked()`, which stores, for every page of the subtree, the page's generation and
 * the domain's GP_COMPLETED. A vCPU's race hook at `walk.table-entered` (debug pools only: the
 * walker passes that point right after noting the page in `Stage2.uafPages`) then looks at every
 * table page the current SHARED walk is inside:
 *
 *   age = GP_COMPLETED now - GP_COMPLETED at unlink   (0 when this incarnation was never unlinked)
 *
 * and counts the page just entered in a histogram of ages 0, 1, 2, >2. A reader that reached a page
 * before its unlink holds back every grace period that started after the reader's section began,
 * so at most the period already running at the unlink can complete under it: age 0 or 1. Age 2 or
 * more means a grace period completed while a reader still held the page (it could have been freed
 * under the reader): a violation, for the page just entered or any table above it. The recorded
 * GP_COMPLETED is read after the unlink's store, so it can only be late and the age only
 * under-estimated: the check has no false positives.
 *
 * Shared layout (Int32Array over one SharedArrayBuffer, two words per pool page; `createAgeTable`):
 *
 *   word       content                                   writer                    reader
 *   [2p + 0]   GEN: generation of page p at its last     the unlinking vCPU,       vCPU hooks, first
 *              unlink, + 1 (0 = never unlinked)          Atomics.store, second
 *   [2p + 1]   GP: GP_COMPLETED at that unlink           the unlinking vCPU,       vCPU hooks, after
 *                                                        Atomics.store, first      GEN
 *
 * GP is stored before GEN and loaded after it (both sequentially consistent): a hook that matches
 * GEN reads that unlink's GP or a later incarnation's (which only under-estimates the age).
 * Counters are thread-local (module state is per worker thread); `takeAgeReport()` reads them.
 */
import { decodeOa, pteIsTable } from "../arch/descriptor.js";
import { RacePoint, setRaceHook } from "../common/race-points.js";
import type { Stage2 } from "../pgtable/stage2.js";
import { WalkFlag } from "../pgtable/walk.js";
import { Ctl as RcuCtl } from "../rcu/layout.js";

/** What a thread needs to run the check: the age table and the RCU domain's control block. */
export interface AgeHandle {
  table: SharedArrayBuffer;
  /** The VM's RCU control block (`RcuHandle.ctl`), for GP_COMPLETED. */
  rcuCtl: SharedArrayBuffer;
}

/** One thread's observations. `histogram[i]`: pages entered at age i (i = 3: older). */
export interface AgeReport {
  histogram: [number, number, number, number];
  /** Observations of age 2 or more (the page entered or a table above it). */
  violations: number;
  first: string | null;
}

/** Makes the shared age table for a pool of `pages` pages. */
export function createAgeTable(pages: number, rcuCtl: SharedArrayBuffer): AgeHandle {
  return { table: new SharedArrayBuffer(pages * 8), rcuCtl };
}

let table: Int32Array | null = null;
let ctl: Int32Array | null = null;
let view: Stage2 | null = null;
const histogram = new Float64Array(4);
let violations = 0;
let first: string | null = null;

/**
 * Installs the check in this thread: `recordUnlinked()` starts recording and the race hook watches
 * `pgt`'s shared walks. Replaces this thread's race hook (delays set with setRaceDelays stay).
 */
export function installAgeCheck(h: AgeHandle, pgt: Stage2): void {
  table = new Int32Array(h.table);
  ctl = new Int32Array(h.rcuCtl);
  view = pgt;
  histogram.fill(0);
  violations = 0;
  first = null;
  setRaceHook(onPoint);
}

/** Removes the check from this thread and returns what it saw. */
export function takeAgeReport(): AgeReport {
  setRaceHook(null);
  table = null;
  ctl = null;
  view = null;
  return {
    histogram: [
      histogram[0] as number,
      histogram[1] as number,
      histogram[2] as number,
      histogram[3] as number,
    ],
    violations,
    first,
  };
}

/**
 * Records the unlink of the subtree rooted at `page` (the table an entry at `level` pointed to).
 * Call it before the strategy may free anything. Does nothing unless the check is installed.
 */
export function recordUnlinked(pgt: Stage2, page: number, level: number): void {
  if (table === null || ctl === null) return;
  // Pairs with the grace-period driver's store of GP_COMPLETED: read after the unlink's store,
  // so it is the count at the unlink or later (a later one only under-estimates ages).
  recordSubtree(pgt, table, page, level, Atomics.load(ctl, RcuCtl.GP_COMPLETED));
}

/** Hand-written recursion: the page, then every table below it that is linked right now. */
function recordSubtree(pgt: Stage2, t: Int32Array, page: number, level: number, gp: number): void {
  // GP first, GEN second: pairs with the hook's load of GEN before GP.
  Atomics.store(t, 2 * page + 1, gp);
  Atomics.store(t, 2 * page, pgt.pool.generation(page) + 1);
  const base = page * pgt.entriesPerPage;
  for (let i = 0; i < pgt.entriesPerPage; i++) {
    const pte = Atomics.load(pgt.ptes, base + i);
    if (!pteIsTable(pte, level + 1)) continue;
    const child = pgt.pool.paToPage(decodeOa(pte, pgt.geo.granule));
    if (child >= 0) recordSubtree(pgt, t, child, level + 1, gp);
  }
}

/** The race hook: at walk.table-entered of a SHARED walk, the ages of the tables it is inside. */
function onPoint(point: RacePoint): void {
  if (point !== RacePoint.WALK_TABLE_ENTERED || view === null || table === null || ctl === null) return;
  const w = view.walkState.walker;
  if (w === null || (w.flags & WalkFlag.SHARED) === 0) return;
  const pages = view.uafPages;
  const gens = view.uafGens;
  // Pairs with the driver's store of GP_COMPLETED (a period that completed is counted).
  const now = Atomics.load(ctl, RcuCtl.GP_COMPLETED);
  const top = pages.length - 1;
  for (let i = 0; i <= top; i++) {
    const page = pages[i] as number;
    const gen = gens[i] as number;
    let age = 0;
    // GEN before GP: pairs with recordSubtree's stores (GP first, GEN second).
    if (Atomics.load(table, 2 * page) === gen + 1)
      age = Math.max(0, (now - Atomics.load(table, 2 * page + 1)) | 0);
    if (i === top) (histogram[Math.min(age, 3)] as number)++;
    if (age >= 2) {
      violations++;
      first ??= `a reader was inside table page ${page} (PA 0x${view.pool.pageToPa(page).toString(16)}) ${age} grace periods after its unlink`;
    }
  }
}
