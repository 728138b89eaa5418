/**
 * Freeing tables: unmap (which frees tables that become empty), the synchronous free of an
 * unlinked subtree, and destroy. All of these are exclusive walks (write lock held), except that
 * freeSubtreeNow also runs in RCU callbacks on subtrees nobody can reach any more.
 */
import { Errno } from "../../common/errno.js";
import {
  decodeOa,
  pteIsCounted,
  pteIsTable,
  pteValid,
  S2_MEMATTR_MASK,
  S2_MEMATTR_NORMAL,
} from "../../arch/descriptor.js";
import { clearPte, setRoot, zapPte } from "../pte-update.js";
import { Ctl, type Stage2 } from "../stage2.js";
import {
  type Visit,
  type VisitCtx,
  type Visitor,
  type Walker,
  walk,
  WalkFlag,
  walkSubtree,
} from "../walk.js";

function childOf(pgt: Stage2, ctx: VisitCtx): number {
  return pgt.pool.paToPage(decodeOa(ctx.old, pgt.geo.granule));
}

/** Drops a table page's last reference (it is freed at zero) and counts it. */
function putTable(pgt: Stage2, page: number): void {
  if (pgt.pool.putPage(page) === 0) {
    pgt.count(Ctl.TABLES_FREED);
    freedCount++;
  }
}

/** Table pages freed by the current freeSubtreeNow (module state is thread-local). */
let freedCount = 0;

// --- free walker: drop every reference of a subtree (Linux's stage2_free_walker) ---------------

class FreeVisitor implements Visitor {
  visit(pgt: Stage2, ctx: VisitCtx, _visit: Visit): number {
    if (!pteIsCounted(ctx.old)) return Errno.OK;
    pgt.pool.putPage(pgt.pageOf(ctx.ptep));
    if (pteIsTable(ctx.old, ctx.level)) putTable(pgt, childOf(pgt, ctx));
    return Errno.OK;
  }
}

const freeWalker: Walker = {
  visitor: new FreeVisitor(),
  arg: null,
  flags: WalkFlag.LEAF | WalkFlag.TABLE_POST,
};

/**
 * Frees an unlinked subtree at once: every table below `page` and `page` itself. Only safe when
 * no walker can be inside it (exclusive walks, or after an RCU grace period).
 * Returns the number of table pages freed.
 */
export function freeSubtreeNow(pgt: Stage2, page: number, level: number): number {
  freedCount = 0;
  walkSubtree(pgt, page, level, freeWalker);
  putTable(pgt, page);
  return freedCount;
}

// --- unmap ---------------------------------------------------------------------------------------

class UnmapVisitor implements Visitor {
  visit(pgt: Stage2, ctx: VisitCtx, _visit: Visit): number {
    const old = ctx.old;
    if (!pteValid(old)) {
      if (pteIsCounted(old)) {
        clearPte(pgt, ctx.ptep);
        pgt.pool.putPage(pgt.pageOf(ctx.ptep));
      }
      return Errno.OK;
    }
    let child = -1;
    if (pteIsTable(old, ctx.level)) {
      child = childOf(pgt, ctx);
      // Only a table that is really empty goes (refcount 1: no entries left). A walk that covers
      // part of a table must leave the table alone while other entries live in it.
      if (pgt.pool.refcount(child) !== 1) return Errno.OK;
    }
    // Like map, a block is unmapped whole even when the range covers part of it.
    zapPte(pgt, ctx);
    if (child < 0) {
      if ((ctx.flags & WalkFlag.SKIP_CMO) === 0 && (old & S2_MEMATTR_MASK) === S2_MEMATTR_NORMAL) {
        pgt.cmo.cleanInvalDcache(decodeOa(old, pgt.geo.granule), pgt.levelSizes[ctx.level] as number);
      }
    }
    pgt.pool.putPage(pgt.pageOf(ctx.ptep));
    if (child >= 0) putTable(pgt, child);
    return Errno.OK;
  }
}

const unmapWalker: Walker = {
  visitor: new UnmapVisitor(),
  arg: null,
  flags: WalkFlag.LEAF | WalkFlag.TABLE_POST,
};

/**
 * Removes every mapping and annotation in [addr, addr+size) and frees tables left empty.
 * A block only partly inside the range is removed whole (as in Linux). Exclusive.
 */
export function unmap(pgt: Stage2, addr: number, size: number): number {
  const page = pgt.geo.granule;
  if (addr % page !== 0 || size % page !== 0 || size <= 0) return Errno.INVAL;
  return walk(pgt, addr, size, unmapWalker);
}

// --- destroy -------------------------------------------------------------------------------------

/**
 * Frees the whole table, start-level pages included, and marks it destroyed (later walks get
 * INVAL). Exclusive: no other walker may run (write lock held, RCU readers gone).
 */
export function destroy(pgt: Stage2): number {
  const root = pgt.rootPage;
  if (root < 0) return Errno.INVAL;
  const ret = walk(pgt, 0, pgt.geo.ipaSize, freeWalker);
  if (ret !== Errno.OK) return ret;
  setRoot(pgt, -1);
  for (let i = 0; i < pgt.geo.pgdPages; i++) putTable(pgt, root + i);
  return Errno.OK;
}
