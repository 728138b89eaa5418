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

/** A 64-bit VMSAv8-64 descriptor. Read and written with 64-bit atomics only (never torn). */
export type Pte = bigint;

// --- Common bits -------------------------------------------------------------------------------
/** Bit 0: valid. Hardware walkers ignore every other bit of an invalid descriptor. */
export const PTE_VALID = 1n << 0n;
/** Bit 1: table descriptor at levels 0-2, page descriptor at level 3. */
export const PTE_TYPE = 1n << 1n;
/** Type bits 1:0 = 0b11 at levels 0-2: a table descriptor. */
export const PTE_TYPE_TABLE = PTE_VALID | PTE_TYPE;
/** Type bits 1:0 = 0b11 at level 3: a page descriptor. */
export const PTE_TYPE_PAGE = PTE_VALID | PTE_TYPE;
/** Type bits 1:0 = 0b01 at levels 1-2: a block descriptor. */
export const PTE_TYPE_BLOCK = PTE_VALID;
/** The type bits 1:0. Read: `pte & PTE_TYPE_MASK`; compare with the PTE_TYPE_* values. */
export const PTE_TYPE_MASK = PTE_VALID | PTE_TYPE;

/** Output/next-level address bits 47:12 (the granule's low bits are cleared separately). */
export const PTE_ADDR_MASK_47_12 = ((1n << 48n) - 1n) & ~((1n << 12n) - 1n);
/** 64K granule with 52-bit PA: OA[51:48] live in descriptor bits 15:12. */
export const PTE_ADDR_64K_HI_SHIFT = 12n;
/** Bits 15:12 holding OA[51:48] with the 64K granule and 52-bit PAs. */
export const PTE_ADDR_64K_HI_MASK = 0xfn << PTE_ADDR_64K_HI_SHIFT;

// --- Stage-2 leaf attributes: lower block (bits 11:2) ------------------------------------------
/** Stage-2 MemAttr[3:0], bits 5:2: shift. */
export const S2_MEMATTR_SHIFT = 2n;
/** Stage-2 MemAttr[3:0], bits 5:2: mask. Read: `(pte & S2_MEMATTR_MASK) >> S2_MEMATTR_SHIFT`. */
export const S2_MEMATTR_MASK = 0xfn << S2_MEMATTR_SHIFT;
/** MemAttr 0b1111: Normal, outer and inner write-back cacheable. */
export const S2_MEMATTR_NORMAL = 0xfn << S2_MEMATTR_SHIFT;
/** MemAttr 0b0001: Device-nGnRE (without FEAT_S2FWB). */
export const S2_MEMATTR_DEVICE = 0x1n << S2_MEMATTR_SHIFT;
/** S2AP[0], bit 6: stage-2 read permission. */
export const S2_S2AP_R = 1n << 6n;
/** S2AP[1], bit 7: stage-2 write permission. */
export const S2_S2AP_W = 1n << 7n;
/** Shareability SH[1:0], bits 9:8: shift. */
export const S2_SH_SHIFT = 8n;
/** Shareability SH[1:0], bits 9:8: mask. */
export const S2_SH_MASK = 3n << S2_SH_SHIFT;
/** SH 0b11: inner shareable. */
export const S2_SH_IS = 3n << S2_SH_SHIFT;
/** Bit 10: access flag. Clear: the first access faults (KVM's mkold/mkyoung). */
export const S2_AF = 1n << 10n;

// --- Stage-2 leaf attributes: upper block (bits 63:50) -----------------------------------------
/** Bit 51: dirty bit modifier (hardware dirty-state management). */
export const S2_DBM = 1n << 51n;
/** Bit 52: contiguous hint. */
export const S2_CONT = 1n << 52n;
/** XN (execute-never). With FEAT_XNX, bits 54:53 are XN[1:0]; we use XN[1] = bit 54 (never). */
export const S2_XN = 1n << 54n;
/** Bit 53: XN[0] with FEAT_XNX (EL0/EL1 split of execute-never); unused here. */
export const S2_XNX = 1n << 53n;
/** Software bits 58:55 (ignored by hardware): shift. */
export const SW_SHIFT = 55n;
/** Software bits 58:55: mask. Values are `SwBits` shifted by SW_SHIFT. */
export const SW_MASK = 0xfn << SW_SHIFT;

/** Every attribute bit a stage-2 leaf may carry (everything except type and address). */
export const S2_ATTR_LO_MASK = (1n << 12n) - 1n - PTE_TYPE_MASK;
/** Upper attribute bits 63:50 of a leaf (DBM, contiguous, XN, software bits). */
export const S2_ATTR_HI_MASK = 0x3fffn << 50n;

// --- Invalid descriptors as KVM uses them -------------------------------------------------------
/** Owner id in an invalid descriptor (KVM's set_owner annotation), bits 9:2: shift. */
export const INVALID_OWNER_SHIFT = 2n;
/** Owner id in an invalid descriptor, bits 9:2: mask. Read with `pteOwner`. */
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

/** True when bit 0 (valid) is set: a hardware walker uses the descriptor. */
export function pteValid(pte: Pte): boolean {
  return (pte & PTE_VALID) !== 0n;
}

/** True when `pte` points at a next-level table (only levels above 3 hold tables). */
export function pteIsTable(pte: Pte, level: number): boolean {
  return level < 3 && (pte & PTE_TYPE_MASK) === PTE_TYPE_TABLE;
}

/**
 * Who holds a locked marker (bits 12-19 of the invalid descriptor, software-defined: no walker
 * reads an invalid entry's other bits): 1 + the vCPU whose break wrote it, 0 for a marker of
 * no vCPU (the host's, a freeze's). Lets a walker waiting for a make tell a dead owner's entry,
 * whose make never comes, from a live one's.
 */
export const LOCK_OWNER_SHIFT = 12n;
/** The locked marker's owner field: bits 12-19 (1 + vCPU id; 0 = no vCPU). */
export const LOCK_OWNER_MASK = 0xffn << LOCK_OWNER_SHIFT;

/** The locked marker a break by vCPU `vcpu` writes (-1: no vCPU). */
export function lockedMarker(vcpu: number): Pte {
  return vcpu < 0 || vcpu > 254 ? PTE_LOCKED : PTE_LOCKED | (BigInt(vcpu + 1) << LOCK_OWNER_SHIFT);
}

/** The vCPU whose break wrote locked marker `pte`, or -1 (no vCPU, or not a locked marker). */
export function lockOwner(pte: Pte): number {
  return pteIsLocked(pte) ? Number((pte & LOCK_OWNER_MASK) >> LOCK_OWNER_SHIFT) - 1 : -1;
}

/** True for the break-before-make locked marker: invalid with bit 10 set. */
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

/** A table descriptor pointing at the next-level table at `tablePa` (granule-aligned). */
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

/**
 * Thread-local scratch for pteOr: one 64-bit word and its two 32-bit halves (little-endian hosts
 * only, as everything reading the pool's `words` view assumes).
 */
const scratch64 = new BigInt64Array(1);
const scratch32 = new Int32Array(scratch64.buffer);

/**
 * `BigInt(n) | bits` with one BigInt made instead of two, for an integer 0 <= n < 2^53 and bits
 * given as their two 32-bit halves (`pteHalves`): the halves are or'ed in a scratch word, which is
 * read back once. A leaf for a granule-aligned PA below 2^48 is `pteOr(pa, attrHalves)`.
 */
export function pteOr(n: number, lo: number, hi: number): Pte {
  scratch32[0] = n | lo; // ToInt32: the exact low 32 bits of an integer below 2^53
  scratch32[1] = Math.floor(n / 2 ** 32) | hi;
  return scratch64[0] as Pte;
}

/** The two 32-bit halves [low, high] of descriptor bits `pte`, for pteOr. */
export function pteHalves(pte: Pte): [number, number] {
  return [Number(BigInt.asIntN(32, pte)), Number(BigInt.asIntN(32, pte >> 32n))];
}

/** An invalid descriptor annotated with `owner` (1-255; 0 makes an empty entry). */
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
