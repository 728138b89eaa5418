/** The stage-2 page table: one walker, every stage-2 operation. */
export { Visit, VisitCtx, type Visitor, type Walker, WalkFlag, walk, walkSubtree } from "./walk.js";
export {
  Ctl,
  type ReclaimHook,
  Stage2,
  type Stage2Env,
  type Stage2Handle,
  type Stage2Options,
  type Stage2Stats,
  type WalkGuard,
} from "./stage2.js";
export { makePte, tryBreakPte, trySetPte } from "./pte-update.js";
export { map, setOwner, PHYS_INVALID, freeUnlinked, protToAttrs } from "./ops/map.js";
export { unmap, destroy, freeSubtreeNow } from "./ops/free.js";
export { wrprotect, relaxPerms, mkyoung, testClearYoung, getLeaf, LeafResult, flush } from "./ops/attr.js";
export { createUnlinked, split, pagesToSplit } from "./ops/split.js";
