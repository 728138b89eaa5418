/**
 * The three steps every descriptor update is built from, and the atomics behind them.
 *
 *  - trySetPte:   an exclusive walk stores; a SHARED walk compare-exchanges against `ctx.old` and
 *                 loses (false) if another walker changed the entry since it was read.
 *  - tryBreakPte: swaps the locked marker in (break), invalidates the TLB for what was there
 *                 (maintain) and drops the old entry's reference on its table page.
 *  - makePte:     takes the new entry's reference and publishes it with an atomic store (make).
 *
 * Worst case of a lost race: the loser returns AGAIN and its fault is simply taken again. A walker
 * that meets the locked marker treats it like any other change it did not expect: AGAIN.
 *
 * One place writes a PTE: every descriptor store of the page-table code goes through a helper of
 * this file (the three steps above, plus `clearPte`, `setPrivatePte` for pages no walker can reach
 * yet, `freezePte` for unlinked subtrees, `setPteSwBits`, and `setRoot` for VTTBR's table), so a
 * checker or an MMU model that wraps these sees every change. Each helper also counts the attempt
 * in the view's `pteWrites` (thread-local), which tells the walker whether a visitor wrote at all.
 */
import { type Pte, PTE_LOCKED, pteIsCounted, pteIsLocked, pteIsTable, pteValid } from "../arch/descriptor.js";
import { RacePoint, racePoint } from "../common/race-points.js";
import { Ctl, type Stage2, TestBug } from "./stage2.js";
import { type VisitCtx, WalkFlag } from "./walk.js";

/**
 * Step for entries that need no break: store (exclusive) or compare-exchange against `ctx.old`
 * (SHARED). Returns false when a SHARED walk lost the race; the caller returns AGAIN.
 */
export function trySetPte(pgt: Stage2, ctx: VisitCtx, pte: Pte): boolean {
  pgt.pteWrites++;
  if ((ctx.flags & WalkFlag.SHARED) === 0) {
    // Exclusive: no software walker runs concurrently, but a hardware walker may read the entry
    // at any time, so the 64-bit value is still written with one single-copy-atomic store.
    Atomics.store(pgt.ptes, ctx.ptep, pte);
    return true;
  }
  racePoint(RacePoint.BEFORE_CAS);
  // Pairs with the Atomics.load in visitEntry of every other walker: success means nobody changed
  // the entry since we read ctx.old, and our value becomes visible as one 64-bit write.
  if (Atomics.compareExchange(pgt.ptes, ctx.ptep, ctx.old, pte) === ctx.old) return true;
  pgt.count(Ctl.CAS_FAILURES);
  return false;
}

/**
 * trySetPte(pgt, ctx, pgt.lockMarker) for an entry read as empty (`ctx.old` 0), through its low
 * 32-bit half alone. The marker's upper half is zero (Stage2.setLockOwner), and every descriptor
 * this code writes whose low half is zero is the empty descriptor 0 (see loadPte in walk.ts): so
 * the low half is 0 exactly when the whole entry is, and writing the marker's low half over it
 * leaves the whole entry equal to the marker. A SHARED walk's 32-bit compare-exchange from 0
 * therefore wins and loses exactly when a 64-bit one from 0n would, with no BigInt made (the
 * 64-bit compare-exchange returns the old value as a new BigInt at every call, and the caller
 * compared two BigInts).
 * The compare-exchange and the store are single-copy atomic as the 64-bit ones are, and pair with
 * the same loads (visitEntry's, the hardware walker's, loadPte's of the low half).
 */
function tryLockEmpty(pgt: Stage2, ctx: VisitCtx): boolean {
  pgt.pteWrites++;
  const lo = ctx.ptep * 2;
  if ((ctx.flags & WalkFlag.SHARED) === 0) {
    Atomics.store(pgt.words, lo, pgt.lockMarkerLo);
    return true;
  }
  racePoint(RacePoint.BEFORE_CAS);
  if (Atomics.compareExchange(pgt.words, lo, 0, pgt.lockMarkerLo) === 0) return true;
  pgt.count(Ctl.CAS_FAILURES);
  return false;
}

/** Break: lock the entry, invalidate what it mapped, drop its reference. False = lost a race. */
export function tryBreakPte(pgt: Stage2, ctx: VisitCtx): boolean {
  const old = ctx.old;
  if (old === 0n) {
    // Nothing was mapped: nothing to invalidate, no reference to drop (the common fault case).
    if (!tryLockEmpty(pgt, ctx)) return false;
    pgt.count(Ctl.BREAKS);
    racePoint(RacePoint.BBM_LOCKED);
    return true;
  }
  if (pteIsLocked(old)) {
    // Another walker is between its break and make. Impossible for an exclusive walker, which
    // would mean a walker left an entry locked: count it as corruption.
    if ((ctx.flags & WalkFlag.SHARED) === 0) pgt.corrupt(ctx.ptep, old, ctx.level);
    return false;
  }
  const tlbi = (ctx.flags & WalkFlag.SKIP_BBM_TLBI) === 0 && pteValid(old);
  if (tlbi) pgt.tlb.updateBegin();
  if (!trySetPte(pgt, ctx, pgt.lockMarker)) {
    if (tlbi) pgt.tlb.updateEnd();
    return false;
  }
  if (tlbi) {
    invalidateOld(pgt, ctx.addr, ctx.level, old);
    pgt.tlb.updateEnd();
  }
  if (pteIsCounted(old)) pgt.pool.putPage(pgt.pageOf(ctx.ptep));
  pgt.count(Ctl.BREAKS);
  racePoint(RacePoint.BBM_LOCKED);
  return true;
}

/**
 * Maintain: invalidate what `old` (a valid entry at `level` for `addr`) left in TLBs and walk
 * caches, and wait for completion. A table covers its whole range, at every level and with no
 * level hint, or walk caches keep pointing at the table (KVM's 2024 fixes).
 */
function invalidateOld(pgt: Stage2, addr: number, level: number, old: Pte): void {
  if ((pgt.bugs & TestBug.SKIP_BREAK_TLBI) !== 0) return;
  if (!pteIsTable(old, level)) {
    pgt.tlb.flushIpa(pgt.vmid, addr, level);
    return;
  }
  if ((pgt.bugs & TestBug.HINTED_TABLE_TLBI) !== 0) {
    pgt.tlb.flushIpa(pgt.vmid, addr, level);
    return;
  }
  const size = pgt.levelSizes[level] as number;
  pgt.tlb.flushRange(pgt.vmid, Math.floor(addr / size) * size, size);
}

/**
 * Exclusive-only break without make (unmap): clear a valid entry and invalidate what it mapped.
 * The caller drops the references.
 */
export function zapPte(pgt: Stage2, ctx: VisitCtx): void {
  pgt.pteWrites++;
  pgt.tlb.updateBegin();
  Atomics.store(pgt.ptes, ctx.ptep, 0n);
  invalidateOld(pgt, ctx.addr, ctx.level, ctx.old);
  pgt.tlb.updateEnd();
}

/** Make: the entry must be locked by our break; take the new reference and publish. */
export function makePte(pgt: Stage2, ctx: VisitCtx, pte: Pte): void {
  pgt.pteWrites++;
  if (pteIsCounted(pte)) pgt.pool.getPage(pgt.pageOf(ctx.ptep));
  // Release: pairs with the Atomics.load in visitEntry (and a hardware walker's read); everything
  // written before (a new table's contents, the reference count) is visible to whoever sees `pte`.
  Atomics.store(pgt.ptes, ctx.ptep, pte);
  pgt.count(Ctl.MAKES);
}

/**
 * Exclusive-only (the write lock held): clear an entry left locked by a walker that died between
 * its break and its make, and invalidate the entry's whole range at `level`: what it mapped
 * before the break is unknown (a table or a leaf), and the break may have died before its own
 * invalidation. The caller fixes the page's reference count.
 */
export function zapLockedPte(pgt: Stage2, ptep: number, addr: number, level: number): void {
  pgt.pteWrites++;
  const size = pgt.levelSizes[level] as number;
  pgt.tlb.updateBegin();
  Atomics.store(pgt.ptes, ptep, 0n);
  pgt.tlb.flushRange(pgt.vmid, Math.floor(addr / size) * size, size);
  pgt.tlb.updateEnd();
}

/** Exclusive-only: clear an entry (unmap, teardown). */
export function clearPte(pgt: Stage2, ptep: number): void {
  pgt.pteWrites++;
  // Single-copy atomic: a hardware walker may read the entry at any time.
  Atomics.store(pgt.ptes, ptep, 0n);
}

/**
 * Stores into a table page that no walker can reach yet (filled before the make that links it, or
 * built in an unlinked subtree). Ordered for readers by the later makePte's release store.
 */
export function setPrivatePte(pgt: Stage2, ptep: number, pte: Pte): void {
  pgt.pteWrites++;
  Atomics.store(pgt.ptes, ptep, pte);
}

/**
 * Exclusive-only: an entry whose new value differs from the old only in software bits (no
 * translation changes, so neither break nor invalidation is needed).
 */
export function setPteSwBits(pgt: Stage2, ptep: number, pte: Pte): void {
  pgt.pteWrites++;
  Atomics.store(pgt.ptes, ptep, pte);
}

/**
 * Freezes an entry of an unlinked subtree: swaps in the locked marker and returns the old value.
 * Pairs with makePte's Atomics.store (a walker between break and make stores over our marker,
 * and the caller swaps again).
 */
export function freezePte(pgt: Stage2, ptep: number): Pte {
  pgt.pteWrites++;
  return Atomics.exchange(pgt.ptes, ptep, PTE_LOCKED);
}

/**
 * Publishes the root (VTTBR_EL2.BADDR) as a page index, or -1 to detach it (teardown, under the
 * write lock). Pairs with the Atomics.load of every walk's `rootPage`, software or hardware.
 */
export function setRoot(pgt: Stage2, page: number): void {
  Atomics.store(pgt.ctl, Ctl.ROOT, page);
}
