/**
 * Attribute updates on existing leaves: wrprotect, relax_perms, mkyoung, test_clear_young,
 * plus get_leaf and flush. None of these changes what a leaf maps, so none needs break-before-make:
 * a single compare-exchange (shared) or store (exclusive) suffices.
 */
import { Errno } from "../../common/errno.js";
import {
  decodeOa,
  Prot,
  PROT_MASK,
  type Pte,
  pteValid,
  S2_AF,
  S2_MEMATTR_MASK,
  S2_MEMATTR_NORMAL,
  S2_S2AP_R,
  S2_S2AP_W,
  S2_XN,
} from "../../arch/descriptor.js";
import { trySetPte } from "../pte-update.js";
import { Ctl, type Stage2 } from "../stage2.js";
import { type Visit, type VisitCtx, type Visitor, type Walker, walk, WalkFlag } from "../walk.js";

class AttrData {
  set: Pte = 0n;
  clr: Pte = 0n;
  /** The last leaf updated (value after the update) and its level, for single-address callers. */
  pte: Pte = 0n;
  level = -1;
}

class AttrVisitor implements Visitor {
  visit(pgt: Stage2, ctx: VisitCtx, _visit: Visit): number {
    const data = ctx.arg as AttrData;
    if (!pteValid(ctx.old)) return Errno.AGAIN;
    // Device memory never becomes executable: map() refuses device|X, so relax must too (Linux
    // refuses an exec fault on a device mapping before it gets this far).
    if ((data.clr & S2_XN) !== 0n && (ctx.old & S2_MEMATTR_MASK) !== S2_MEMATTR_NORMAL) return Errno.INVAL;
    const pte = (ctx.old & ~data.clr) | data.set;
    data.level = ctx.level;
    data.pte = pte;
    if (pte === ctx.old) return Errno.OK;
    // Becoming executable: the instruction cache must not hold stale lines for this memory.
    if ((pte & S2_XN) === 0n && (ctx.old & S2_XN) !== 0n && (ctx.flags & WalkFlag.SKIP_CMO) === 0) {
      pgt.cmo.invalIcache(decodeOa(pte, pgt.geo.granule), pgt.levelSizes[ctx.level] as number);
    }
    return trySetPte(pgt, ctx, pte) ? Errno.OK : Errno.AGAIN;
  }
}

const attrData = new AttrData();
const attrWalker: Walker = { visitor: new AttrVisitor(), arg: attrData, flags: WalkFlag.LEAF };

function updateLeafAttrs(pgt: Stage2, addr: number, size: number, set: Pte, clr: Pte, flags: number): number {
  const page = pgt.geo.granule;
  if (addr % page !== 0 || size % page !== 0 || size <= 0) return Errno.INVAL;
  attrData.set = set;
  attrData.clr = clr;
  attrData.level = -1;
  attrWalker.flags = flags | WalkFlag.LEAF;
  const ret = walk(pgt, addr, size, attrWalker);
  if (ret === Errno.AGAIN) pgt.count(Ctl.AGAIN);
  return ret;
}

/** Removes write permission from every leaf in the range (dirty logging). Exclusive. */
export function wrprotect(pgt: Stage2, addr: number, size: number): number {
  return updateLeafAttrs(pgt, addr, size, 0n, S2_S2AP_W, 0);
}

/**
 * Grants `prot` (R, W, X; never removes) on the leaf mapping `addr`, then invalidates the stale
 * translation that faulted. Fault path: pass SHARED | HANDLE_FAULT under the read lock.
 * Returns OK, AGAIN (no valid leaf there, or lost a race), or INVAL for a bad prot or for X on a
 * device (non-Normal) mapping, which is left unchanged.
 */
export function relaxPerms(pgt: Stage2, addr: number, prot: number, flags = 0): number {
  if ((prot & ~PROT_MASK) !== 0 || (prot & Prot.DEVICE) !== 0) return Errno.INVAL;
  let set = 0n;
  let clr = 0n;
  if (prot & Prot.R) set |= S2_S2AP_R;
  if (prot & Prot.W) set |= S2_S2AP_W;
  if (prot & Prot.X) clr |= S2_XN;
  const page = pgt.geo.granule;
  // Fix (pgtable tests): always HANDLE_FAULT, as Linux's relax_perms does. Without it an exclusive
  // caller (flags 0) got OK for an address with no valid leaf, since other walks ignore AGAIN;
  // on a one-page walk the flag changes nothing else.
  const handleFault = flags | WalkFlag.HANDLE_FAULT;
  const ret = updateLeafAttrs(pgt, Math.floor(addr / page) * page, page, set, clr, handleFault);
  if ((ret === Errno.OK || ret === Errno.AGAIN) && attrData.level >= 0)
    pgt.tlb.flushIpa(pgt.vmid, addr, attrData.level);
  return ret;
}

/** Sets the access flag on the leaf mapping `addr` (access-flag fault). Returns the new leaf or 0n. */
export function mkyoung(pgt: Stage2, addr: number, flags = 0): Pte {
  const page = pgt.geo.granule;
  const ret = updateLeafAttrs(pgt, Math.floor(addr / page) * page, page, S2_AF, 0n, flags);
  return ret === Errno.OK && attrData.level >= 0 ? attrData.pte : 0n;
}

// --- test_clear_young -----------------------------------------------------------------------------

class AgeData {
  young = false;
  mkold = false;
}

class AgeVisitor implements Visitor {
  visit(pgt: Stage2, ctx: VisitCtx, _visit: Visit): number {
    const data = ctx.arg as AgeData;
    if (!pteValid(ctx.old) || (ctx.old & S2_AF) === 0n) return Errno.OK;
    data.young = true;
    // No TLB invalidation: a stale young translation only makes the page look accessed once more.
    if (data.mkold && !trySetPte(pgt, ctx, ctx.old & ~S2_AF)) return Errno.AGAIN;
    return Errno.OK;
  }
}

const ageData = new AgeData();
const ageWalker: Walker = { visitor: new AgeVisitor(), arg: ageData, flags: WalkFlag.LEAF };

/** Whether any leaf in the range has its access flag set; with `mkold`, clears it. */
export function testClearYoung(pgt: Stage2, addr: number, size: number, mkold: boolean, flags = 0): boolean {
  ageData.young = false;
  ageData.mkold = mkold;
  ageWalker.flags = flags | WalkFlag.LEAF;
  walk(pgt, addr, size, ageWalker);
  return ageData.young;
}

// --- get_leaf -----------------------------------------------------------------------------------

/** What getLeaf() found: the leaf descriptor and its level. Reuse one per thread. */
export class LeafResult {
  pte: Pte = 0n;
  level = -1;
}

class LeafVisitor implements Visitor {
  visit(_pgt: Stage2, ctx: VisitCtx, _visit: Visit): number {
    const out = ctx.arg as LeafResult;
    out.pte = ctx.old;
    out.level = ctx.level;
    return Errno.OK;
  }
}

const leafWalker: Walker = { visitor: new LeafVisitor(), arg: null, flags: WalkFlag.LEAF };

/**
 * Fills `out` with the entry that translates `addr` (a leaf, or the invalid entry where the walk
 * ended) and its level. Returns OK or RANGE. Pass SHARED when not holding the write lock.
 */
export function getLeaf(pgt: Stage2, addr: number, out: LeafResult, flags = 0): number {
  const page = pgt.geo.granule;
  out.pte = 0n;
  out.level = -1;
  leafWalker.arg = out;
  leafWalker.flags = flags | WalkFlag.LEAF;
  const ret = walk(pgt, Math.floor(addr / page) * page, page, leafWalker);
  leafWalker.arg = null;
  return ret;
}

// --- flush ----------------------------------------------------------------------------------------

class FlushVisitor implements Visitor {
  visit(pgt: Stage2, ctx: VisitCtx, _visit: Visit): number {
    if (pteValid(ctx.old) && (ctx.old & S2_MEMATTR_MASK) === S2_MEMATTR_NORMAL) {
      pgt.cmo.cleanInvalDcache(decodeOa(ctx.old, pgt.geo.granule), pgt.levelSizes[ctx.level] as number);
    }
    return Errno.OK;
  }
}

const flushWalker: Walker = { visitor: new FlushVisitor(), arg: null, flags: WalkFlag.LEAF };

/** Cleans and invalidates the data cache for every cacheable leaf in the range (a counted hook). */
export function flush(pgt: Stage2, addr: number, size: number): number {
  const page = pgt.geo.granule;
  if (addr % page !== 0 || size % page !== 0 || size <= 0) return Errno.INVAL;
  return walk(pgt, addr, size, flushWalker);
}
