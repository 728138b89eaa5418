/**
 * The `geometry`, `decode` and `script` commands as users run them: spawn the compiled CLI, check
 * stdout, stderr and the exit code (0 success, 1 failed own checks, 2 bad input).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function cli(args: string[], input?: string): Run {
  const r = spawnSync(process.execPath, [MAIN, ...args], { input, encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function json(args: string[]): Record<string, unknown> {
  const r = cli(args);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out);
}

/** Exit 2, nothing on stdout, one stderr line naming the command and matching `re`. */
function usageError(r: Run, command: string, re: RegExp): void {
  assert.equal(r.code, 2, `exit code (stderr: ${r.err})`);
  assert.equal(r.out, "");
  const lines = r.err.trimEnd().split("\n");
  assert.equal(lines.length, 1, r.err);
  assert.ok(lines[0]!.startsWith(`stage2 ${command}: `), lines[0]);
  assert.match(lines[0]!, re);
}

describe("stage2 geometry", () => {
  test("4K/40: 3 levels from L1, 2 concatenated pages, 1G and 2M blocks, VTCR 0x80053558", () => {
    const g = json(["geometry", "--granule", "4k", "--ia-bits", "40", "--json"]);
    assert.equal(g.granule, 4096);
    assert.equal(g.iaBits, 40);
    assert.equal(g.levels, 3);
    assert.equal(g.startLevel, 1);
    assert.equal(g.pgdPages, 2);
    assert.deepEqual(g.blockSizes, [2 ** 30, 2 ** 21]);
    // T0SZ=24 | SL0=1<<6 | IRGN0=1<<8 | ORGN0=1<<10 | SH0=3<<12 | TG0=0 | PS=5<<16 | RES1 bit 31.
    assert.equal(
      g.vtcr,
      `0x${(24 + (1 << 6) + (1 << 8) + (1 << 10) + (3 << 12) + (5 << 16) + 2 ** 31).toString(16)}`,
    );
    assert.equal(g.vtcr, "0x80053558");
  });

  test("4K/32: 2 levels, 4 pages, only 2M blocks below the start level", () => {
    const g = json(["geometry", "--ia-bits", "32", "--json"]);
    assert.deepEqual([g.levels, g.startLevel, g.pgdPages], [2, 2, 4]);
    assert.deepEqual(g.blockSizes, [2 ** 21]);
  });

  test("16K and 64K: block sizes and hand-computed VTCR values", () => {
    const g16 = json(["geometry", "--granule", "16k", "--ia-bits", "36", "--pa-bits", "40", "--json"]);
    // T0SZ=28, 2 levels from L2 so SL0=3-2=1, TG0=2 (16K), PS=2 (40 bits).
    assert.equal(g16.vtcr, "0x8002b55c");
    assert.deepEqual(g16.blockSizes, [2 ** 25]);
    const g64 = json(["geometry", "--granule", "64k", "--ia-bits", "42", "--json"]);
    // T0SZ=22, 2 levels from L2 so SL0=1, TG0=1 (64K), PS=5.
    assert.equal(g64.vtcr, "0x80057556");
    assert.deepEqual(g64.blockSizes, [2 ** 29]);
  });

  test("prints a readable table by default", () => {
    const r = cli(["geometry"]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^levels +3 \(L1\.\.L3\)$/m);
    assert.match(r.out, /^PGD pages +2 concatenated at L1/m);
    assert.match(r.out, /^block sizes +1G \(L1\), 2M \(L2\)$/m);
    assert.match(r.out, /^VTCR_EL2 +0x80053558 \(T0SZ=24 SL0=1 IRGN0=1 ORGN0=1 SH0=3 TG0=0 PS=5 RES1=1\)$/m);
  });

  test("bad flags exit 2 with one line naming the problem", () => {
    usageError(
      cli(["geometry", "--granule", "8k"]),
      "geometry",
      /--granule: "8k" is not one of 4k, 16k, 64k/,
    );
    usageError(cli(["geometry", "--ia-bits", "60"]), "geometry", /IPA size 60 bits/);
    usageError(cli(["geometry", "--ia-bits", "4x"]), "geometry", /--ia-bits: "4x" is not a whole number/);
    usageError(cli(["geometry", "--pa-bits", "50"]), "geometry", /PA size 50 bits/);
    usageError(cli(["geometry", "--ia-bits", "44", "--pa-bits", "40"]), "geometry", /exceeds the 40-bit/);
    usageError(cli(["geometry", "--bogus"]), "geometry", /bogus/);
  });
});

describe("stage2 decode", () => {
  const PAGE = "0x004000009000177f";

  test("--json has the documented keys; level 3 is assumed and says so", () => {
    const d = json(["decode", PAGE, "--json"]);
    assert.deepEqual([d.valid, d.type, d.oa, d.level, d.levelAssumed], [true, "page", "0x90001000", 3, true]);
    assert.deepEqual(
      [d.memAttrName, d.sh, d.af, d.xn, d.dbm, d.contiguous, d.sw],
      ["normal-wb", "IS", true, true, false, false, 0],
    );
    assert.deepEqual(d.s2ap, { r: true, w: false, raw: 1 });
    const t = json(["decode", PAGE, "--level", "2", "--json"]);
    assert.deepEqual([t.type, t.nextTable, t.levelAssumed], ["table", "0x90001000", false]);
  });

  test("reserved encodings and KVM's invalid annotations", () => {
    const r = json(["decode", "0x802007fd", "--json"]);
    assert.deepEqual([r.valid, r.type, r.reserved, r.locked, r.owner], [false, "invalid", true, false, 0]);
    const b = json(["decode", "0x802007fd", "--level", "1", "--granule", "4k", "--json"]);
    // Bits 29:12 of a 1G block descriptor are RES0: the output address is the 1G-aligned one.
    assert.deepEqual([b.type, b.oa], ["block", "0x80000000"]);
    assert.match(String(b.note), /RES0/);
    const t = json(["decode", "0x80200003", "--level", "1", "--granule", "4k", "--json"]);
    assert.deepEqual([t.valid, t.type, t.oa, t.nextTable], [true, "table", "0x80200000", "0x80200000"]);
    const inv = json(["decode", String(0x400 | (5 << 2)), "--json"]);
    assert.deepEqual([inv.valid, inv.type, inv.locked, inv.owner], [false, "invalid", true, 5]);
  });

  test("prints named fields as text", () => {
    const r = cli(["decode", PAGE]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^level +3 \(assumed; pass --level to change\), 4K granule$/m);
    assert.match(r.out, /^memAttr +0xf normal-wb$/m);
    assert.match(r.out, /^s2ap +R- \(read=1 write=0\)$/m);
  });

  test("bad input exits 2", () => {
    usageError(cli(["decode"]), "decode", /missing descriptor/);
    usageError(cli(["decode", "0xzz"]), "decode", /descriptor: "0xzz" is not a 64-bit number/);
    usageError(cli(["decode", "0x10000000000000000"]), "decode", /does not fit in 64 bits/);
    usageError(cli(["decode", "0x3", "--level", "4"]), "decode", /--level: "4" is not a stage-2 level/);
    usageError(cli(["decode", "0x3", "--granule", "3k"]), "decode", /--granule/);
    usageError(cli(["decode", "1", "2"]), "decode", /unexpected argument "2"/);
  });
});

describe("stage2 script", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "stage2-cli-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const SCRIPT = [
    "# a block, some pages, an annotation",
    "map 0x0 2M 0x80000000 rw",
    "map 0x200000 16K 0x90000000 r",
    "owner 0x400000 8K 5",
    "get 0x201000",
  ].join("\n");

  test("prints results and the ptdump listing, reading the script from stdin", () => {
    const r = cli(["script", "-", "--pool", "1M"], SCRIPT);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, "");
    const lines = r.out.trimEnd().split("\n");
    assert.equal(lines[0], "get 0x201000 -> 0x90001000: L3 page PA 0x90001000 R-- normal-wb IS AF");
    assert.match(
      lines[1]!,
      /^# stage-2 4K granule, 40-bit IPA, L1\.\.L3, root 0x40000000 \(2 pages\), VTCR_EL2 0x80053558; 3 ranges/,
    );
    assert.match(
      lines[2]!,
      /^0x0000000000000000-0x0000000000200000 +2M {2}L2 block {2}PA 0x80000000 +RW- {2}normal-wb IS AF$/,
    );
    assert.match(
      lines[3]!,
      /^0x0000000000200000-0x0000000000204000 +16K {2}L3 page +PA 0x90000000 +R-- {2}normal-wb IS AF$/,
    );
    assert.match(lines[4]!, /^0x0000000000400000-0x0000000000402000 +8K {2}L3 owner {2}owner=5$/);
    assert.equal(lines.length, 5);
  });

  test("--json prints JSON lines for results, then the ranges as one array", async () => {
    const file = join(dir, "s.txt");
    await writeFile(file, SCRIPT);
    const r = cli(["script", file, "--json", "--pool", "1M"]);
    assert.equal(r.code, 0, r.err);
    const lines = r.out
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    assert.deepEqual(
      [lines[0].op, lines[0].line, lines[0].pa, lines[0].type],
      ["get", 5, "0x90001000", "page"],
    );
    const ranges = lines[1] as Record<string, unknown>[];
    assert.deepEqual(
      ranges.map((x) => [x.start, x.end, x.size, x.level, x.type, x.pa, x.prot, x.memAttrName, x.owner]),
      [
        ["0x0", "0x200000", 2 ** 21, 2, "block", "0x80000000", "RW-", "normal-wb", undefined],
        ["0x200000", "0x204000", 16384, 3, "page", "0x90000000", "R--", "normal-wb", undefined],
        ["0x400000", "0x402000", 8192, 3, "owner", undefined, undefined, undefined, 5],
      ],
    );
  });

  test("--quiet drops the listing, --keep skips the teardown", () => {
    const r = cli(["script", "-", "--quiet", "--keep"], "map 0x0 4K 0x0 rw\nmkold 0x0 4K");
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, "mkold 0x0 4K: young\n");
  });

  test("a bad script line exits 2 and prints nothing else", () => {
    usageError(
      cli(["script", "-"], "dump\nmap 0x0 4K"),
      "script",
      /^stage2 script: line 2: map: expected IPA SIZE PA PROT/,
    );
    usageError(
      cli(["script", "-"], "get 0x0\nfrobnicate"),
      "script",
      /line 2: unknown operation "frobnicate"/,
    );
  });

  test("a failing operation exits 2 with errno and reason, and nothing half-printed", () => {
    const r = cli(
      ["script", "-"],
      "map 0x0 4K 0x0 rw\ndump\nget 0x0\nmap 0x1000 2M 0x1000 rw\nunmap 0x1001 4K",
    );
    usageError(
      r,
      "script",
      /^stage2 script: line 5: unmap 0x1001 4K: EINVAL \(IPA 0x1001 is not aligned to the 4K granule\)$/,
    );
    usageError(
      cli(
        ["script", "-", "--pool", "16K"],
        "map 0x0 4K 0x0 rw\nmap 0x40000000 4K 0x0 rw\nmap 0x80000000 4K 0x0 rw",
      ),
      "script",
      /line 2: map 0x40000000 4K 0x0 rw: ENOMEM \(page pool exhausted/,
    );
  });

  test("bad flags and files exit 2", async () => {
    usageError(cli(["script"]), "script", /missing script file/);
    usageError(
      cli(["script", join(dir, "missing.txt")]),
      "script",
      /cannot read script ".*missing\.txt": ENOENT/,
    );
    usageError(
      cli(["script", "-", "--pool", "5000"], ""),
      "script",
      /--pool: 5000 bytes is not a positive multiple of the 4K granule/,
    );
    usageError(cli(["script", "-", "--pool", "4K"], ""), "script", /--pool: 4K must hold 2 to/);
    usageError(
      cli(["script", "-", "--pool-base", "0x40000800"], ""),
      "script",
      /--pool-base: 0x40000800 is not aligned to the 4K granule/,
    );
    usageError(cli(["script", "-", "--granule", "16k", "--ia-bits", "99"], ""), "script", /IPA size 99/);
    const file = join(dir, "plain-file");
    await writeFile(file, "x");
    usageError(
      cli(["script", "-", "--image", join(file, "sub")], "map 0x0 4K 0x0 rw"),
      "script",
      /--image: cannot write/,
    );
  });

  test("--image writes tables.bin and tables.json with the walk parameters", async () => {
    const out = join(dir, "img");
    const r = cli(["script", "-", "--image", out, "--pool", "256K", "--pool-base", "0x80000000"], SCRIPT);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /# image: .*tables\.bin \(64 pages\)/);
    const meta = JSON.parse(await readFile(join(out, "tables.json"), "utf8"));
    assert.deepEqual(
      [
        meta.poolBasePa,
        meta.poolBasePaNumber,
        meta.pageSize,
        meta.rootPa,
        meta.startLevel,
        meta.levels,
        meta.iaBits,
        meta.vtcr,
      ],
      ["0x80000000", 0x8000_0000, 4096, "0x80000000", 1, 3, 40, "0x80053558"],
    );
    assert.equal((await readFile(join(out, "tables.bin"))).length, 256 * 1024);
  });
});
