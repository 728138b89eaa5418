/**
 * Descriptor -> named fields, for people: `stage2 decode`, `get` in scripts, and the ptdump.
 *
 * What a 64-bit stage-2 descriptor means depends on its level and the granule:
 *
 *   bits[1:0]   level 0        levels 1-2                      level 3
 *   0b00/0b10   invalid        invalid                         invalid
 *   0b01        reserved (*)   block (if the granule allows)   reserved (hardware: translation fault)
 *   0b11        table          table                           page
 *
 *   (*) blocks exist at level 1-2 with 4K and at level 2 with 16K and 64K (ARMv8.0, 48-bit OA);
 *       other 0b01 encodings are reserved and fault. 64K level-1 blocks (4 TiB) need FEAT_LPA
 *       and 16K/4K level-0/1 blocks need FEAT_LPA2; neither is modelled.
 *
 * Invalid descriptors carry KVM's software meaning (bits 9:2 owner id, bit 10 locked marker);
 * a reserved encoding has bit 0 set, so KVM never reads it as an annotation.
 */
import {
  decodeOa,
  INVALID_OWNER_MASK,
  INVALID_OWNER_SHIFT,
  type Pte,
  PTE_LOCKED,
  PTE_TYPE_MASK,
  PTE_TYPE_TABLE,
  PTE_VALID,
  S2_AF,
  S2_CONT,
  S2_DBM,
  S2_MEMATTR_MASK,
  S2_MEMATTR_SHIFT,
  S2_S2AP_R,
  S2_S2AP_W,
  S2_SH_MASK,
  S2_SH_SHIFT,
  S2_XN,
  S2_XNX,
  SW_MASK,
  SW_SHIFT,
} from "./descriptor.js";
import type { Granule } from "./geometry.js";

/** What a descriptor is at its level. */
export type DescriptorType = "table" | "block" | "page" | "invalid";

/** A descriptor decoded field by field (decodeDescriptor()). */
export interface DecodedDescriptor {
  readonly raw: Pte;
  readonly level: number;
  readonly granule: Granule;
  readonly valid: boolean;
  readonly type: DescriptorType;
  /** A valid-looking encoding the architecture reserves (hardware faults on it). */
  readonly reserved: boolean;
  /** Why an encoding is reserved, or "" */
  readonly note: string;
  /** Next-level table address (tables only, else -1). */
  readonly nextTable: number;
  /** Output address (blocks and pages only, else -1). */
  readonly oa: number;
  /** Leaf attributes (null unless block or page). */
  readonly leaf: LeafFields | null;
  /** KVM software meaning of an invalid descriptor (bit 0 clear): bit 10, and bits 9:2. */
  readonly locked: boolean;
  readonly owner: number;
}

/** The attribute fields of a block or page descriptor. */
export interface LeafFields {
  /** MemAttr[3:0] (descriptor bits 5:2) and its name, e.g. 0xf "normal-wb". */
  readonly memAttr: number;
  readonly memAttrName: string;
  /** S2AP bit 6 (read) and bit 7 (write). */
  readonly read: boolean;
  readonly write: boolean;
  /** SH[1:0] (bits 9:8) and its name: "NS", "reserved", "OS", "IS". */
  readonly sh: number;
  readonly shName: string;
  readonly af: boolean;
  /** XN[1] (bit 54): execute-never; XN[0] (bit 53) only matters with FEAT_XNX. */
  readonly xn: boolean;
  readonly xnx: boolean;
  readonly dbm: boolean;
  readonly contiguous: boolean;
  /** Software bits 58:55 as a 4-bit value. */
  readonly sw: number;
}

/** Levels that may hold block descriptors for a granule (ARMv8.0, no FEAT_LPA/LPA2). */
export function archBlockLevels(granule: Granule): readonly number[] {
  return granule === 4096 ? [1, 2] : [2];
}

const DEVICE_NAMES = ["device-nGnRnE", "device-nGnRE", "device-nGRE", "device-GRE"];
const CACHE_NAMES = ["", "nc", "wt", "wb"];

/**
 * Name of a stage-2 MemAttr[3:0] value without FEAT_S2FWB: [3:2] = 0 is Device (type in [1:0]);
 * otherwise [3:2] is the outer and [1:0] the inner cacheability (1 NC, 2 WT, 3 WB; inner 0 is
 * reserved).
 */
export function memAttrName(memAttr: number): string {
  const outer = (memAttr >> 2) & 3;
  const inner = memAttr & 3;
  if (outer === 0) return DEVICE_NAMES[inner] as string;
  if (inner === 0) return `reserved(0x${memAttr.toString(16)})`;
  if (outer === inner) return `normal-${CACHE_NAMES[outer]}`;
  return `normal-o${CACHE_NAMES[outer]}-i${CACHE_NAMES[inner]}`;
}

const SH_NAMES = ["NS", "reserved", "OS", "IS"];

/** Shareability SH[1:0]: non-, (reserved), outer, inner shareable. */
export function shareabilityName(sh: number): string {
  return SH_NAMES[sh & 3] as string;
}

function decodeLeaf(pte: Pte): LeafFields {
  const memAttr = Number((pte & S2_MEMATTR_MASK) >> S2_MEMATTR_SHIFT);
  const sh = Number((pte & S2_SH_MASK) >> S2_SH_SHIFT);
  return {
    memAttr,
    memAttrName: memAttrName(memAttr),
    read: (pte & S2_S2AP_R) !== 0n,
    write: (pte & S2_S2AP_W) !== 0n,
    sh,
    shName: shareabilityName(sh),
    af: (pte & S2_AF) !== 0n,
    xn: (pte & S2_XN) !== 0n,
    xnx: (pte & S2_XNX) !== 0n,
    dbm: (pte & S2_DBM) !== 0n,
    contiguous: (pte & S2_CONT) !== 0n,
    sw: Number((pte & SW_MASK) >> SW_SHIFT),
  };
}

function reservedNote(level: number, granule: Granule): string {
  if (level === 3)
    return "block encoding (0b01) at level 3 is reserved: hardware reports a translation fault";
  const gran = `${granule / 1024}K`;
  return `block descriptors are not allowed at level ${level} with the ${gran} granule: hardware reports a translation fault`;
}

/**
 * The first level a `granule` table can have: 0 for 4K and 16K; 1 for 64K, whose level 1 already
 * resolves 48 (52 with FEAT_LPA) bits, so a 64K table has no level 0.
 */
export function firstLevel(granule: Granule): number {
  return granule === 65536 ? 1 : 0;
}

/**
 * Decodes `pte` (any 64-bit value; negative BigInts are read as two's complement) as a stage-2
 * descriptor found at `level` of a `granule` table: 0..3, or 1..3 for 64K (see firstLevel).
 * Throws RangeError for a level the granule does not have.
 */
export function decodeDescriptor(pte: Pte, level: number, granule: Granule): DecodedDescriptor {
  const first = firstLevel(granule);
  if (!Number.isInteger(level) || level < first || level > 3) {
    throw new RangeError(
      `Cannot decode at level ${level}: ${granule / 1024}K-granule stage-2 levels are ${first} to 3`,
    );
  }
  const raw = BigInt.asUintN(64, pte);
  const base = { raw, level, granule, nextTable: -1, oa: -1, leaf: null, locked: false, owner: 0 };
  if ((raw & PTE_VALID) === 0n) {
    return {
      ...base,
      valid: false,
      type: "invalid",
      reserved: false,
      note: "",
      locked: (raw & PTE_LOCKED) !== 0n,
      owner: Number((raw & INVALID_OWNER_MASK) >> INVALID_OWNER_SHIFT),
    };
  }
  const bit1 = (raw & PTE_TYPE_MASK) === PTE_TYPE_TABLE;
  if (bit1 && level < 3) {
    return {
      ...base,
      valid: true,
      type: "table",
      reserved: false,
      note: "",
      nextTable: decodeOa(raw, granule),
    };
  }
  if (!bit1 && !archBlockLevels(granule).includes(level)) {
    return { ...base, valid: false, type: "invalid", reserved: true, note: reservedNote(level, granule) };
  }
  const type = bit1 ? "page" : "block";
  const granuleOa = decodeOa(raw, granule);
  // A block's output address is aligned to the block size: the address bits below it are RES0.
  const blockSize = 2 ** ((Math.log2(granule) - 3) * (4 - level) + 3);
  const oa = type === "block" ? granuleOa - (granuleOa % blockSize) : granuleOa;
  return {
    ...base,
    valid: true,
    type,
    reserved: false,
    note:
      oa === granuleOa
        ? ""
        : `address bits below the ${blockSize >= 2 ** 30 ? `${blockSize / 2 ** 30}G` : `${blockSize / 2 ** 20}M`} block size are set (RES0)`,
    oa,
    leaf: decodeLeaf(raw),
  };
}

/** "RW-"-style permissions of a leaf: R, W, X (X when not execute-never). */
export function permString(leaf: LeafFields): string {
  return `${leaf.read ? "R" : "-"}${leaf.write ? "W" : "-"}${leaf.xn ? "-" : "X"}`;
}

/** Attribute words of a leaf after its permissions, e.g. "normal-wb IS AF". */
export function attrWords(leaf: LeafFields): string[] {
  const words = [leaf.memAttrName, leaf.shName, leaf.af ? "AF" : "!AF"];
  if (leaf.xnx) words.push("XNX");
  if (leaf.dbm) words.push("DBM");
  if (leaf.contiguous) words.push("CONT");
  if (leaf.sw !== 0) words.push(`SW=0x${leaf.sw.toString(16)}`);
  return words;
}

/** "4K", "2M", "1G", "1536K": an exact binary size, for listings. */
export function formatSize(bytes: number): string {
  const units: [number, string][] = [
    [2 ** 50, "P"],
    [2 ** 40, "T"],
    [2 ** 30, "G"],
    [2 ** 20, "M"],
    [2 ** 10, "K"],
  ];
  for (const [unit, suffix] of units)
    if (bytes >= unit && bytes % unit === 0) return `${bytes / unit}${suffix}`;
  return `${bytes}`;
}

/** `0x` followed by lower-case hex digits. */
export function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

/** A descriptor as `0x` and 16 hex digits. */
export function hex64(n: bigint): string {
  return `0x${BigInt.asUintN(64, n).toString(16).padStart(16, "0")}`;
}

/** One line: "L2 block PA 0x40000000 RW- normal-wb IS AF", "L3 invalid owner=5"... */
export function summarizeDescriptor(d: DecodedDescriptor): string {
  const head = `L${d.level} ${d.reserved ? "reserved" : d.type}`;
  if (d.type === "table") return `${head} next ${hex(d.nextTable)}`;
  if (d.leaf !== null) return `${head} PA ${hex(d.oa)} ${permString(d.leaf)} ${attrWords(d.leaf).join(" ")}`;
  if (d.reserved) return `${head} (${d.note})`;
  if (d.locked) return `${head} locked${d.owner ? ` owner=${d.owner}` : ""}`;
  if (d.owner !== 0) return `${head} owner=${d.owner}`;
  return d.raw === 0n ? `${head} (empty)` : `${head} (software bits ${hex(d.raw)})`;
}

/** Plain-JSON form (addresses as hex strings), the shape `stage2 decode --json` prints. */
export function decodedToJson(d: DecodedDescriptor, levelAssumed = false): Record<string, unknown> {
  const out: Record<string, unknown> = {
    descriptor: hex64(d.raw),
    level: d.level,
    levelAssumed,
    granule: d.granule,
    valid: d.valid,
    type: d.type,
    reserved: d.reserved,
  };
  if (d.reserved) out.note = d.note;
  if (d.type === "table") {
    out.oa = hex(d.nextTable);
    out.nextTable = hex(d.nextTable);
  }
  if (d.note !== "" && !d.reserved) out.note = d.note;
  if (d.leaf !== null) {
    const l = d.leaf;
    out.oa = hex(d.oa);
    out.memAttr = hex(l.memAttr);
    out.memAttrName = l.memAttrName;
    out.s2ap = { r: l.read, w: l.write, raw: (l.read ? 1 : 0) | (l.write ? 2 : 0) };
    out.sh = l.shName;
    out.shRaw = l.sh;
    out.af = l.af;
    out.xn = l.xn;
    out.xnx = l.xnx;
    out.dbm = l.dbm;
    out.contiguous = l.contiguous;
    out.sw = l.sw;
  }
  if (!d.valid) {
    out.locked = d.locked;
    out.owner = d.owner;
  }
  return out;
}
