/**
 * Stage-2 translation geometry (VMSAv8-64) for one granule and IPA size, computed the way KVM/arm64
 * does: the number of levels, the start level, how many tables are concatenated at the start level,
 * per-level shifts, which levels may hold blocks, and the VTCR_EL2 value.
 *
 * Facts used (ARM ARM D8; KVM's kvm_pgtable.h / kvm_arm.h):
 * - A table is one granule of 8-byte descriptors, so each level resolves PAGE_SHIFT-3 bits and the
 *   shift of level L is (PAGE_SHIFT-3)*(4-L)+3.
 * - KVM uses levels = (iaBits-8)/(PAGE_SHIFT-3), at least 2: the "-8" leaves 4 bits that the start
 *   level absorbs by concatenating up to 16 tables instead of adding a level.
 * - Blocks: 4K at levels 1 and 2, 16K and 64K at level 2, never above the start level.
 */
export type Granule = 4096 | 16384 | 65536;
/** The three translation granules, in bytes. */
export const GRANULES: readonly Granule[] = [4096, 16384, 65536];
/** PARange encodings of VTCR_EL2.PS, indexed by the 3-bit field value. */
export const PA_BITS_ENCODING: readonly number[] = [32, 36, 40, 42, 44, 48, 52];
/** The last lookup level (pages live at level 3). */
export const MAX_LEVEL = 3;

// VTCR_EL2 fields.
/** VTCR_EL2.T0SZ, bits 5:0: 64 minus the IPA size in bits. */
export const VTCR_T0SZ_MASK = 0x3f;
/** VTCR_EL2.SL0, bits 7:6: the start level, encoded per granule. */
export const VTCR_SL0_SHIFT = 6;
/** VTCR_EL2.IRGN0, bits 9:8: inner cacheability of table walks. */
export const VTCR_IRGN0_SHIFT = 8;
/** VTCR_EL2.ORGN0, bits 11:10: outer cacheability of table walks. */
export const VTCR_ORGN0_SHIFT = 10;
/** VTCR_EL2.SH0, bits 13:12: shareability of table walks. */
export const VTCR_SH0_SHIFT = 12;
/** VTCR_EL2.TG0, bits 15:14: the granule (see VTCR_TG0). */
export const VTCR_TG0_SHIFT = 14;
/** VTCR_EL2.PS, bits 18:16: the output (physical) address size. */
export const VTCR_PS_SHIFT = 16;
/** VTCR_EL2 bit 31: RES1. */
export const VTCR_RES1 = 1 << 31;
/** IRGN0/ORGN0 0b01: normal memory, write-back read-allocate write-allocate cacheable. */
export const VTCR_RGN_WBWA = 1;
/** SH0 value 0b11: inner shareable. */
export const VTCR_SH_INNER = 3;
/** TG0 encodings: note 64K is 1 and 16K is 2. */
export const VTCR_TG0: Readonly<Record<Granule, number>> = { 4096: 0, 65536: 1, 16384: 2 };
/** SL0 base: sl0 = base - startLevel (4K: 2, 16K and 64K: 3). */
const SL0_BASE: Readonly<Record<Granule, number>> = { 4096: 2, 16384: 3, 65536: 3 };

/** Everything KVM derives from (granule, IPA bits, PA bits); see computeGeometry(). */
export interface Geometry {
  readonly granule: Granule;
  readonly pageShift: number;
  readonly iaBits: number;
  readonly paBits: number;
  readonly levels: number;
  readonly startLevel: number;
  /** Tables concatenated at the start level (the "PGD" pages), 1..16. */
  readonly pgdPages: number;
  /** Descriptors per table page. */
  readonly entriesPerPage: number;
  /** shift[L] for L = 0..3 (levels above the start level are still defined arithmetically). */
  readonly shifts: readonly number[];
  /** Levels that may hold block descriptors, largest first. */
  readonly blockLevels: readonly number[];
  /** Bytes mapped by a block at each block level, largest first. */
  readonly blockSizes: readonly number[];
  /** Size of the IPA space in bytes (2^iaBits). */
  readonly ipaSize: number;
  /** VTCR_EL2 as an unsigned 32-bit value (bits 63:32 are zero for this configuration). */
  readonly vtcr: number;
}

/** log2 of the bytes one entry at `level` maps: (pageShift - 3) * (4 - level) + 3 (ARM's ARM). */
export function levelShift(pageShift: number, level: number): number {
  return (pageShift - 3) * (4 - level) + 3;
}

/** log2 of the granule: 12, 14 or 16. */
export function granuleShift(granule: Granule): number {
  return granule === 4096 ? 12 : granule === 16384 ? 14 : 16;
}

/** Parses "4k", "16k", "64k", "4096"... into a Granule, or undefined. */
export function parseGranule(text: string): Granule | undefined {
  const t = text.trim().toLowerCase();
  const map: Record<string, Granule> = {
    "4k": 4096,
    "16k": 16384,
    "64k": 65536,
    "4096": 4096,
    "16384": 16384,
    "65536": 65536,
  };
  return map[t];
}

/** Highest IPA size a granule supports here (52 needs FEAT_LPA with 64K; LPA2 is not modelled). */
export function maxIaBits(granule: Granule): number {
  return granule === 65536 ? 52 : 48;
}

/**
 * Computes the geometry, or throws RangeError naming the impossible combination.
 * `paBits` (default 48) sets VTCR_EL2.PS and must be a PARange value not smaller than `iaBits`.
 */
export function computeGeometry(granule: Granule, iaBits: number, paBits = 48): Geometry {
  if (!GRANULES.includes(granule)) throw new RangeError(`Unsupported granule ${granule}: use 4K, 16K or 64K`);
  if (!Number.isInteger(iaBits) || iaBits < 32 || iaBits > maxIaBits(granule)) {
    throw new RangeError(
      `Unsupported IPA size ${iaBits} bits with the ${granule / 1024}K granule: use 32 to ${maxIaBits(granule)}`,
    );
  }
  const ps = PA_BITS_ENCODING.indexOf(paBits);
  if (ps < 0)
    throw new RangeError(`Unsupported PA size ${paBits} bits: use one of ${PA_BITS_ENCODING.join(", ")}`);
  if (paBits > 48 && granule !== 65536) {
    // 52-bit output addresses with 4K and 16K granules need FEAT_LPA2's descriptor format, which
    // is not modelled: the classic format holds OA bits 47:12 only.
    throw new RangeError(
      `Unsupported PA size ${paBits} bits with the ${granule / 1024}K granule: 52-bit output addresses need the 64K granule (FEAT_LPA2 is not modelled)`,
    );
  }
  if (iaBits > paBits) {
    throw new RangeError(`IPA size ${iaBits} bits exceeds the ${paBits}-bit physical address size`);
  }
  const pageShift = granuleShift(granule);
  const levels = Math.max(2, Math.floor((iaBits - 8) / (pageShift - 3)));
  const startLevel = 4 - levels;
  const shifts = [0, 1, 2, 3].map((l) => levelShift(pageShift, l));
  // Entries needed at the start level, in units of one table page (a table above level 0 has
  // shift(start-1) = shift(start) + PAGE_SHIFT - 3).
  const pgdPages = Math.floor((2 ** iaBits - 1) / 2 ** levelShift(pageShift, startLevel - 1)) + 1;
  if (pgdPages > 16)
    throw new RangeError(`IPA size ${iaBits} would need ${pgdPages} concatenated tables (max 16)`);
  const minBlockLevel = granule === 4096 ? 1 : 2;
  const blockLevels: number[] = [];
  for (let l = Math.max(minBlockLevel, startLevel); l < MAX_LEVEL; l++) blockLevels.push(l);
  const blockSizes = blockLevels.map((l) => 2 ** (shifts[l] as number));
  const vtcr =
    ((64 - iaBits) & VTCR_T0SZ_MASK) |
    ((SL0_BASE[granule] - startLevel) << VTCR_SL0_SHIFT) |
    (VTCR_RGN_WBWA << VTCR_IRGN0_SHIFT) |
    (VTCR_RGN_WBWA << VTCR_ORGN0_SHIFT) |
    (VTCR_SH_INNER << VTCR_SH0_SHIFT) |
    (VTCR_TG0[granule] << VTCR_TG0_SHIFT) |
    (ps << VTCR_PS_SHIFT);
  return {
    granule,
    pageShift,
    iaBits,
    paBits,
    levels,
    startLevel,
    pgdPages,
    entriesPerPage: granule / 8,
    shifts,
    blockLevels,
    blockSizes,
    ipaSize: 2 ** iaBits,
    vtcr: (vtcr | VTCR_RES1) >>> 0,
  };
}

/** Bytes mapped by one entry at `level`. */
export function levelSize(geo: Geometry, level: number): number {
  return 2 ** (geo.shifts[level] as number);
}

/** Whether a leaf may sit at `level`: a page at level 3, or a block where the granule allows one. */
export function blockAllowedAt(geo: Geometry, level: number): boolean {
  return level === MAX_LEVEL || geo.blockLevels.includes(level);
}
