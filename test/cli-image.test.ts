/**
 * Exported images against an independent walker: `stage2 script --image` writes tables.bin and
 * tables.json; test/independent/walk_image.py (stand-alone Python written from the ARM ARM, no
 * project code) translates many IPAs with them, and every translation must match what the
 * project's own getLeaf says for the same script run in-process: level, descriptor, output
 * address, S2AP, XN, AF, MemAttr, SH, and every fault.
 *
 * Randomized IPAs: the seed is printed on failure; STAGE2_SEED=<seed> replays it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { decodeDescriptor, hex64 } from "../src/arch/decode.js";
import type { Granule } from "../src/arch/geometry.js";
import { Rng } from "../src/common/rng.js";
import { parseScript } from "../src/cli/script-parser.js";
import { ScriptSession } from "../src/cli/script-runner.js";
import { imageBytes } from "../src/pgtable/image.js";
import { getLeaf, LeafResult } from "../src/pgtable/mod.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const WALKER = fileURLToPath(new URL("../../test/independent/walk_image.py", import.meta.url));
const SEED = Number(process.env.STAGE2_SEED ?? Math.floor(Math.random() * 2 ** 31));

interface Case {
  name: string;
  granule: Granule;
  iaBits: number;
  paBits: number;
  poolBytes: number;
  script: string[];
}

const CASES: Case[] = [
  {
    name: "4K/40: 1G and 2M blocks, pages, split, collapse, holes, owner, device, AF clear",
    granule: 4096,
    iaBits: 40,
    paBits: 48,
    poolBytes: 4 << 20,
    script: [
      "map 0x0 1G 0x80000000 rw",
      "map 0x40000000 4M 0x100000000 rwx",
      "map 0x40400000 64K 0x200000000 r",
      "map 0x40500000 2M 0x300001000 rw",
      "map 0x9000000000 4K 0x9000000 rw device",
      "owner 0x50000000 16K 7",
      "split 0x0 1G",
      "unmap 0x100000 8K",
      "wrprotect 0x200000 2M",
      "mkold 0x300000 4K",
      "collapse 0x600000 2M 0xa0000000 r",
      "relax 0x40400000 rw",
      "split 0x40000000 2M",
      "unmap 0x40200000 2M",
      "map 0xffffe00000 2M 0xffffe00000 rwx",
    ],
  },
  {
    name: "4K/48: start level 0",
    granule: 4096,
    iaBits: 48,
    paBits: 48,
    poolBytes: 4 << 20,
    script: [
      "map 0xffffc0000000 1G 0x40000000000 rw",
      "map 0x1000 4K 0x5000 r",
      "map 0x8000000000 2M 0x200000 rwx",
      "owner 0x7fffffff0000 64K 200",
      "split 0xffffc0000000 1G",
      "unmap 0xffffc0200000 2M",
    ],
  },
  {
    name: "4K/32: four concatenated level-2 tables",
    granule: 4096,
    iaBits: 32,
    paBits: 40,
    poolBytes: 256 << 10,
    script: [
      "map 0x0 2M 0x0 rw",
      "map 0xffe00000 2M 0x40000000 r",
      "map 0x80001000 12K 0x7000 rw",
      "split 0x0 2M",
      "unmap 0x1000 4K",
      "mkold 0x2000 4K",
    ],
  },
  {
    name: "16K/48: two concatenated level-1 tables, 32M blocks",
    granule: 16384,
    iaBits: 48,
    paBits: 48,
    poolBytes: 4 << 20,
    script: [
      "map 0x0 64M 0x2000000 rw",
      "map 0xfffffe000000 32M 0x8000000000 r",
      "map 0x4004000 48K 0x8000 rwx",
      "split 0x0 32M",
      "owner 0x800000000000 32K 3",
      "unmap 0x4000 16K",
    ],
  },
  {
    name: "64K/42: 512M blocks",
    granule: 65536,
    iaBits: 42,
    paBits: 48,
    poolBytes: 4 << 20,
    script: [
      "map 0x0 512M 0x20000000 rw",
      "map 0x30000000 128K 0x40000 rwx",
      "split 0x0 512M",
      "unmap 0x10000 64K",
      "map 0x3fe0000000 512M 0x3fe0000000 r device",
    ],
  },
  {
    name: "64K/52 with a 52-bit PA: OA[51:48] in descriptor bits 15:12",
    granule: 65536,
    iaBits: 52,
    paBits: 52,
    poolBytes: 4 << 20,
    script: [
      "map 0x8000000000000 512M 0xf000000000000 rw",
      "map 0x10000 64K 0xabcd00010000 r",
      "map 0x20000 128K 0x3000000000000 rwx",
      "split 0x8000000000000 512M",
    ],
  },
];

/** A seeded generator (so that a failing run can be replayed from its seed) as a function. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

interface Translation {
  fault: string | null;
  level?: number | null;
  descriptor?: string;
  pa?: string;
  s2ap?: number;
  xn?: number;
  af?: number;
  memAttr?: number;
  sh?: number;
  res0?: string;
  reason?: string;
}

/** What the project says about `ipa`, in the walker's vocabulary. */
function projectTranslation(session: ScriptSession, ipa: number): Translation {
  const geo = session.geo;
  if (ipa >= geo.ipaSize) return { fault: "translation", level: geo.startLevel };
  const out = new LeafResult();
  assert.equal(getLeaf(session.pgt, ipa, out), 0);
  const d = decodeDescriptor(out.pte, out.level, geo.granule);
  const descriptor = hex64(d.raw);
  if (d.leaf === null) return { fault: "translation", level: out.level, descriptor };
  const l = d.leaf;
  const offset = ipa % (session.pgt.levelSizes[out.level] as number);
  return {
    fault: l.af ? null : "access-flag",
    level: out.level,
    descriptor,
    pa: `0x${(d.oa + offset).toString(16)}`,
    s2ap: (l.read ? 1 : 0) | (l.write ? 2 : 0),
    xn: (l.xn ? 2 : 0) | (l.xnx ? 1 : 0),
    af: l.af ? 1 : 0,
    memAttr: l.memAttr,
    sh: l.sh,
    res0: "0x0",
  };
}

const COMPARED = ["fault", "level", "descriptor", "pa", "s2ap", "xn", "af", "memAttr", "sh", "res0"] as const;

/** Differences between the independent walker and the project, one line each. */
function compare(session: ScriptSession, ipas: number[], walked: Translation[]): string[] {
  const problems: string[] = [];
  assert.equal(walked.length, ipas.length);
  for (let i = 0; i < ipas.length; i++) {
    const ipa = ipas[i] as number;
    const want = projectTranslation(session, ipa);
    const got = walked[i] as Translation;
    for (const key of COMPARED) {
      if (key in want && want[key] !== got[key]) {
        problems.push(
          `IPA 0x${ipa.toString(16)}: ${key} project=${want[key]} walker=${got[key]} (${got.reason ?? ""})`,
        );
      }
    }
  }
  return problems;
}

/** Range starts, ends, middles and neighbours from the listing, plus random IPAs. */
function probeIpas(
  session: ScriptSession,
  ranges: { start: string; end: string }[],
  random: () => number,
): number[] {
  const g = session.geo.granule;
  const top = session.geo.ipaSize;
  const set = new Set<number>([0, top - 1, top, top + g]);
  for (const r of ranges) {
    const s = Number(r.start);
    const e = Number(r.end);
    for (const ipa of [s - 1, s, s + 1, s + g, s + g + 0x123, (s + e) / 2, e - g, e - 1, e, e + g]) {
      if (ipa >= 0) set.add(Math.floor(ipa));
    }
    for (let k = 0; k < 20; k++) set.add(s + Math.floor(random() * (e - s)));
  }
  for (let k = 0; k < 300; k++) set.add(Math.floor(random() * top));
  return [...set].sort((a, b) => a - b);
}

function walk(
  dir: string,
  ipaFile: string,
): { config: Record<string, unknown>; mismatches: string[]; results: Translation[] } {
  const r = spawnSync("python3", [WALKER, dir, "--ipas-file", ipaFile], {
    encoding: "utf8",
    maxBuffer: 1 << 28,
  });
  assert.equal(r.error, undefined, `python3 must be installed: ${r.error}`);
  assert.equal(r.status, 0, `walk_image.py failed: ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout);
}

describe(`exported images match an independent ARMv8 walker (seed ${SEED})`, () => {
  let tmp = "";
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), "stage2-image-"));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  CASES.forEach((c, index) => {
    test(c.name, async () => {
      const dir = join(tmp, `case${index}`);
      const scriptFile = join(tmp, `case${index}.txt`);
      await writeFile(scriptFile, c.script.join("\n"));
      const flags = [
        "--granule",
        String(c.granule),
        "--ia-bits",
        String(c.iaBits),
        "--pa-bits",
        String(c.paBits),
      ];
      const r = spawnSync(
        process.execPath,
        [MAIN, "script", scriptFile, ...flags, "--pool", String(c.poolBytes), "--image", dir, "--json"],
        { encoding: "utf8", maxBuffer: 1 << 26 },
      );
      assert.equal(r.status, 0, r.stderr);
      const ranges = JSON.parse(r.stdout.trimEnd().split("\n").pop() as string);
      assert.ok(ranges.length >= 3, "the script left several ranges");

      // The same script in-process gives the same tables, byte for byte.
      const session = ScriptSession.create({
        granule: c.granule,
        iaBits: c.iaBits,
        paBits: c.paBits,
        poolPages: c.poolBytes / c.granule,
        poolBasePa: 0x4000_0000,
      });
      session.runAll(parseScript(c.script.join("\n")));
      session.cache.drain();
      const bin = new Uint8Array(await readFile(join(dir, "tables.bin")));
      assert.ok(
        Buffer.from(bin).equals(Buffer.from(imageBytes(session.pgt))),
        "tables.bin equals the in-process pool",
      );

      const ipas = probeIpas(session, ranges, rng(SEED + index));
      const ipaFile = join(tmp, `case${index}.ipas`);
      await writeFile(ipaFile, ipas.map((x) => `0x${x.toString(16)}`).join("\n"));
      const walked = walk(dir, ipaFile);
      assert.deepEqual(walked.mismatches, [], "tables.json agrees with VTCR_EL2/VTTBR_EL2");
      assert.equal(walked.config.startLevel, session.geo.startLevel);
      assert.equal(walked.config.concatenatedTables, session.geo.pgdPages);
      const problems = compare(session, ipas, walked.results);
      assert.deepEqual(problems.slice(0, 20), [], `${problems.length} mismatches (seed ${SEED})`);
      const translated = walked.results.filter((t) => t.pa !== undefined).length;
      assert.ok(translated >= 50, `enough IPAs hit leaves (${translated} of ${ipas.length})`);
      assert.deepEqual(session.finish(), []);
    });
  });

  test("the comparison fails when one descriptor in the image is wrong", async () => {
    const c = CASES[0] as Case;
    const good = join(tmp, "case0");
    const bad = join(tmp, "case0-corrupt");
    await rm(bad, { recursive: true, force: true });
    await mkdir(bad);
    await copyFile(join(good, "tables.json"), join(bad, "tables.json"));
    const session = ScriptSession.create({
      granule: c.granule,
      iaBits: c.iaBits,
      paBits: c.paBits,
      poolPages: c.poolBytes / c.granule,
      poolBasePa: 0x4000_0000,
    });
    session.runAll(parseScript(c.script.join("\n")));
    session.cache.drain();
    // Find the 2M block collapse installed at IPA 0x600000 and move its output address by 2M.
    const leaf = new LeafResult();
    getLeaf(session.pgt, 0x60_0000, leaf);
    assert.equal(leaf.level, 2);
    const bytes = imageBytes(session.pgt);
    const view = new DataView(bytes.buffer);
    let offset = -1;
    for (let o = 0; o < bytes.length; o += 8) {
      if (view.getBigUint64(o, true) === BigInt.asUintN(64, leaf.pte)) offset = o;
    }
    assert.ok(offset >= 0);
    view.setBigUint64(offset, BigInt.asUintN(64, leaf.pte) ^ (1n << 21n), true);
    await writeFile(join(bad, "tables.bin"), bytes);
    const ipas = [0x60_0000, 0x60_1234, 0x7f_ffff];
    const ipaFile = join(tmp, "corrupt.ipas");
    await writeFile(ipaFile, ipas.map((x) => `0x${x.toString(16)}`).join("\n"));
    const problems = compare(session, ipas, walk(bad, ipaFile).results);
    assert.ok(
      problems.some((p) => p.includes(": pa ")),
      problems.join("\n"),
    );
    assert.ok(
      problems.some((p) => p.includes(": descriptor ")),
      problems.join("\n"),
    );
    session.finish();
  });
});
