/**
 * Access tracking over a range: count the pages whose translation is young, and optionally make
 * them old (test_clear_young as page_idle drives it). One walk with one small visitor.
 */
import { pteValid, S2_AF } from "../arch/descriptor.js";
import { Errno } from "../common/errno.js";
import { trySetPte } from "../pgtable/pte-update.js";
import type { Stage2 } from "../pgtable/stage2.js";
import { type Visit, type VisitCtx, type Visitor, type Walker, WalkFlag, walk } from "../pgtable/walk.js";

class YoungData {
  pages = 0;
  clear = false;
}

class YoungVisitor implements Visitor {
  visit(pgt: Stage2, ctx: VisitCtx, _visit: Visit): number {
    const data = ctx.arg as YoungData;
    if (!pteValid(ctx.old) || (ctx.old & S2_AF) === 0n) return Errno.OK;
    const size = pgt.levelSizes[ctx.level] as number;
    const from = Math.max(ctx.start, Math.floor(ctx.addr / size) * size);
    const to = Math.min(ctx.end, Math.floor(ctx.addr / size) * size + size);
    data.pages += (to - from) / pgt.geo.granule;
    // No TLB invalidation: a stale young translation only makes the page look accessed once more.
    if (data.clear && !trySetPte(pgt, ctx, ctx.old & ~S2_AF)) return Errno.AGAIN;
    return Errno.OK;
  }
}

const youngData = new YoungData();
const youngWalker: Walker = { visitor: new YoungVisitor(), arg: youngData, flags: WalkFlag.LEAF };

/**
 * Pages of [ipa, ipa+size) mapped by a young leaf (a block counts its pages inside the range);
 * with `clear`, those leaves are made old. Exclusive walk: hold the write lock.
 */
export function countYoung(pgt: Stage2, ipa: number, size: number, clear: boolean): number {
  youngData.pages = 0;
  youngData.clear = clear;
  walk(pgt, ipa, size, youngWalker);
  return youngData.pages;
}
