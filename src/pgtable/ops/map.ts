/**
 * map and set_owner: install leaves (pages, blocks, or owner annotations) over a range.
 *
 * The visitor follows Linux's stage2_map_walker:
 *  - LEAF on an entry where a leaf of this level fits: break-before-make it into the new leaf;
 *  - LEAF where it does not fit: install a table from the memory cache and let the walker
 *    descend into it (the walker re-reads the entry after the callback);
 *  - TABLE_PRE on a table where a block fits: replace the table by the block and hand the
 *    unlinked subtree to the reclaim hook.
 * The output address is always derived from the IPA offset (phys + (addr - start)), never from
 * the entry being replaced: a racing block-to-table change once let the PA drift in Linux.
 *
 * One deliberate difference from Linux: a smaller mapping inside a valid block splits the block
 * into a table that keeps the block's translation for the rest of its range (Linux installs an
 * empty table and lets the rest fault back in lazily). The leaf being mapped may then also change
 * permissions, since its caller asked for them explicitly.
 */
import { Errno } from "../../common/errno.js";
import {
  decodeOa,
  type Pte,
  makeLeafPte,
  makeOwnerPte,
  makeTablePte,
  pteOr,
  pteValid,
  S2_S2AP_R,
  S2_S2AP_W,
  S2_XN,
  SW_MASK,
} from "../../arch/descriptor.js";
import type { MemCache } from "../../mem/mod.js";
import { makePte, setPteSwBits, tryBreakPte, trySetPte } from "../pte-update.js";
import { Ctl, type Stage2, TestBug } from "../stage2.js";
import { Visit, type VisitCtx, type Visitor, type Walker, walk, WalkFlag, walkShared } from "../walk.js";
import { freeSubtreeNow } from "./free.js";
import { fillTableWithLeaves } from "./fill.js";
import {
  aligned,
  leafMappingAllowed,
  MapData,
  PHYS_INVALID,
  physFor,
  protToAttrs,
  setProt,
} from "./map-data.js";

export { PHYS_INVALID, protToAttrs } from "./map-data.js";

const PERMS_MASK = S2_S2AP_R | S2_S2AP_W | S2_XN;

/** Whether replacing `old` by `pte` changes more than permissions (Linux: stage2_pte_needs_update). */
function pteNeedsUpdate(old: Pte, pte: Pte): boolean {
  if (!pteValid(old) || !pteValid(pte)) return true;
  return ((old ^ pte) & ~PERMS_MASK) !== 0n;
}

/**
 * makeLeafPte(phys, data.attr, level, granule) with one BigInt made instead of four: below 2^48 a
 * granule-aligned PA is its own OA field (for 64K too: PA[51:48] is zero), so the encoding is the
 * PA or'ed with the precomputed attribute and type bits (pteOr).
 */
function leafPte(pgt: Stage2, phys: number, level: number, data: MapData): Pte {
  if (phys >= 2 ** 48 || data.pageBits === 0n) return makeLeafPte(phys, data.attr, level, pgt.geo.granule);
  return level === 3 ? pteOr(phys, data.pageLo, data.pageHi) : pteOr(phys, data.blockLo, data.blockHi);
}

function tryLeaf(pgt: Stage2, ctx: VisitCtx, data: MapData): number {
  if (!leafMappingAllowed(pgt, ctx, data)) return Errno.E2BIG;
  const phys = physFor(ctx, data);
  const pte = phys === PHYS_INVALID ? makeOwnerPte(data.owner) : leafPte(pgt, phys, ctx.level, data);
  // Same mapping, at most the permissions differ: leave it to relax_perms (the vCPU faults again).
  const empty = ctx.old === 0n;
  const inSplit = ctx.addr < data.splitEnd;
  if (!empty && !pteNeedsUpdate(ctx.old, pte) && !(inSplit && ctx.old !== pte)) return Errno.AGAIN;
  if (!empty && !walkShared(ctx.flags) && ((ctx.old ^ pte) & ~SW_MASK) === 0n) {
    setPteSwBits(pgt, ctx.ptep, pte); // only software bits change: no BBM needed
    return Errno.OK;
  }
  if (empty) return installOverEmpty(pgt, ctx, pte, phys, data);
  if ((pgt.bugs & TestBug.NO_BREAK) !== 0 && pteValid(ctx.old)) return makeWithoutBreak(pgt, ctx, pte);
  if (!tryBreakPte(pgt, ctx)) return Errno.AGAIN;
  maintainCaches(pgt, ctx, phys, data);
  makePte(pgt, ctx, pte);
  return Errno.OK;
}

/** TestBug.NO_BREAK: one compare-exchange from a valid entry to another, no break, no TLBI. */
function makeWithoutBreak(pgt: Stage2, ctx: VisitCtx, pte: Pte): number {
  return trySetPte(pgt, ctx, pte) ? Errno.OK : Errno.AGAIN;
}

/** CMOs before the new memory becomes visible through the new entry. */
function maintainCaches(pgt: Stage2, ctx: VisitCtx, phys: number, data: MapData): void {
  if ((ctx.flags & WalkFlag.SKIP_CMO) !== 0 || phys === PHYS_INVALID) return;
  const size = pgt.levelSizes[ctx.level] as number;
  if (data.cacheable) pgt.cmo.cleanInvalDcache(phys, size);
  if (data.executable) pgt.cmo.invalIcache(phys, size);
}

/**
 * An empty entry (zero: invalid, no annotation, not locked) holds nothing a TLB could have cached,
 * so invalid-to-valid needs no break-before-make: one compare-exchange from 0 publishes the new
 * entry (Linux breaks and makes anyway; this saves the locked round trip on every first-touch
 * fault). The reference is taken first so that the count never lags a visible entry; losing the
 * race gives it back (the table cannot drop to zero: it keeps its own reference).
 */
function installOverEmpty(pgt: Stage2, ctx: VisitCtx, pte: Pte, phys: number, data: MapData): number {
  maintainCaches(pgt, ctx, phys, data);
  const page = pgt.pageOf(ctx.ptep);
  pgt.pool.getPage(page);
  if (!trySetPte(pgt, ctx, pte)) {
    pgt.pool.putPage(page);
    return Errno.AGAIN;
  }
  pgt.count(Ctl.MAKES);
  return Errno.OK;
}

/** LEAF where no leaf fits: a table goes in (pre-filled from a valid block, so nothing is lost). */
function mapWalkLeaf(pgt: Stage2, ctx: VisitCtx, data: MapData): number {
  const ret = tryLeaf(pgt, ctx, data);
  if (ret !== Errno.E2BIG) return ret;
  if (ctx.level >= 3) return Errno.INVAL;
  if (data.memcache === null) return Errno.NOMEM;
  const child = data.memcache.alloc();
  if (child < 0) return Errno.NOMEM;
  pgt.pool.setLevel(child, ctx.level + 1);
  const splitting = pteValid(ctx.old);
  if (splitting) fillTableWithLeaves(pgt, child, ctx.old, ctx.level);
  if (!tryBreakPte(pgt, ctx)) {
    pgt.pool.freePage(child);
    return Errno.AGAIN;
  }
  pgt.count(Ctl.TABLES_ALLOCATED);
  if (splitting) {
    const size = pgt.levelSizes[ctx.level] as number;
    data.splitEnd = Math.max(data.splitEnd, Math.floor(ctx.addr / size) * size + size);
  }
  makePte(pgt, ctx, makeTablePte(pgt.pool.pageToPa(child), pgt.geo.granule));
  return Errno.OK;
}

/** TABLE_PRE where a block fits: replace the whole subtree by one block. */
function mapWalkTablePre(pgt: Stage2, ctx: VisitCtx, data: MapData): number {
  if (!leafMappingAllowed(pgt, ctx, data)) return Errno.OK;
  const child = pgt.pool.paToPage(decodeOa(ctx.old, pgt.geo.granule));
  const ret = tryLeaf(pgt, ctx, data);
  if (ret !== Errno.OK) return ret;
  pgt.count(Ctl.UNLINKED_SUBTREES);
  freeUnlinked(pgt, child, ctx.level, walkShared(ctx.flags));
  return Errno.OK;
}

/** Hands an unlinked subtree to the reclaim hook; without one only exclusive walks may free. */
export function freeUnlinked(pgt: Stage2, page: number, level: number, shared: boolean): void {
  if (pgt.reclaim !== null && (pgt.bugs & TestBug.SYNC_FREE_SHARED) === 0) {
    pgt.reclaim.freeUnlinked(pgt, page, level, shared);
    return;
  }
  if (shared && (pgt.bugs & TestBug.SYNC_FREE_SHARED) === 0)
    throw new Error("A shared walk unlinked a table but no reclaim hook is installed");
  freeSubtreeNow(pgt, page, level);
}

class MapVisitor implements Visitor {
  visit(pgt: Stage2, ctx: VisitCtx, visit: Visit): number {
    const data = ctx.arg as MapData;
    if (visit === Visit.TABLE_PRE) return mapWalkTablePre(pgt, ctx, data);
    if (visit === Visit.LEAF) return mapWalkLeaf(pgt, ctx, data);
    return Errno.INVAL;
  }
}

const mapVisitor = new MapVisitor();
const mapData = new MapData();
const mapWalker: Walker = { visitor: mapVisitor, arg: mapData, flags: 0 };

/**
 * Maps [addr, addr+size) to [phys, phys+size) with `prot`, using blocks wherever range, level and
 * alignment allow. `flags` may add SHARED and HANDLE_FAULT (fault path) or SKIP_CMO.
 * Returns OK, INVAL (misaligned or bad prot), RANGE, NOMEM (cache empty), or AGAIN.
 */
export function map(
  pgt: Stage2,
  addr: number,
  size: number,
  phys: number,
  prot: number,
  memcache: MemCache | null,
  flags = 0,
  forcePte = false,
): number {
  const page = pgt.geo.granule;
  if (!aligned(addr, page) || !aligned(size, page) || !aligned(phys, page) || size <= 0 || phys < 0)
    return Errno.INVAL;
  if (phys + size > pgt.paLimit) return Errno.RANGE;
  if (protToAttrs(prot) === -1) return Errno.INVAL;
  mapData.phys = phys;
  setProt(mapData, prot);
  mapData.owner = 0;
  mapData.memcache = memcache;
  mapData.forcePte = forcePte;
  mapData.splitEnd = 0;
  // TABLE_PRE replaces a table by a block; a map smaller than every block never does (a fault's
  // single page), and its walk then makes no visit and no BigInt above the leaf.
  mapWalker.flags = flags | WalkFlag.LEAF | (size >= pgt.minBlockSize ? WalkFlag.TABLE_PRE : 0);
  const ret = walk(pgt, addr, size, mapWalker);
  mapData.memcache = null;
  if (ret === Errno.AGAIN) pgt.count(Ctl.AGAIN);
  return ret;
}

/** Annotates [addr, addr+size) as owned by `owner` (1..255) with invalid entries (set_owner). */
export function setOwner(
  pgt: Stage2,
  addr: number,
  size: number,
  memcache: MemCache | null,
  owner: number,
): number {
  const page = pgt.geo.granule;
  if (!aligned(addr, page) || !aligned(size, page) || size <= 0) return Errno.INVAL;
  if (!Number.isInteger(owner) || owner < 1 || owner > 0xff) return Errno.INVAL;
  mapData.phys = PHYS_INVALID;
  mapData.attr = 0n;
  mapData.pageBits = 0n;
  mapData.blockBits = 0n;
  mapData.owner = owner;
  mapData.memcache = memcache;
  mapData.forcePte = false;
  mapData.splitEnd = 0;
  mapWalker.flags = WalkFlag.TABLE_PRE | WalkFlag.LEAF;
  const ret = walk(pgt, addr, size, mapWalker);
  mapData.memcache = null;
  return ret;
}
