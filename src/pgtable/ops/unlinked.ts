/**
 * Mechanics for reclaiming unlinked subtrees, used by the reclaim strategies (src/kvm/reclaim).
 *
 * An unlinked subtree is unreachable for new walkers, but walkers that read the old table pointer
 * a moment ago may still be inside it, and in a SHARED walk they may even write into it (a map that
 * lost no race in a table that is already gone). Two ways to reclaim it safely:
 *
 *  - Wait for a grace period first. Afterwards no walker can be inside, every write they did has
 *    landed, and the subtree is stable: `freeQuiescentSlice` frees it bottom-up, a budget of pages
 *    at a time (Linux's per-subtree callback).
 *  - Freeze it now (x86 TDP MMU style): swap every entry for the locked marker, so concurrent
 *    walkers can no longer change it (their compare-exchange fails, they retry), and collect the
 *    table pages from the values swapped out. Each page can then go to its own RCU callback (the
 *    RFC's per-table strategy). Freezing is what makes per-table enumeration correct: without it a
 *    racing walker could link a new table under the subtree after it was enumerated (a leak).
 */
import { cooperative, RacePoint, racePoint } from "../../common/race-points.js";
import { Errno } from "../../common/errno.js";
import { decodeOa, PTE_LOCKED, pteIsLocked, pteIsTable } from "../../arch/descriptor.js";
import { clearPte, freezePte } from "../pte-update.js";
import { Ctl, type Stage2 } from "../stage2.js";

const FREEZE_SPINS = 1 << 20;
const sleepWord = new Int32Array(new SharedArrayBuffer(4));

/**
 * Freezes every entry below `page` (a table linked from an entry at `level`) and appends the
 * subtree's table pages (children before parents, `page` last) to `out`. Returns OK, or INVAL if
 * an entry stayed locked implausibly long (a walker died between break and make).
 */
export function freezeSubtree(pgt: Stage2, page: number, level: number, out: number[]): number {
  const base = page * pgt.entriesPerPage;
  const childLevel = level + 1;
  for (let i = 0; i < pgt.entriesPerPage; i++) {
    const old = freezeEntry(pgt, base + i);
    if (old === undefined) return pgt.corrupt(base + i, PTE_LOCKED, childLevel);
    if (pteIsTable(old, childLevel)) {
      const child = pgt.pool.paToPage(decodeOa(old, pgt.geo.granule));
      if (child < 0) return pgt.corrupt(base + i, old, childLevel);
      const ret = freezeSubtree(pgt, child, childLevel, out);
      if (ret !== Errno.OK) return ret;
    }
  }
  out.push(page);
  return Errno.OK;
}

/**
 * Swaps the locked marker into one entry and returns what it held. If the entry was already
 * locked, a walker is between its break and make: wait for its make (which stores over our marker)
 * and swap again. Pairs with makePte's Atomics.store. A marker whose owner died (the VM's
 * `lockOwnerDead`) gets no make: the entry is taken as empty (what the dead walker was installing
 * never got in; a table it had allocated is in its hands, for `recoverLostPages()`).
 */
function freezeEntry(pgt: Stage2, ptep: number): bigint | undefined {
  // The breaking walker's own marker: after our first swap the entry holds ours (PTE_LOCKED).
  let theirs = 0n;
  for (let spin = 0; spin < FREEZE_SPINS; spin++) {
    const old = freezePte(pgt, ptep);
    if (!pteIsLocked(old)) return old;
    if (old !== PTE_LOCKED) theirs = old;
    if ((spin & 255) === 255 && theirs !== 0n && pgt.lockOwnerDead?.(theirs) === true) return 0n;
    racePoint(RacePoint.WAIT_LOOP);
    if (spin > 256 && !cooperative) Atomics.wait(sleepWord, 0, 0, 0.05);
  }
  return undefined;
}

/** Pages left in the current slice (module state is thread-local). */
let budgetLeft = 0;

/**
 * Frees up to `budget` table pages of a quiescent subtree rooted at `page` (linked from `level`),
 * deepest first, clearing each freed child's entry so the next slice skips it. Returns the number
 * of pages freed; the subtree is gone when `page` itself was freed, reported via `done`.
 * Only call it after a grace period (or in an exclusive walk): it ignores refcounts.
 */
export function freeQuiescentSlice(
  pgt: Stage2,
  page: number,
  level: number,
  budget: number,
  done: { value: boolean },
): number {
  budgetLeft = budget;
  done.value = sliceTable(pgt, page, level);
  const freed = budget - budgetLeft;
  pgt.count(Ctl.TABLES_FREED, freed);
  return freed;
}

function sliceTable(pgt: Stage2, page: number, level: number): boolean {
  const childLevel = level + 1;
  if (childLevel < 3) {
    const base = page * pgt.entriesPerPage;
    for (let i = 0; i < pgt.entriesPerPage; i++) {
      const pte = Atomics.load(pgt.ptes, base + i);
      if (!pteIsTable(pte, childLevel)) continue;
      if (budgetLeft <= 0) return false;
      const child = pgt.pool.paToPage(decodeOa(pte, pgt.geo.granule));
      if (child < 0) {
        pgt.corrupt(base + i, pte, childLevel);
        continue;
      }
      if (!sliceTable(pgt, child, childLevel)) return false;
      clearPte(pgt, base + i);
    }
  }
  if (budgetLeft <= 0) return false;
  pgt.pool.freePage(page);
  budgetLeft--;
  return true;
}
