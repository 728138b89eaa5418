/**
 * Eager splitting: create_unlinked builds a detached subtree that maps a block's range with
 * smaller leaves; split replaces every block in a range by such a subtree (dirty logging).
 */
import { Errno } from "../../common/errno.js";
import {
  decodeOa,
  leafAttrBits,
  makeLeafPte,
  makeTablePte,
  type Pte,
  pteIsTable,
  pteValid,
} from "../../arch/descriptor.js";
import type { MemCache } from "../../mem/mod.js";
import { makePte, setPrivatePte, tryBreakPte } from "../pte-update.js";
import { Ctl, type Stage2 } from "../stage2.js";
import { Visit, type VisitCtx, type Visitor, type Walker, walk, WalkFlag, walkSubtree } from "../walk.js";
import { freeSubtreeNow } from "./free.js";
import { fillTableWithLeaves, pagesToSplit } from "./fill.js";
import { leafMappingAllowed, MapData, protToAttrs } from "./map-data.js";

export { fillTableWithLeaves, pagesToSplit };

// --- create_unlinked -------------------------------------------------------------------------

class UnlinkedVisitor implements Visitor {
  visit(pgt: Stage2, ctx: VisitCtx, visit: Visit): number {
    if (visit !== Visit.LEAF) return Errno.OK;
    const data = ctx.arg as MapData;
    const level = ctx.level;
    if (leafMappingAllowed(pgt, ctx, data)) {
      makePteUnlinked(pgt, ctx, makeLeafPte(data.phys + ctx.addr, data.attr, level, pgt.geo.granule));
      return Errno.OK;
    }
    if (level >= 3 || data.memcache === null) return Errno.INVAL;
    const child = data.memcache.alloc();
    if (child < 0) return Errno.NOMEM;
    pgt.pool.setLevel(child, level + 1);
    pgt.count(Ctl.TABLES_ALLOCATED);
    makePteUnlinked(pgt, ctx, makeTablePte(pgt.pool.pageToPa(child), pgt.geo.granule));
    return Errno.OK;
  }
}

/** The subtree is private: a store and a reference are all an entry needs. */
function makePteUnlinked(pgt: Stage2, ctx: VisitCtx, pte: Pte): void {
  pgt.pool.getPage(pgt.pageOf(ctx.ptep));
  setPrivatePte(pgt, ctx.ptep, pte);
}

const unlinkedData = new MapData();
const unlinkedWalker: Walker = { visitor: new UnlinkedVisitor(), arg: unlinkedData, flags: WalkFlag.LEAF };

/**
 * Builds a detached subtree mapping [phys, phys + levelSize(level)) with `prot`, to be linked
 * from an entry at `level`. With `forcePte` it maps pages only. Returns the subtree's root page,
 * or a negative Errno (NOMEM when the cache runs dry: nothing is leaked).
 */
export function createUnlinked(
  pgt: Stage2,
  phys: number,
  level: number,
  prot: number,
  memcache: MemCache,
  forcePte: boolean,
): number {
  if (level < pgt.geo.startLevel || level >= 3) return Errno.INVAL;
  const attr = protToAttrs(prot);
  if (attr === -1) return Errno.INVAL;
  return createUnlinkedWithAttrs(pgt, phys, level, attr, memcache, forcePte);
}

function createUnlinkedWithAttrs(
  pgt: Stage2,
  phys: number,
  level: number,
  attr: Pte,
  memcache: MemCache,
  forcePte: boolean,
): number {
  if (phys % (pgt.levelSizes[level] as number) !== 0) return Errno.INVAL;
  const root = memcache.alloc();
  if (root < 0) return Errno.NOMEM;
  pgt.pool.setLevel(root, level + 1);
  pgt.count(Ctl.TABLES_ALLOCATED);
  unlinkedData.phys = phys;
  unlinkedData.attr = attr;
  unlinkedData.memcache = memcache;
  unlinkedData.forcePte = forcePte;
  const ret = walkSubtree(pgt, root, level, unlinkedWalker);
  unlinkedData.memcache = null;
  if (ret !== Errno.OK) {
    freeSubtreeNow(pgt, root, level);
    return ret;
  }
  return root;
}

// --- split -------------------------------------------------------------------------------------

class SplitVisitor implements Visitor {
  visit(pgt: Stage2, ctx: VisitCtx, _visit: Visit): number {
    const level = ctx.level;
    if (level >= 3 || !pteValid(ctx.old) || pteIsTable(ctx.old, level)) return Errno.OK;
    const memcache = ctx.arg as MemCache;
    // Split all the way to pages when the cache allows; else one level, and the walk descends
    // into the new table and splits its blocks in turn.
    let force = true;
    let need = pagesToSplit(pgt, level);
    if (memcache.count < need) {
      force = false;
      need = 1;
    }
    if (memcache.count < need) return Errno.NOMEM;
    const phys = decodeOa(ctx.old, pgt.geo.granule);
    const child = createUnlinkedWithAttrs(pgt, phys, level, leafAttrBits(ctx.old), memcache, force);
    if (child < 0) return child;
    if (!tryBreakPte(pgt, ctx)) {
      freeSubtreeNow(pgt, child, level);
      return Errno.AGAIN;
    }
    makePte(pgt, ctx, makeTablePte(pgt.pool.pageToPa(child), pgt.geo.granule));
    return Errno.OK;
  }
}

const splitWalker: Walker = { visitor: new SplitVisitor(), arg: null, flags: WalkFlag.LEAF };

/**
 * Splits every block in [addr, addr+size) down to pages, with tables from `memcache`
 * (eager page splitting for dirty logging). Exclusive: call it under the write lock.
 * Returns OK, NOMEM when the cache ran dry part way (what was split stays split), or RANGE.
 */
export function split(pgt: Stage2, addr: number, size: number, memcache: MemCache): number {
  const page = pgt.geo.granule;
  if (addr % page !== 0 || size % page !== 0 || size <= 0) return Errno.INVAL;
  splitWalker.arg = memcache;
  const ret = walk(pgt, addr, size, splitWalker);
  splitWalker.arg = null;
  return ret;
}
