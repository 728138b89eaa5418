/**
 * The stage-2 page table: one generic walker (LEAF / TABLE_PRE / TABLE_POST visitors), the
 * break-before-make update helpers, every stage-2 operation (map, unmap, wrprotect, relax_perms,
 * mkyoung, test_clear_young, set_owner, get_leaf, flush, create_unlinked, split, destroy), the
 * mechanics of reclaiming unlinked subtrees, and the quiescent readers: audit, ptdump and image.
 */
export { type AuditResult, auditTable } from "./audit.js";
export { collectRanges, type DumpRange, formatRanges, type RangeKind, rangeToJson } from "./dump.js";
export { IMAGE_FORMAT, type ImageMeta, imageBytes, imageMeta, writeImage } from "./image.js";
export { Visit, VisitCtx, type Visitor, type Walker, WalkFlag, walk, walkSubtree } from "./walk.js";
export {
  Ctl,
  type ReclaimHook,
  Stage2,
  type Stage2Env,
  type Stage2Handle,
  type Stage2Options,
  type Stage2Stats,
  TestBug,
  type WalkGuard,
} from "./stage2.js";
export {
  clearPte,
  freezePte,
  makePte,
  setPrivatePte,
  setPteSwBits,
  setRoot,
  tryBreakPte,
  trySetPte,
  zapPte,
} from "./pte-update.js";
export { map, setOwner, PHYS_INVALID, freeUnlinked, protToAttrs } from "./ops/map.js";
export { unmap, destroy, freeSubtreeNow } from "./ops/free.js";
export { wrprotect, relaxPerms, mkyoung, testClearYoung, getLeaf, LeafResult, flush } from "./ops/attr.js";
export { createUnlinked, split, pagesToSplit } from "./ops/split.js";
export { freeQuiescentSlice, freezeSubtree } from "./ops/unlinked.js";
