/**
 * `stage2 script FILE|-`: run page-table operations from a file, print the ptdump listing, and
 * optionally export the tables as an image another walker can translate with.
 */
import { decodedToJson, formatSize, hex, summarizeDescriptor } from "../../arch/decode.js";
import type { Geometry, Granule } from "../../arch/geometry.js";
import { DEFAULT_BASE_PA, MAX_POOL_PAGES } from "../../mem/mod.js";
import { collectRanges, type DumpRange, formatRanges, rangeToJson } from "../../pgtable/dump.js";
import { ImageWriteError, writeImage } from "../../pgtable/image.js";
import { type CliIo, type Command, OutputError, UsageError } from "../command.js";
import { parseFlags, parseNumber, quote, sanitize } from "../parse.js";
import { parseScript } from "../script-parser.js";
import { type OpResult, type ScriptConfig, ScriptSession } from "../script-runner.js";
import { bitsFlag, geometryFromFlags, granuleFlag } from "./geometry.js";

const USAGE = `Usage: stage2 script FILE|- [options]

Runs page-table operations, one per line, on one stage-2 table (exclusive, as under the write
lock), then prints a ptdump-style listing: coalesced ranges with level, size, output address,
permissions and attributes, plus owner-annotated invalid ranges.

Script lines ('#' starts a comment; numbers are decimal, 0x hex or K/M/G sizes):
  map IPA SIZE PA PROT [device]       PROT: r, w, x letters (rw, r-x, rwx...); blocks where aligned
  collapse IPA SIZE PA PROT [device]  map one block (SIZE a block size), replacing any table
  unmap IPA SIZE                      remove mappings and annotations, free emptied tables
  wrprotect IPA SIZE                  clear write permission
  relax IPA PROT                      grant PROT on the leaf mapping IPA
  mkyoung IPA                         set the access flag of the leaf mapping IPA
  mkold IPA SIZE                      test_clear_young with mkold: prints young or old
  owner IPA SIZE ID                   set_owner: annotate with owner ID (1..255)
  split IPA SIZE                      split every block in the range down to pages
  flush IPA SIZE                      clean+invalidate cacheable leaves (prints the count)
  get IPA                             print the entry translating IPA
  dump                                print the listing at this point
Mapping over an existing identical mapping leaves its permissions as they are (use relax).

Options:
  --granule G       4k, 16k or 64k (default 4k)
  --ia-bits N       IPA size in bits (default 40)
  --pa-bits N       PA size in bits, VTCR_EL2.PS (default 48)
  --pool SIZE       bytes of table pages in the page pool (default 16M)
  --pool-base PA    physical address of the pool, granule aligned (default 0x40000000); the
                    start-level tables are placed aligned to their size (VTTBR_EL2.BADDR)
  --image DIR       write DIR/tables.bin (the raw pool, little endian) and DIR/tables.json
                    (pool base PA, page size, root PA, start level, levels, iaBits, vtcr, vttbr...)
  --json            print results as JSON lines (get, mkold, flush, dump), then the final listing as
                    one JSON array of ranges
  --quiet           do not print the final listing
  --keep            skip the teardown and leak check at the end

Exit codes: 0 success; 1 the teardown found leaked pages or a damaged table; 2 bad flags or a bad
or failing script line ("line N: map 0x1000 2M 0x40000000 rw: EINVAL (reason)"), with nothing
else printed.`;

const DEFAULT_POOL_BYTES = 16 * 1024 * 1024;

/** Write failures that are the machine's, not the user's: exit 1 rather than 2. */
const DISK_ERRORS = new Set(["ENOSPC", "EDQUOT", "EIO", "EFBIG"]);

function poolConfig(values: Record<string, unknown>, geo: Geometry): ScriptConfig {
  const granule = geo.granule;
  const bytes = values.pool === undefined ? DEFAULT_POOL_BYTES : parseNumber(values.pool as string, "--pool");
  if (bytes % granule !== 0 || bytes === 0) {
    throw new UsageError(
      `--pool: ${bytes} bytes is not a positive multiple of the ${formatSize(granule)} granule`,
    );
  }
  const pages = bytes / granule;
  if (pages < geo.pgdPages || pages > MAX_POOL_PAGES) {
    throw new UsageError(
      `--pool: ${formatSize(bytes)} must hold ${geo.pgdPages} to ${MAX_POOL_PAGES} pages of ${formatSize(granule)}`,
    );
  }
  const base =
    values["pool-base"] === undefined
      ? DEFAULT_BASE_PA
      : parseNumber(values["pool-base"] as string, "--pool-base");
  if (base % granule !== 0)
    throw new UsageError(`--pool-base: ${hex(base)} is not aligned to the ${formatSize(granule)} granule`);
  if (base + bytes > 2 ** geo.paBits)
    throw new UsageError(
      `--pool-base: pool ${hex(base)}+${formatSize(bytes)} ends beyond the ${geo.paBits}-bit PA space (--pa-bits)`,
    );
  checkRootFits(base, bytes, geo);
  return { granule, iaBits: geo.iaBits, paBits: geo.paBits, poolPages: pages, poolBasePa: base };
}

/**
 * The start-level tables sit at an address aligned to their combined size (VTTBR_EL2.BADDR): a
 * pool whose base is only granule aligned may hold no such run. Say so, instead of letting the
 * allocation fail later as "page pool exhausted".
 */
function checkRootFits(base: number, bytes: number, geo: Geometry): void {
  const align = geo.pgdPages * geo.granule;
  const firstAligned = Math.ceil(base / align) * align;
  if (firstAligned + align <= base + bytes) return;
  throw new UsageError(
    `--pool-base: the ${geo.pgdPages} start-level table page${geo.pgdPages > 1 ? "s need" : " needs"} a ` +
      `${formatSize(align)}-aligned run, which a ${formatSize(bytes)} pool at ${hex(base)} does not hold; ` +
      `align --pool-base to ${formatSize(align)} or enlarge --pool`,
  );
}

function resultText(r: OpResult, granule: Granule): string[] {
  switch (r.kind) {
    case "get": {
      const arrow = r.pa >= 0 ? ` -> ${hex(r.pa)}` : "";
      return [`get ${hex(r.ipa)}${arrow}: ${summarizeDescriptor(r.decoded)}`];
    }
    case "mkold":
      return [`mkold ${hex(r.ipa)} ${formatSize(r.size)}: ${r.young ? "young" : "old"}`];
    case "flush":
      return [`flush ${hex(r.ipa)} ${formatSize(r.size)}: ${r.dcacheCleans} dcache clean+invalidate`];
    case "dump":
      return [`# dump at line ${r.line}`, ...formatRanges(r.ranges, granule)];
  }
}

function resultJson(r: OpResult, granule: Granule): Record<string, unknown> {
  switch (r.kind) {
    case "get":
      return {
        op: "get",
        line: r.line,
        ipa: hex(r.ipa),
        pa: r.pa >= 0 ? hex(r.pa) : null,
        ...decodedToJson(r.decoded),
      };
    case "mkold":
      return { op: "mkold", line: r.line, ipa: hex(r.ipa), size: r.size, young: r.young };
    case "flush":
      return { op: "flush", line: r.line, ipa: hex(r.ipa), size: r.size, dcacheCleans: r.dcacheCleans };
    case "dump":
      return { op: "dump", line: r.line, ranges: r.ranges.map((x) => rangeToJson(x, granule)) };
  }
}

function header(session: ScriptSession, ranges: readonly DumpRange[]): string {
  const g = session.geo;
  const tables = session.tablePages();
  return (
    `# stage-2 ${formatSize(g.granule)} granule, ${g.iaBits}-bit IPA, L${g.startLevel}..L3, ` +
    `root ${hex(session.pgt.rootPa)} (${g.pgdPages} page${g.pgdPages > 1 ? "s" : ""}), VTCR_EL2 ${hex(g.vtcr)}; ` +
    `${ranges.length} range${ranges.length === 1 ? "" : "s"}, ${tables} table pages (${formatSize(tables * g.granule)})`
  );
}

function createSession(config: ScriptConfig): ScriptSession {
  try {
    return ScriptSession.create(config);
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
}

async function readScript(io: CliIo, file: string): Promise<string> {
  try {
    return await io.readInput(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new UsageError(`cannot read script ${quote(file)}: ${err.code ?? sanitize(err.message)}`);
  }
}

export const scriptCommand: Command = {
  name: "script",
  summary: "run page-table operations from a file, print a ptdump listing, export tables",
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseFlags(
      argv,
      {
        granule: { type: "string" },
        "ia-bits": { type: "string" },
        "pa-bits": { type: "string" },
        pool: { type: "string" },
        "pool-base": { type: "string" },
        image: { type: "string" },
        json: { type: "boolean" },
        quiet: { type: "boolean" },
        keep: { type: "boolean" },
      },
      true,
    );
    if (positionals.length === 0)
      throw new UsageError("missing script file (a path, or - for standard input)");
    if (positionals.length > 1)
      throw new UsageError(`unexpected argument ${quote(positionals[1] as string)}`);
    const granule = granuleFlag(values.granule as string | undefined);
    const iaBits = bitsFlag(values["ia-bits"] as string | undefined, "--ia-bits", 40);
    const paBits = bitsFlag(values["pa-bits"] as string | undefined, "--pa-bits", 48);
    const geo = geometryFromFlags(granule, iaBits, paBits);
    const config = poolConfig(values, geo);
    const image = values.image as string | undefined;
    if (image === "") throw new UsageError("--image: missing directory");
    const lines = parseScript(await readScript(io, positionals[0] as string));

    const session = createSession(config);
    const results = session.runAll(lines);
    session.cache.drain();
    const json = values.json === true;
    const out: string[] = [];
    for (const r of results) {
      if (json) out.push(JSON.stringify(resultJson(r, geo.granule)));
      else out.push(...resultText(r, geo.granule));
    }
    if (!values.quiet) {
      const ranges = collectRanges(session.pgt);
      if (json) out.push(JSON.stringify(ranges.map((r) => rangeToJson(r, geo.granule))));
      else out.push(header(session, ranges), ...formatRanges(ranges, geo.granule));
    }
    if (image !== undefined) {
      let paths: { bin: string; json: string };
      try {
        paths = await writeImage(session.pgt, image);
      } catch (e) {
        if (!(e instanceof ImageWriteError)) throw e;
        const message = `--image: cannot write ${quote(e.path, 120)}: ${e.code}${e.code === "EEXIST" ? " (exists and is not a file)" : ""}; nothing was written`;
        // A full disk or an I/O error is not bad input (exit 1); a path that cannot hold the image is (exit 2).
        throw DISK_ERRORS.has(e.code) ? new OutputError(message) : new UsageError(message);
      }
      if (!json && !values.quiet)
        out.push(`# image: ${paths.bin} (${config.poolPages} pages), ${paths.json}`);
    }
    if (out.length > 0) io.out(out.join("\n"));
    if (values.keep) return 0;
    const problems = session.finish();
    for (const p of problems) io.err(`stage2 script: ${p}`);
    return problems.length > 0 ? 1 : 0;
  },
};
