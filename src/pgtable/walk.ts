/**
 * The one generic stage-2 walker.
 *
 * Every operation is a `Walker`: a visitor object, an argument and flags. The walk visits each entry
 * of [addr, addr+size) from the start level down:
 *   - TABLE_PRE  before descending into a table,
 *   - LEAF       for blocks, pages and invalid entries,
 *   - TABLE_POST after the table's children.
 * After a TABLE_PRE or LEAF callback the entry is read again before deciding whether to descend, so
 * a visitor that installed a table is followed into it and one that replaced a table by a block is
 * not (Linux fixed the latter in 6.4: the walker used to descend into the freed table).
 *
 * Status policy (kvm_pgtable_walk_continue): AGAIN stops a HANDLE_FAULT walk (the vCPU retries the
 * fault) and is ignored by every other walk; any other non-zero status stops the walk.
 *
 * SHARED walks run between `guard.begin()` and `guard.end()` (an RCU read-side section), so table
 * pages they reach cannot be freed under them. Hot path: no closures, no allocation; one reused
 * VisitCtx per level, owned by the thread-local Stage2 view.
 */
import { Errno } from "../common/errno.js";
import { RacePoint, racePoint } from "../common/race-points.js";
import type { Pte } from "../arch/descriptor.js";
import { decodeOa, pteIsTable } from "../arch/descriptor.js";
import { type Stage2, TestBug } from "./stage2.js";

/** Which visit a visitor gets: a leaf entry, a table before its children, or after them. */
export const enum Visit {
  LEAF = 1,
  TABLE_PRE = 2,
  TABLE_POST = 4,
}

/** Walker flags: which visits to make (LEAF, TABLE_PRE, TABLE_POST) and how to walk. */
export const enum WalkFlag {
  LEAF = 1,
  TABLE_PRE = 2,
  TABLE_POST = 4,
  /** Parallel walk: RCU read side, compare-and-swap updates, deferred table frees. */
  SHARED = 8,
  /** Stop on AGAIN so the faulting vCPU retries. */
  HANDLE_FAULT = 16,
  /** Break-before-make without TLB invalidation (the caller invalidates, e.g. an unlinked subtree). */
  SKIP_BBM_TLBI = 32,
  /** Skip cache maintenance (the caller knows the memory needs none). */
  SKIP_CMO = 64,
}

/** What a visitor sees. Reused: valid only during the callback. */
export class VisitCtx {
  /** Index of the entry in `pool.ptes`. */
  ptep = 0;
  /** The value read from the entry before the callback (re-read before TABLE_POST). */
  old: Pte = 0n;
  /** Start of the walk (page aligned). */
  start = 0;
  /** Address the entry is visited for (the walk's current address, not necessarily entry aligned). */
  addr = 0;
  /** End of the walk (exclusive, page aligned). */
  end = 0;
  level = 0;
  flags = 0;
  arg: unknown = undefined;
}

/** An operation's callback. Keep visitors module-level singletons: hot walks allocate nothing. */
export interface Visitor {
  /** Returns Errno.OK, or a status for the walk policy above. */
  visit(pgt: Stage2, ctx: VisitCtx, visit: Visit): number;
}

/** A visitor, its argument (handed to the visitor as `ctx.arg`) and the walk's flags. */
export interface Walker {
  visitor: Visitor;
  arg: unknown;
  flags: number;
}

/** Mutable walk position, one per thread-local Stage2 view. */
export class WalkState {
  start = 0;
  addr = 0;
  end = 0;
  walker: Walker | null = null;
  readonly ctxs: VisitCtx[] = [
    new VisitCtx(),
    new VisitCtx(),
    new VisitCtx(),
    new VisitCtx(),
    new VisitCtx(),
  ];
}

export function walkShared(flags: number): boolean {
  return (flags & WalkFlag.SHARED) !== 0;
}

function walkContinue(flags: number, ret: number): boolean {
  if (ret === Errno.AGAIN) return (flags & WalkFlag.HANDLE_FAULT) === 0;
  return ret === Errno.OK;
}

/**
 * Walks [addr, addr+size) with `walker`. Returns ERANGE beyond the IPA space, INVAL after destroy,
 * otherwise the first status that stopped the walk (or OK).
 */
export function walk(pgt: Stage2, addr: number, size: number, walker: Walker): number {
  const geo = pgt.geo;
  const page = geo.granule;
  const inv = pgt.levelInv[3] as number; // 1 / page
  const start = Math.floor(addr * inv) * page;
  const end = Math.ceil((addr + size) * inv) * page;
  if (start >= geo.ipaSize || end > geo.ipaSize || addr < 0 || size < 0) return Errno.RANGE;
  const w = pgt.walkState;
  const shared = walkShared(walker.flags);
  if (w.walker !== null) throw new Error("Stage2 walk re-entered on the same thread view");
  const root = pgt.rootPage;
  if (root < 0) return Errno.INVAL;
  w.walker = walker;
  w.start = start;
  w.addr = start;
  w.end = end;
  // TestBug.NO_RCU (mutation tests only): a shared walk outside the read side.
  const guarded = shared && (pgt.bugs & TestBug.NO_RCU) === 0;
  if (guarded) pgt.guard.begin();
  let ret: number = Errno.OK;
  try {
    // The start-level tables are concatenated and contiguous, so one index spans all of them.
    const base = root * pgt.entriesPerPage;
    const entries = geo.pgdPages * pgt.entriesPerPage;
    ret =
      end - start === page &&
      (walker.flags & (WalkFlag.TABLE_PRE | WalkFlag.TABLE_POST)) === 0 &&
      pgt.tablesLow
        ? walkOnePage(pgt, w, base, geo.startLevel, entries)
        : walkTable(pgt, w, base, geo.startLevel, entries);
  } finally {
    if (guarded) pgt.guard.end();
    w.walker = null;
  }
  return ret;
}

/**
 * Reads descriptor `ptep` as one single-copy-atomic value. An empty entry is recognised from its
 * low 32-bit half alone, without creating a BigInt (the common case of a fault's last level):
 * every descriptor this code writes whose bits 31:0 are all zero is the empty descriptor 0 (a
 * valid one has bit 0 set; the locked marker, owner annotations and the debug poison all have
 * non-zero low bits), so an `Atomics.load` of the low half that returns 0 proves the whole entry
 * was 0 at that instant: the same answer a 64-bit load at that instant gives. Anything else is
 * read again whole, with one 64-bit `Atomics.load`.
 */
export function loadPte(pgt: Stage2, ptep: number): Pte {
  // Both loads pair with the atomic store or compare-exchange that published the entry
  // (makePte, trySetPte): a table descriptor read here orders the zeroing of the child page
  // before our reads of it.
  if (Atomics.load(pgt.words, ptep * 2) === 0) return 0n;
  return Atomics.load(pgt.ptes, ptep);
}

/**
 * Table entry `ptep` (at a level above the last) read from its low 32-bit half alone: the whole
 * descriptor as an unsigned number, or -1 when that half does not show a table (empty, a block,
 * a locked or annotated entry: the caller then reads the whole entry with loadPte). Only for a
 * pool below 4 GiB (`pgt.tablesLow`): every table descriptor this code writes is the table page's
 * PA or'ed with the table type bits (makeTablePte; stage 2 has no hierarchical table attributes),
 * so a low half with both type bits set at a table level belongs to a table whose upper half is
 * zero, and the one `Atomics.load` of the low half returns the value a 64-bit load at that
 * instant would, without making a BigInt. (The upper half of a table descriptor holds OA[47:32],
 * zero for every pool page, and bits stage 2 ignores or reserves: a descriptor written by other
 * code with any of them set is taken for the table its low half names.) The load pairs with the
 * store or compare-exchange that published the table (makePte, trySetPte), as loadPte's does.
 */
function loadTableLo(pgt: Stage2, ptep: number): number {
  const lo = Atomics.load(pgt.words, ptep * 2);
  return (lo & 3) === 3 ? lo >>> 0 : -1;
}

/** The pool page a table descriptor read by loadTableLo points at, or -1 outside the pool. */
function tablePageLo(pgt: Stage2, lo: number): number {
  return pgt.pool.paToPage(lo - (lo & (pgt.geo.granule - 1)));
}

/**
 * pteIsTable(old, level) and the table's page, without a BigInt operation (each would allocate)
 * for descriptors below 2^53, which every table descriptor is (OA below 2^48, no upper
 * attributes): Number() of such a BigInt is exact, and ToInt32 (`| 0`) of an exact integral double
 * keeps its low 32 bits exactly. Anything else takes the BigInt path.
 */
function isTable(old: Pte, level: number): boolean {
  if (level >= 3 || old === 0n) return false;
  const n = Number(old);
  if (n >= 0 && n <= Number.MAX_SAFE_INTEGER) return ((n | 0) & 3) === 3;
  return pteIsTable(old, level);
}

/** The pool page a table descriptor points at, or -1 outside the pool (see isTable). */
function tablePage(pgt: Stage2, old: Pte): number {
  const granule = pgt.geo.granule;
  const n = Number(old);
  // 64K: OA[51:48] sit in bits 15:12, which are zero below 2^48 only if the OA is; else decode.
  if (n >= 0 && n < 2 ** 48 && (granule !== 65536 || ((n | 0) & 0xf000) === 0))
    return pgt.pool.paToPage(n - ((n | 0) & (granule - 1)));
  return pgt.pool.paToPage(decodeOa(old, granule));
}

/**
 * Index of `addr`'s entry in a table of `entries` entries (a power of two) at `level`: ToInt32
 * keeps the exact low bits of the integral quotient.
 */
function entryIndex(pgt: Stage2, addr: number, level: number, entries: number): number {
  return (Math.floor(addr * (pgt.levelInv[level] as number)) | 0) & (entries - 1);
}

function walkTable(pgt: Stage2, w: WalkState, base: number, level: number, entries: number): number {
  const size = pgt.levelSizes[level] as number;
  let idx = entryIndex(pgt, w.addr, level, entries);
  for (; idx < entries; idx++) {
    if (w.addr >= w.end) break;
    const ret = visitEntry(pgt, w, base + idx, level, size);
    if (ret !== Errno.OK) return ret;
  }
  return Errno.OK;
}

/**
 * walkTable for a walk of one page that visits only leaves (a fault's map, relax_perms, mkyoung):
 * the same visits in the same order, without the per-level visit bookkeeping. Above the leaf the
 * generic walk only reads each entry and, finding a table, descends (no TABLE_PRE to call, no
 * write to re-read, one entry per level); this loop does just that, reading each table entry
 * from its low half (loadTableLo, so `pgt.tablesLow` is required). At the first entry that is
 * not a table, or at the last level, it hands over to visitEntry, which does everything from
 * there exactly as the generic walk would (a LEAF visit that installs a table is followed into
 * it). Use-after-free notes and the race point at each table entered are kept.
 */
function walkOnePage(pgt: Stage2, w: WalkState, base: number, level: number, entries: number): number {
  const epp = pgt.entriesPerPage;
  const checkUaf = pgt.checkUaf;
  let ptep = base + entryIndex(pgt, w.addr, level, entries);
  let entered = 0;
  let ret: number = Errno.OK;
  for (;;) {
    const lo = level < 3 ? loadTableLo(pgt, ptep) : -1;
    const child = lo >= 0 ? tablePageLo(pgt, lo) : -1;
    if (child < 0) {
      ret = visitEntry(pgt, w, ptep, level, pgt.levelSizes[level] as number);
      break;
    }
    if (checkUaf) {
      pgt.noteTableEnter(child, level + 1);
      entered++;
      racePoint(RacePoint.WALK_TABLE_ENTERED);
    }
    level++;
    ptep = child * epp + entryIndex(pgt, w.addr, level, epp);
  }
  for (; entered > 0; entered--) pgt.noteTableLeave(pgt.uafPages[pgt.uafPages.length - 1] as number);
  return ret;
}

function visitEntry(pgt: Stage2, w: WalkState, ptep: number, level: number, size: number): number {
  const walker = w.walker as Walker;
  const flags = walker.flags;
  const ctx = w.ctxs[level] as VisitCtx;
  ctx.ptep = ptep;
  ctx.start = w.start;
  ctx.addr = w.addr;
  ctx.end = w.end;
  ctx.level = level;
  ctx.flags = flags;
  ctx.arg = walker.arg;
  // A table read from its low half alone (loadTableLo): its page, and a BigInt only for a visitor
  // that will see the entry (map's single-page walk has none above the leaf).
  const lo = level < 3 && pgt.tablesLow ? loadTableLo(pgt, ptep) : -1;
  let child = lo >= 0 ? tablePageLo(pgt, lo) : -1;
  let table = child >= 0;
  if (table) {
    if ((flags & (WalkFlag.TABLE_PRE | WalkFlag.TABLE_POST)) !== 0) ctx.old = BigInt(lo);
  } else {
    ctx.old = loadPte(pgt, ptep);
    table = isTable(ctx.old, level);
  }
  let ret: number = Errno.OK;
  let visited = false;
  const writes = pgt.pteWrites;
  if (table && flags & WalkFlag.TABLE_PRE) {
    ret = walker.visitor.visit(pgt, ctx, Visit.TABLE_PRE);
    visited = true;
  }
  if (!table && flags & WalkFlag.LEAF) {
    ret = walker.visitor.visit(pgt, ctx, Visit.LEAF);
    visited = true;
  }
  // The re-read shows the walker what the callback itself did (a table installed, or replaced by
  // a block). A callback that made no descriptor write (pteWrites unchanged: every write goes
  // through a pte-update.ts helper) changed nothing a re-read could show, except other threads'
  // updates, which a re-read may miss anyway: skipping it equals a re-read at the instant of the
  // first read. Map's TABLE_PRE on every table above a page is such a callback. At the last level
  // nothing is a table, so a re-read could not change what happens next: none is made there.
  const reload = visited && level < 3 && pgt.pteWrites !== writes;
  if (reload && (pgt.bugs & TestBug.NO_REREAD) === 0) {
    ctx.old = loadPte(pgt, ptep);
    table = isTable(ctx.old, level);
    child = -1;
  }
  if (!walkContinue(flags, ret)) return ret;
  if (!table) {
    w.addr = Math.floor(w.addr * (pgt.levelInv[level] as number)) * size + size;
    return Errno.OK;
  }
  if (child < 0) child = tablePage(pgt, ctx.old);
  if (child < 0) return pgt.corrupt(ptep, ctx.old, level);
  if (pgt.checkUaf) {
    pgt.noteTableEnter(child, level + 1);
    racePoint(RacePoint.WALK_TABLE_ENTERED);
  }
  ret = walkTable(pgt, w, child * pgt.entriesPerPage, level + 1, pgt.entriesPerPage);
  if (pgt.checkUaf) pgt.noteTableLeave(child);
  if (!walkContinue(flags, ret)) return ret;
  if (flags & WalkFlag.TABLE_POST) ret = walker.visitor.visit(pgt, ctx, Visit.TABLE_POST);
  return walkContinue(flags, ret) ? Errno.OK : ret;
}

/**
 * Walks every entry of an unlinked table page whose parent entry was at `level` (so the page holds
 * level+1 entries), as Linux's free_unlinked walk does. Uses its own WalkState, so it may run
 * inside a visitor of an ordinary walk (map replacing a table with a block, exclusive mode).
 * Addresses seen by the visitor are offsets within the subtree, starting at 0.
 */
export function walkSubtree(pgt: Stage2, page: number, level: number, walker: Walker): number {
  const w = pgt.subtreeWalkState;
  if (w.walker !== null) throw new Error("Stage2 subtree walk re-entered on the same thread view");
  w.walker = walker;
  w.start = 0;
  w.addr = 0;
  w.end = pgt.levelSizes[level] as number;
  try {
    return walkTable(pgt, w, page * pgt.entriesPerPage, level + 1, pgt.entriesPerPage);
  } finally {
    w.walker = null;
  }
}
