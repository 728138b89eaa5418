/** Pre-filling a table with leaves that translate exactly like the block it replaces. */
import { decodeOa, leafAttrBits, makeLeafPte, type Pte } from "../../arch/descriptor.js";
import { setPrivatePte } from "../pte-update.js";
import type { Stage2 } from "../stage2.js";

/**
 * Fills private table page `child` (entries at level+1) with leaves that translate exactly like
 * `block` did at `level`, and counts them in its refcount. The page is not yet published: the
 * make that links it orders these stores before any walker can read them.
 */
export function fillTableWithLeaves(pgt: Stage2, child: number, block: Pte, level: number): void {
  const granule = pgt.geo.granule;
  const childSize = pgt.levelSizes[level + 1] as number;
  const pa = decodeOa(block, granule);
  const attrs = leafAttrBits(block);
  const base = child * pgt.entriesPerPage;
  for (let i = 0; i < pgt.entriesPerPage; i++) {
    setPrivatePte(pgt, base + i, makeLeafPte(pa + i * childSize, attrs, level + 1, granule));
  }
  for (let i = 0; i < pgt.entriesPerPage; i++) pgt.pool.getPage(child);
}

/** Table pages needed to split a block at `level` down to pages (one per level below it). */
export function pagesToSplit(pgt: Stage2, level: number): number {
  let pages = 0;
  for (let l = level; l < 3; l++) pages = pages * pgt.entriesPerPage + 1;
  return pages;
}
