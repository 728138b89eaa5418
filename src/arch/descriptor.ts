/**
 * VMSAv8-64 stage-2 descriptors: bit positions, encoders and decoders.
 *
 * A descriptor is one 64-bit word, held as a BigInt and read/written with a single 64-bit atomic
 * operation (BigInt64Array + Atomics), because hardware walkers read it without locks and a value
 * split over two 32-bit words could be torn.
 *
 *   63      59 58  55 54 53 52 51 50    48 47                 PAGE_SHIFT      11 10 9 8 7 6 5  2 1 0
 *  +--------+------+--+--+--+--+---------+------------------------+----------+--+---+---+-----+-+-+
 *  | ignored|  SW  |XN|  |CT|DB|         |    output address      | (64K:    |AF|SH |S2AP|MemAt|T|V|
 *  |        | bits |  |  |  |M |         |    [47:PAGE_SHIFT]     | OA[51:48]|  |   |    | tr  | | |
 *  +--------+------+--+--+--+--+---------+------------------------+----------+--+---+---+-----+-+-+
 *   V (bit 0) valid; T (bit 1) table (levels < 3) or page (level 3); 0 at levels 1-2 means block.
 *
 * Invalid descriptors (bit 0 clear) are ignored by hardware, so KVM gives them meaning:
 *   bits 9:2  owner id annotation (stage-2 ownership, pKVM);  bit 10  LOCKED by a walker doing
 *   break-before-make. A walker that meets the locked marker backs off and retries.
 */
import type { Granule } from "./geometry.js";

export type Pte = bigint;

// --- Common bits -------------------------------------------------------------------------------
export const PTE_VALID = 1n << 0n;
/** Bit 1: table descriptor at levels 0-2, page descriptor at level 3. */
export const PTE_TYPE = 1n << 1n;
export const PTE_TYPE_TABLE = PTE_VALID | PTE_TYPE;
export const PTE_TYPE_PAGE = PTE_VALID | PTE_TYPE;
export const PTE_TYPE_BLOCK = PTE_VALID;
export const PTE_TYPE_MASK = PTE_VALID | PTE_TYPE;

/** Output/next-level address bits 47:12 (the granule's low bits are cleared separately). */
export const PTE_ADDR_MASK_47_12 = ((1n << 48n) - 1n) & ~((1n << 12n) - 1n);
/** 64K granule with 52-bit PA: OA[51:48] live in descriptor bits 15:12. */
export const PTE_ADDR_64K_HI_SHIFT = 12n;
export const PTE_ADDR_64K_HI_MASK = 0xfn << PTE_ADDR_64K_HI_SHIFT;

// --- Stage-2 leaf attributes: lower block (bits 11:2) ------------------------------------------
export const S2_MEMATTR_SHIFT = 2n;
export const S2_MEMATTR_MASK = 0xfn << S2_MEMATTR_SHIFT;
/** MemAttr 0b1111: Normal, outer and inner write-back cacheable. */
export const S2_MEMATTR_NORMAL = 0xfn << S2_MEMATTR_SHIFT;
/** MemAttr 0b0001: Device-nGnRE (without FEAT_S2FWB). */
export const S2_MEMATTR_DEVICE = 0x1n << S2_MEMATTR_SHIFT;
export const S2_S2AP_R = 1n << 6n;
export const S2_S2AP_W = 1n << 7n;
export const S2_SH_SHIFT = 8n;
export const S2_SH_MASK = 3n << S2_SH_SHIFT;
/** SH 0b11: inner shareable. */
export const S2_SH_IS = 3n << S2_SH_SHIFT;
export const S2_AF = 1n << 10n;

// --- Stage-2 leaf attributes: upper block (bits 63:50) -----------------------------------------
export const S2_DBM = 1n << 51n;
export const S2_CONT = 1n << 52n;
/** XN (execute-never). With FEAT_XNX, bits 54:53 are XN[1:0]; we use XN[1] = bit 54 (never). */
export const S2_XN = 1n << 54n;
export const S2_XNX = 1n << 53n;
export const SW_SHIFT = 55n;
export const SW_MASK = 0xfn << SW_SHIFT;

/** Every attribute bit a stage-2 leaf may carry (everything except type and address). */
export const S2_ATTR_LO_MASK = (1n << 12n) - 1n - PTE_TYPE_MASK;
export const S2_ATTR_HI_MASK = 0x3fffn << 50n;

// --- Invalid descriptors as KVM uses them -------------------------------------------------------
export const INVALID_OWNER_SHIFT = 2n;
export const INVALID_OWNER_MASK = 0xffn << INVALID_OWNER_SHIFT;
/** The locked marker: invalid, bit 10 set. Written by break, replaced by make. */
export const PTE_LOCKED = 1n << 10n;

/** Access permissions a caller asks for (KVM_PGTABLE_PROT_*). */
export const enum Prot {
  NONE = 0,
  R = 1,
  W = 2,
  X = 4,
  DEVICE = 8,
  RW = 3,
  RWX = 7,
}
/** Every valid Prot bit. */
export const PROT_MASK = 0xf;

/** Software bits 58:55 (KVM_PGTABLE_PROT_SW0..3), passed through by map. */
export const enum SwBits {
  SW0 = 1,
  SW1 = 2,
  SW2 = 4,
  SW3 = 8,
}

export function pteValid(pte: Pte): boolean {
  return (pte & PTE_VALID) !== 0n;
}

/** True when `pte` points at a next-level table (only levels above 3 hold tables). */
export function pteIsTable(pte: Pte, level: number): boolean {
  return level < 3 && (pte & PTE_TYPE_MASK) === PTE_TYPE_TABLE;
}

export function pteIsLocked(pte: Pte): boolean {
  return (pte & PTE_VALID) === 0n && (pte & PTE_LOCKED) !== 0n;
}

/** Owner annotation of an invalid descriptor (0 = none). */
export function pteOwner(pte: Pte): number {
  return Number((pte & INVALID_OWNER_MASK) >> INVALID_OWNER_SHIFT);
}

/**
 * Whether a table page's refcount counts this entry: any valid entry, or an invalid one carrying
 * an owner annotation. The locked marker is not counted: break drops the old entry's reference
 * and make takes the new one.
 */
export function pteIsCounted(pte: Pte): boolean {
  return (pte & PTE_VALID) !== 0n || (pte & INVALID_OWNER_MASK) !== 0n;
}

/** Encodes output address `pa` (granule aligned) for `granule`, including OA[51:48] for 64K. */
export function encodeOa(pa: number, granule: Granule): Pte {
  const v = BigInt(pa);
  if (granule === 65536 && pa >= 2 ** 48) {
    return (v & PTE_ADDR_MASK_47_12) | (((v >> 48n) & 0xfn) << PTE_ADDR_64K_HI_SHIFT);
  }
  return v & PTE_ADDR_MASK_47_12;
}

/** Decodes the output (or next-table) address of a valid descriptor for `granule`. */
export function decodeOa(pte: Pte, granule: Granule): number {
  if (granule === 65536) {
    const lo = pte & PTE_ADDR_MASK_47_12 & ~0xffffn;
    const hi = (pte & PTE_ADDR_64K_HI_MASK) >> PTE_ADDR_64K_HI_SHIFT;
    return Number(lo | (hi << 48n));
  }
  const mask = granule === 4096 ? PTE_ADDR_MASK_47_12 : PTE_ADDR_MASK_47_12 & ~0x3fffn;
  return Number(pte & mask);
}

export function makeTablePte(tablePa: number, granule: Granule): Pte {
  return encodeOa(tablePa, granule) | PTE_TYPE_TABLE;
}

/** Leaf attributes for `prot` (KVM's stage2_set_prot_attr): MemAttr, S2AP, XN, SH=IS, AF set. */
export function leafAttrs(prot: number, sw = 0): Pte {
  let attr = prot & Prot.DEVICE ? S2_MEMATTR_DEVICE : S2_MEMATTR_NORMAL;
  if (prot & Prot.R) attr |= S2_S2AP_R;
  if (prot & Prot.W) attr |= S2_S2AP_W;
  if (!(prot & Prot.X)) attr |= S2_XN;
  attr |= S2_SH_IS | S2_AF;
  return attr | (BigInt(sw & 0xf) << SW_SHIFT);
}

/** A block (levels 1-2) or page (level 3) descriptor for `pa` with attributes `attrs`. */
export function makeLeafPte(pa: number, attrs: Pte, level: number, granule: Granule): Pte {
  const type = level === 3 ? PTE_TYPE_PAGE : PTE_TYPE_BLOCK;
  return encodeOa(pa, granule) | attrs | type;
}

export function makeOwnerPte(owner: number): Pte {
  return (BigInt(owner & 0xff) << INVALID_OWNER_SHIFT) & INVALID_OWNER_MASK;
}

/** The Prot a valid leaf grants. */
export function leafProt(pte: Pte): number {
  let prot = 0;
  if (pte & S2_S2AP_R) prot |= Prot.R;
  if (pte & S2_S2AP_W) prot |= Prot.W;
  if (!(pte & S2_XN)) prot |= Prot.X;
  if ((pte & S2_MEMATTR_MASK) === S2_MEMATTR_DEVICE) prot |= Prot.DEVICE;
  return prot;
}

/** Attribute bits of a leaf, without type and address. */
export function leafAttrBits(pte: Pte): Pte {
  return pte & (S2_ATTR_LO_MASK | S2_ATTR_HI_MASK);
}
