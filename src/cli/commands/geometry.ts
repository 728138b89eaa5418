/**
 * `stage2 geometry`: the translation geometry of one granule and IPA size, and its VTCR_EL2.
 */
import {
  computeGeometry,
  type Geometry,
  type Granule,
  VTCR_ORGN0_SHIFT,
  VTCR_PS_SHIFT,
  VTCR_SH0_SHIFT,
  VTCR_SL0_SHIFT,
  VTCR_T0SZ_MASK,
  VTCR_TG0_SHIFT,
  VTCR_IRGN0_SHIFT,
} from "../../arch/geometry.js";
import { formatSize } from "../../arch/decode.js";
import { type CliIo, type Command, UsageError } from "../command.js";
import { parseFlags, parseNumber, quote } from "../parse.js";

const USAGE = `Usage: stage2 geometry [--granule 4k|16k|64k] [--ia-bits N] [--pa-bits N] [--json]

Prints the stage-2 translation geometry KVM/arm64 uses for a granule and IPA size: number of
levels, start level, concatenated entry-level pages, block sizes, and the VTCR_EL2 value
(T0SZ, SL0, IRGN0 = ORGN0 = write-back write-allocate, SH0 = inner shareable, TG0, PS, RES1 bit 31;
no optional feature bits such as VS, HA or HD).

Options:
  --granule G   translation granule: 4k, 16k or 64k (default 4k)
  --ia-bits N   IPA size in bits, 32 up to 48 (52 with 64k) (default 40)
  --pa-bits N   physical address size for VTCR_EL2.PS: 32, 36, 40, 42, 44, 48 or 52 (default 48)
  --json        one JSON object: granule, iaBits, paBits, levels, startLevel, pgdPages,
                entriesPerPage, blockSizes (bytes, largest first), blockLevels, levelShifts, vtcr
                (hex string) and vtcrFields`;

/** Granule names a user may type (a Map: "constructor" or "toString" select nothing). */
const GRANULES: ReadonlyMap<string, Granule> = new Map<string, Granule>([
  ["4k", 4096],
  ["16k", 16384],
  ["64k", 65536],
  ["4096", 4096],
  ["16384", 16384],
  ["65536", 65536],
]);

/** Parses --granule, or throws a UsageError naming the flag. */
export function granuleFlag(text: string | undefined): Granule {
  if (text === undefined) return 4096;
  const g = GRANULES.get(text.trim().toLowerCase());
  if (g === undefined) throw new UsageError(`--granule: ${quote(text)} is not one of 4k, 16k, 64k`);
  return g;
}

/** Parses an integer bit-count flag such as --ia-bits. */
export function bitsFlag(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text.trim()))
    throw new UsageError(`${flag}: ${quote(text)} is not a whole number of bits`);
  return parseNumber(text, flag);
}

/** computeGeometry with its RangeError turned into a one-line UsageError. */
export function geometryFromFlags(granule: Granule, iaBits: number, paBits: number): Geometry {
  try {
    return computeGeometry(granule, iaBits, paBits);
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
}

export function vtcrFields(vtcr: number): Record<string, number> {
  return {
    t0sz: vtcr & VTCR_T0SZ_MASK,
    sl0: (vtcr >>> VTCR_SL0_SHIFT) & 3,
    irgn0: (vtcr >>> VTCR_IRGN0_SHIFT) & 3,
    orgn0: (vtcr >>> VTCR_ORGN0_SHIFT) & 3,
    sh0: (vtcr >>> VTCR_SH0_SHIFT) & 3,
    tg0: (vtcr >>> VTCR_TG0_SHIFT) & 3,
    ps: (vtcr >>> VTCR_PS_SHIFT) & 7,
    res1: vtcr >>> 31,
  };
}

function levelShifts(geo: Geometry): Record<string, number> {
  const out: Record<string, number> = {};
  for (let l = geo.startLevel; l <= 3; l++) out[`L${l}`] = geo.shifts[l] as number;
  return out;
}

export function geometryJson(geo: Geometry): Record<string, unknown> {
  return {
    granule: geo.granule,
    iaBits: geo.iaBits,
    paBits: geo.paBits,
    levels: geo.levels,
    startLevel: geo.startLevel,
    pgdPages: geo.pgdPages,
    entriesPerPage: geo.entriesPerPage,
    blockSizes: geo.blockSizes,
    blockLevels: geo.blockLevels,
    levelShifts: levelShifts(geo),
    vtcr: `0x${geo.vtcr.toString(16)}`,
    vtcrFields: vtcrFields(geo.vtcr),
  };
}

export function geometryText(geo: Geometry): string[] {
  const f = vtcrFields(geo.vtcr);
  const blocks = geo.blockLevels.map((l, i) => `${formatSize(geo.blockSizes[i] as number)} (L${l})`);
  const startEntries = 2 ** (geo.iaBits - (geo.shifts[geo.startLevel] as number));
  const shifts = Object.entries(levelShifts(geo)).map(([l, s]) => `${l} ${s}`);
  return [
    `granule       ${formatSize(geo.granule)} (${geo.granule} bytes, ${geo.entriesPerPage} entries per table)`,
    `IPA size      ${geo.iaBits} bits (${formatSize(geo.ipaSize)})`,
    `PA size       ${geo.paBits} bits`,
    `levels        ${geo.levels} (L${geo.startLevel}..L3)`,
    `start level   ${geo.startLevel}`,
    `PGD pages     ${geo.pgdPages}${geo.pgdPages > 1 ? " concatenated" : ""} at L${geo.startLevel} (${startEntries} entries used)`,
    `block sizes   ${blocks.length > 0 ? blocks.join(", ") : "none"}`,
    `page size     ${formatSize(geo.granule)} (L3)`,
    `level shifts  ${shifts.join(", ")}`,
    `VTCR_EL2      0x${geo.vtcr.toString(16)} (T0SZ=${f.t0sz} SL0=${f.sl0} IRGN0=${f.irgn0} ORGN0=${f.orgn0} SH0=${f.sh0} TG0=${f.tg0} PS=${f.ps} RES1=${f.res1})`,
  ];
}

export const geometryCommand: Command = {
  name: "geometry",
  summary: "levels, start level, concatenated pages, block sizes and VTCR_EL2 for a granule and IPA size",
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values } = parseFlags(argv, {
      granule: { type: "string" },
      "ia-bits": { type: "string" },
      "pa-bits": { type: "string" },
      json: { type: "boolean" },
    });
    const granule = granuleFlag(values.granule as string | undefined);
    const iaBits = bitsFlag(values["ia-bits"] as string | undefined, "--ia-bits", 40);
    const paBits = bitsFlag(values["pa-bits"] as string | undefined, "--pa-bits", 48);
    const geo = geometryFromFlags(granule, iaBits, paBits);
    io.out(values.json ? JSON.stringify(geometryJson(geo)) : geometryText(geo).join("\n"));
    return 0;
  },
};
