/**
 * `stage2 decode`: a 64-bit stage-2 descriptor as named fields.
 */
import {
  type DecodedDescriptor,
  decodeDescriptor,
  decodedToJson,
  firstLevel,
  hex,
  hex64,
  permString,
} from "../../arch/decode.js";
import { type CliIo, type Command, UsageError } from "../command.js";
import { parseFlags, parseU64, quote } from "../parse.js";
import { granuleFlag } from "./geometry.js";

const USAGE = `Usage: stage2 decode <descriptor> [--level L] [--granule G] [--json]

Decodes a 64-bit stage-2 descriptor (decimal or 0x hex) into named fields. What bits[1:0] mean
depends on the level: 0b11 is a table at levels 0-2 and a page at level 3; 0b01 is a block where
the granule allows one (4K: levels 1-2, 16K/64K: level 2) and a reserved encoding elsewhere, which
hardware treats as a translation fault (reported as type "invalid" with reserved: true). Invalid
descriptors show KVM's software fields: the locked marker (bit 10) and the owner id (bits 9:2).

Options:
  --level L     level the descriptor was found at, 0..3 (64K: 1..3; default 3, and the output says
                it was assumed)
  --granule G   4k, 16k or 64k (default 4k)
  --json        one JSON object: descriptor, level, levelAssumed, granule, valid, type, reserved,
                and nextTable (tables); oa, memAttr, memAttrName, s2ap, sh, af, xn, xnx, dbm,
                contiguous, sw (blocks, pages); locked, owner (invalid)`;

function yes(b: boolean): string {
  return b ? "1" : "0";
}

function describe(d: DecodedDescriptor, levelAssumed: boolean): string[] {
  const gran = `${d.granule / 1024}K granule`;
  const lines = [
    `descriptor   ${hex64(d.raw)}`,
    `level        ${d.level}${levelAssumed ? " (assumed; pass --level to change)" : ""}, ${gran}`,
    `type         ${d.type}${d.reserved ? " (reserved encoding)" : ""} (valid=${yes(d.valid)})`,
  ];
  if (d.note !== "") lines.push(`note         ${d.note}`);
  if (d.type === "table") lines.push(`next table   ${hex(d.nextTable)}`);
  if (d.leaf !== null) {
    const l = d.leaf;
    lines.push(
      `oa           ${hex(d.oa)}`,
      `memAttr      ${hex(l.memAttr)} ${l.memAttrName}`,
      `s2ap         ${l.read ? "R" : "-"}${l.write ? "W" : "-"} (read=${yes(l.read)} write=${yes(l.write)})`,
      `sh           ${l.sh} (${l.shName})`,
      `af           ${yes(l.af)}`,
      `xn           ${yes(l.xn)}${l.xnx ? " (XN[0] set: FEAT_XNX)" : ""}`,
      `dbm          ${yes(l.dbm)}`,
      `contiguous   ${yes(l.contiguous)}`,
      `sw           ${hex(l.sw)}`,
      `perms        ${permString(l)}`,
    );
  }
  if (!d.valid) lines.push(`locked       ${yes(d.locked)}`, `owner        ${d.owner}`);
  return lines;
}

export const decodeCommand: Command = {
  name: "decode",
  summary: "decode a 64-bit stage-2 descriptor into named fields",
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseFlags(
      argv,
      { level: { type: "string" }, granule: { type: "string" }, json: { type: "boolean" } },
      true,
    );
    if (positionals.length === 0)
      throw new UsageError("missing descriptor (a 64-bit value, e.g. 0x400000400007ff)");
    if (positionals.length > 1)
      throw new UsageError(`unexpected argument ${quote(positionals[1] as string)}`);
    const pte = parseU64(positionals[0] as string, "descriptor");
    const levelText = values.level as string | undefined;
    if (levelText !== undefined && !/^[0-3]$/.test(levelText.trim())) {
      throw new UsageError(`--level: ${quote(levelText)} is not a stage-2 level (0, 1, 2 or 3)`);
    }
    const level = levelText === undefined ? 3 : Number(levelText.trim());
    const granule = granuleFlag(values.granule as string | undefined);
    const first = firstLevel(granule);
    if (level < first)
      throw new UsageError(
        `--level: level ${level} does not exist with the ${granule / 1024}K granule (levels ${first} to 3)`,
      );
    const d = decodeDescriptor(pte, level, granule);
    const assumed = levelText === undefined;
    io.out(values.json ? JSON.stringify(decodedToJson(d, assumed)) : describe(d, assumed).join("\n"));
    return 0;
  },
};
