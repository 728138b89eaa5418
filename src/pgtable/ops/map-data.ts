/** Arguments of the map walkers (map, set_owner, create_unlinked), and the leaf-fit rule. */
import {
  leafAttrs,
  PROT_MASK,
  Prot,
  type Pte,
  PTE_TYPE_BLOCK,
  PTE_TYPE_PAGE,
  pteHalves,
  S2_MEMATTR_MASK,
  S2_MEMATTR_NORMAL,
  S2_XN,
} from "../../arch/descriptor.js";
import type { MemCache } from "../../mem/mod.js";
import type { Stage2 } from "../stage2.js";
import type { VisitCtx } from "../walk.js";

/** KVM_PHYS_INVALID: the "phys" of an owner annotation. */
export const PHYS_INVALID = -1;

export class MapData {
  phys = 0;
  attr: Pte = 0n;
  owner = 0;
  memcache: MemCache | null = null;
  /** Map only pages (dirty logging): no blocks above the last level. */
  forcePte = false;
  /**
   * End of the last block this walk split: leaves inside it may change permissions (the caller
   * asked for them explicitly, and the split copied the block's old ones).
   */
  splitEnd = 0;
  /** Derived from attr once per map call: does the new memory need CMOs before it is mapped. */
  cacheable = false;
  executable = false;
  /** attr with the page and the block type bits (looked up per prot: no BigInt made per call). */
  pageBits: Pte = 0n;
  blockBits: Pte = 0n;
  /** pageBits and blockBits as 32-bit halves (pteOr). */
  pageLo = 0;
  pageHi = 0;
  blockLo = 0;
  blockHi = 0;
}

/**
 * `x % size === 0` for a power-of-two `size` without the floating-point remainder (a runtime call
 * in V8 once x leaves the int32 range), and for most sizes without a division either: exact for
 * integers below 2^53, false for fractions, NaN and infinities, as the remainder is.
 */
export function aligned(x: number, size: number): boolean {
  // Sizes up to 2^30 (pages, most blocks): a mask of the exact low 32 bits (ToInt32) of an
  // integral, finite x, with no division.
  if (size <= 2 ** 30 && Math.floor(x) === x && x - x === 0) return ((x | 0) & (size - 1)) === 0;
  return x - Math.floor(x / size) * size === 0;
}

export function physFor(ctx: VisitCtx, data: MapData): number {
  return data.phys === PHYS_INVALID ? PHYS_INVALID : data.phys + (ctx.addr - ctx.start);
}

/** Linux's stage2_leaf_mapping_allowed: level supports a leaf, range and PA aligned and covering. */
export function leafMappingAllowed(pgt: Stage2, ctx: VisitCtx, data: MapData): boolean {
  const level = ctx.level;
  if (data.forcePte && level < 3) return false;
  if (!pgt.leafAllowed[level]) return false;
  const size = pgt.levelSizes[level] as number;
  if (size > ctx.end - ctx.addr) return false;
  const phys = physFor(ctx, data);
  if (phys !== PHYS_INVALID && !aligned(phys, size)) return false;
  return aligned(ctx.addr, size);
}

/** Encoded attributes of every valid Prot value, computed once (-1: invalid prot). */
const ATTRS: (Pte | -1)[] = [];
/** Per prot: the attributes with the page / block type bits, and whether CMOs are needed. */
const PAGE_BITS: Pte[] = [];
const BLOCK_BITS: Pte[] = [];
const PAGE_HALVES: [number, number][] = [];
const BLOCK_HALVES: [number, number][] = [];
const CACHEABLE: boolean[] = [];
const EXECUTABLE: boolean[] = [];
for (let prot = 0; prot <= PROT_MASK; prot++) {
  const bad = (prot & Prot.RWX) === 0 || (prot & Prot.DEVICE && prot & Prot.X) !== 0;
  const attr = bad ? 0n : leafAttrs(prot);
  ATTRS.push(bad ? -1 : attr);
  PAGE_BITS.push(attr | PTE_TYPE_PAGE);
  BLOCK_BITS.push(attr | PTE_TYPE_BLOCK);
  PAGE_HALVES.push(pteHalves(attr | PTE_TYPE_PAGE));
  BLOCK_HALVES.push(pteHalves(attr | PTE_TYPE_BLOCK));
  CACHEABLE.push((attr & S2_MEMATTR_MASK) === S2_MEMATTR_NORMAL);
  EXECUTABLE.push((attr & S2_XN) === 0n);
}

/** Fills the per-prot fields of `data` (prot already checked by protToAttrs). */
export function setProt(data: MapData, prot: number): void {
  data.attr = ATTRS[prot] as Pte;
  data.pageBits = PAGE_BITS[prot] as Pte;
  data.blockBits = BLOCK_BITS[prot] as Pte;
  const page = PAGE_HALVES[prot] as [number, number];
  const block = BLOCK_HALVES[prot] as [number, number];
  data.pageLo = page[0];
  data.pageHi = page[1];
  data.blockLo = block[0];
  data.blockHi = block[1];
  data.cacheable = CACHEABLE[prot] as boolean;
  data.executable = EXECUTABLE[prot] as boolean;
}

/**
 * Checks and encodes `prot`, or returns -1 when it holds unknown bits, grants nothing usable, or
 * asks for executable device memory (never executable at stage 2).
 */
export function protToAttrs(prot: number): Pte | -1 {
  if ((prot & ~PROT_MASK) !== 0) return -1;
  return ATTRS[prot] as Pte | -1;
}
