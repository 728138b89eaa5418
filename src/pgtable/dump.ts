/**
 * ptdump: the stage-2 table as coalesced ranges, in the spirit of Linux's stage-2 debugfs dump.
 *
 * One exclusive LEAF walk over the table visits every block, page and non-empty invalid entry.
 * Neighbouring entries merge into one range when they sit at the same level, are of the same kind,
 * carry the same attribute bits (or the same invalid value), follow each other in the IPA space and,
 * for leaves, in the PA space too. Empty entries (0) are holes and are not listed.
 *
 *   0x0000000000000000-0x0000000000200000        2M  L2 block  PA 0x80000000      RW-  normal-wb IS AF
 *   0x0000000000200000-0x0000000000210000       64K  L3 page   PA 0x90000000      R--  normal-wb IS AF
 *   0x0000000000400000-0x0000000000402000        8K  L3 owner  owner=5
 *
 * Call it with no other walker running (the write lock held, or a quiescent table): it reads
 * entries with the walker's ordinary atomic loads but makes no attempt at a consistent snapshot.
 */
import { archBlockLevels, attrWords, decodeDescriptor, formatSize, hex, permString } from "../arch/decode.js";
import {
  decodeOa,
  leafAttrBits,
  type Pte,
  PTE_TYPE,
  PTE_VALID,
  pteIsLocked,
  pteOwner,
} from "../arch/descriptor.js";
import type { Granule } from "../arch/geometry.js";
import { Errno } from "../common/errno.js";
import type { Stage2 } from "./stage2.js";
import { type Visit, type VisitCtx, type Visitor, type Walker, walk, WalkFlag } from "./walk.js";

/** block/page: valid leaves. owner: KVM annotation. locked: mid break-before-make. reserved: a
 * valid-looking encoding the architecture reserves. invalid: any other non-zero invalid value. */
export type RangeKind = "block" | "page" | "owner" | "locked" | "reserved" | "invalid";

/** A run of IPA space mapped alike (ptdump style), as collectRanges() returns it. */
export interface DumpRange {
  /** IPA of the first byte and one past the last. */
  start: number;
  end: number;
  level: number;
  kind: RangeKind;
  /** Descriptors merged into this range. */
  entries: number;
  /** PA mapped at `start` (block and page only; -1 otherwise). */
  pa: number;
  /** Leaf attribute bits (block, page) or the raw descriptor (every other kind). */
  attrs: Pte;
}

class DumpState {
  ranges: DumpRange[] = [];
  granule: Granule = 4096;
  blockLevels: readonly number[] = [];
}

function classify(pte: Pte, level: number, blockLevels: readonly number[]): RangeKind {
  if ((pte & PTE_VALID) === 0n) {
    if (pteIsLocked(pte)) return "locked";
    return pteOwner(pte) !== 0 ? "owner" : "invalid";
  }
  if ((pte & PTE_TYPE) !== 0n) return "page"; // tables never reach a LEAF visit
  return blockLevels.includes(level) ? "block" : "reserved";
}

class DumpVisitor implements Visitor {
  visit(pgt: Stage2, ctx: VisitCtx, _visit: Visit): number {
    const pte = ctx.old;
    if (pte === 0n) return Errno.OK;
    const state = ctx.arg as DumpState;
    const level = ctx.level;
    const size = pgt.levelSizes[level] as number;
    const start = Math.floor(ctx.addr / size) * size;
    const kind = classify(pte, level, state.blockLevels);
    const leaf = kind === "block" || kind === "page";
    const pa = leaf ? decodeOa(pte, state.granule) : -1;
    const attrs = leaf ? leafAttrBits(pte) : pte;
    const last = state.ranges[state.ranges.length - 1];
    if (
      last !== undefined &&
      last.kind === kind &&
      last.level === level &&
      last.attrs === attrs &&
      last.end === start &&
      (!leaf || last.pa + (last.end - last.start) === pa)
    ) {
      last.end = start + size;
      last.entries++;
    } else {
      state.ranges.push({ start, end: start + size, level, kind, entries: 1, pa, attrs });
    }
    return Errno.OK;
  }
}

const dumpWalker: Walker = { visitor: new DumpVisitor(), arg: null, flags: WalkFlag.LEAF };

/**
 * The coalesced ranges of [addr, addr+size) (default: the whole IPA space), in IPA order.
 * Exclusive. Throws RangeError when the range is outside the IPA space or the table is destroyed.
 */
export function collectRanges(pgt: Stage2, addr = 0, size = pgt.geo.ipaSize): DumpRange[] {
  const state = new DumpState();
  state.granule = pgt.geo.granule;
  state.blockLevels = archBlockLevels(pgt.geo.granule);
  dumpWalker.arg = state;
  const ret = walk(pgt, addr, size, dumpWalker);
  dumpWalker.arg = null;
  if (ret === Errno.RANGE) {
    throw new RangeError(
      `Cannot dump range 0x${addr.toString(16)}+0x${size.toString(16)}: outside the IPA space`,
    );
  }
  if (ret !== Errno.OK) throw new RangeError("Cannot dump the table: it has been destroyed");
  return state.ranges;
}

function addr64(n: number): string {
  return `0x${n.toString(16).padStart(16, "0")}`;
}

/** What follows "L<level> <kind>" on a listing line. */
function rangeDetail(r: DumpRange, granule: Granule): string {
  if (r.kind === "block" || r.kind === "page") {
    const d = decodeDescriptor(r.attrs | PTE_VALID | (r.kind === "page" ? PTE_TYPE : 0n), r.level, granule);
    const leaf = d.leaf!;
    return `PA ${hex(r.pa).padEnd(14)}  ${permString(leaf)}  ${attrWords(leaf).join(" ")}`;
  }
  if (r.kind === "owner") return `owner=${pteOwner(r.attrs)}`;
  if (r.kind === "locked") return `descriptor ${hex(r.attrs)} (left locked)`;
  return `descriptor ${hex(r.attrs)}`;
}

/** One line per range, formatted as in the file comment; "(no mappings)" for an empty table. */
export function formatRanges(ranges: readonly DumpRange[], granule: Granule): string[] {
  if (ranges.length === 0) return ["(no mappings)"];
  return ranges.map((r) => {
    const span = `${addr64(r.start)}-${addr64(r.end)}`;
    const head = `L${r.level} ${r.kind}`.padEnd(9);
    return `${span}  ${formatSize(r.end - r.start).padStart(8)}  ${head} ${rangeDetail(r, granule)}`;
  });
}

/** Plain-JSON form of a range (addresses as hex strings), as `stage2 script --json` prints it. */
export function rangeToJson(r: DumpRange, granule: Granule): Record<string, unknown> {
  const out: Record<string, unknown> = {
    start: hex(r.start),
    end: hex(r.end),
    size: r.end - r.start,
    level: r.level,
    type: r.kind,
    entries: r.entries,
  };
  if (r.kind === "block" || r.kind === "page") {
    const leaf = decodeDescriptor(r.attrs | PTE_VALID | (r.kind === "page" ? PTE_TYPE : 0n), r.level, granule)
      .leaf!;
    out.pa = hex(r.pa);
    out.prot = permString(leaf);
    out.r = leaf.read;
    out.w = leaf.write;
    out.x = !leaf.xn;
    out.memAttr = hex(leaf.memAttr);
    out.memAttrName = leaf.memAttrName;
    out.sh = leaf.shName;
    out.af = leaf.af;
    out.dbm = leaf.dbm;
    out.contiguous = leaf.contiguous;
    out.sw = leaf.sw;
  } else {
    out.descriptor = hex(r.attrs);
    out.owner = pteOwner(r.attrs);
    out.locked = pteIsLocked(r.attrs);
  }
  return out;
}
