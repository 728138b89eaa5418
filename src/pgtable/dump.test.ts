import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Prot, PTE_LOCKED } from "../arch/descriptor.js";
import type { Granule } from "../arch/geometry.js";
import { Errno } from "../common/errno.js";
import { MemCache, PagePool } from "../mem/mod.js";
import { collectRanges, formatRanges, rangeToJson } from "./dump.js";
import { map, setOwner, Stage2, wrprotect } from "./mod.js";

const M2 = 2 ** 21;
const G1 = 2 ** 30;

function setup(granule: Granule = 4096, iaBits = 40) {
  const pool = PagePool.create({ granule, pages: 256 });
  const pgt = Stage2.create(pool, { granule, iaBits });
  const cache = new MemCache(pool, 16);
  const mapOk = (ipa: number, size: number, pa: number, prot: number) => {
    assert.equal(cache.topup(4), Errno.OK);
    assert.equal(map(pgt, ipa, size, pa, prot, cache), Errno.OK);
  };
  return { pool, pgt, cache, mapOk };
}

function summary(pgt: Stage2) {
  return collectRanges(pgt).map((r) => [r.start, r.end, r.level, r.kind, r.entries, r.pa]);
}

describe("collectRanges", () => {
  test("returns nothing for an empty table and formats it as (no mappings)", () => {
    const { pgt } = setup();
    assert.deepEqual(collectRanges(pgt), []);
    assert.deepEqual(formatRanges([], 4096), ["(no mappings)"]);
  });

  test("coalesces pages that are contiguous in IPA and PA with equal attributes", () => {
    const { pgt, mapOk } = setup();
    mapOk(0x1000, 0x3000, 0x8000_1000, Prot.RW);
    mapOk(0x4000, 0x1000, 0x8000_4000, Prot.RW);
    assert.deepEqual(summary(pgt), [[0x1000, 0x5000, 3, "page", 4, 0x8000_1000]]);
  });

  test("splits ranges where the PA jumps, attributes differ, or the level changes", () => {
    const { pgt, mapOk } = setup();
    mapOk(0x0, 0x2000, 0x8000_0000, Prot.RW);
    mapOk(0x2000, 0x1000, 0x9000_0000, Prot.RW); // PA jump
    mapOk(0x3000, 0x1000, 0x9000_1000, Prot.R); // other permissions
    mapOk(0x1f_f000, 0x1000, 0x901f_f000, Prot.R); // same attrs, but not IPA-adjacent
    mapOk(M2, M2, 0x9020_0000, Prot.R); // block right after: PA-contiguous but another level
    assert.deepEqual(summary(pgt), [
      [0x0, 0x2000, 3, "page", 2, 0x8000_0000],
      [0x2000, 0x3000, 3, "page", 1, 0x9000_0000],
      [0x3000, 0x4000, 3, "page", 1, 0x9000_1000],
      [0x1f_f000, 0x20_0000, 3, "page", 1, 0x901f_f000],
      [M2, 2 * M2, 2, "block", 1, 0x9020_0000],
    ]);
  });

  test("coalesces adjacent blocks, across table pages too", () => {
    const { pgt, mapOk } = setup();
    mapOk(G1 - 2 * M2, 4 * M2, 0x1_0000_0000, Prot.RWX);
    const r = collectRanges(pgt);
    assert.equal(r.length, 1);
    assert.deepEqual(
      [r[0]!.start, r[0]!.end, r[0]!.entries, r[0]!.kind],
      [G1 - 2 * M2, G1 + 2 * M2, 4, "block"],
    );
    mapOk(4 * G1, 2 * G1, 0x80_0000_0000, Prot.RW);
    assert.deepEqual(summary(pgt)[1], [4 * G1, 6 * G1, 1, "block", 2, 0x80_0000_0000]);
  });

  test("shows owner annotations, locked and reserved entries", () => {
    const { pgt, cache, mapOk } = setup();
    cache.topup(4);
    assert.equal(setOwner(pgt, 0x10_0000, 0x2000, cache, 5), Errno.OK);
    assert.equal(setOwner(pgt, 0x10_2000, 0x1000, cache, 6), Errno.OK);
    mapOk(0x20_0000 - 0x2000, 0x2000, 0x8000_0000, Prot.RW);
    // Poke entries directly, as a walker in the middle of break-before-make (or a bug) would leave them.
    Atomics.store(pgt.ptes, findPtep(pgt, 0x20_0000 - 0x2000), PTE_LOCKED);
    Atomics.store(pgt.ptes, findPtep(pgt, 0x20_0000 - 0x1000), 0x8000_1001n); // 0b01 at level 3
    assert.deepEqual(
      collectRanges(pgt).map((r) => [r.start, r.kind, r.entries]),
      [
        [0x10_0000, "owner", 2],
        [0x10_2000, "owner", 1],
        [0x1f_e000, "locked", 1],
        [0x1f_f000, "reserved", 1],
      ],
    );
    const lines = formatRanges(collectRanges(pgt), 4096);
    assert.match(lines[0]!, /^0x0000000000100000-0x0000000000102000 +8K {2}L3 owner {2}owner=5$/);
    assert.match(lines[2]!, /L3 locked descriptor 0x400 \(left locked\)$/);
    assert.match(lines[3]!, /L3 reserved descriptor 0x80001001$/);
  });

  test("formats leaves with size, level, PA, permissions and attributes", () => {
    const { pgt, mapOk } = setup();
    mapOk(0x0, M2, 0x4000_0000, Prot.RW);
    mapOk(M2, 0x4000, 0x5000_0000, Prot.R | Prot.X);
    mapOk(3 * M2, 0x1000, 0x900_0000, Prot.RW | Prot.DEVICE);
    assert.equal(wrprotect(pgt, 0x0, M2), Errno.OK);
    assert.deepEqual(formatRanges(collectRanges(pgt), 4096), [
      "0x0000000000000000-0x0000000000200000        2M  L2 block  PA 0x40000000      R--  normal-wb IS AF",
      "0x0000000000200000-0x0000000000204000       16K  L3 page   PA 0x50000000      R-X  normal-wb IS AF",
      "0x0000000000600000-0x0000000000601000        4K  L3 page   PA 0x9000000       RW-  device-nGnRE IS AF",
    ]);
  });

  test("rangeToJson() gives hex addresses and named attributes", () => {
    const { pgt, mapOk, cache } = setup(16384, 40);
    mapOk(0x0, 2 * 16384, 0x4000_0000, Prot.RWX);
    cache.topup(4);
    setOwner(pgt, 0x10_0000, 16384, cache, 3);
    const [leaf, owner] = collectRanges(pgt).map((r) => rangeToJson(r, 16384));
    assert.deepEqual(leaf, {
      start: "0x0",
      end: "0x8000",
      size: 0x8000,
      level: 3,
      type: "page",
      entries: 2,
      pa: "0x40000000",
      prot: "RWX",
      r: true,
      w: true,
      x: true,
      memAttr: "0xf",
      memAttrName: "normal-wb",
      sh: "IS",
      af: true,
      dbm: false,
      contiguous: false,
      sw: 0,
    });
    assert.deepEqual(owner, {
      start: "0x100000",
      end: "0x104000",
      size: 16384,
      level: 3,
      type: "owner",
      entries: 1,
      descriptor: "0xc",
      owner: 3,
      locked: false,
    });
  });

  test("dumps a sub-range and rejects one outside the IPA space", () => {
    const { pgt, mapOk } = setup();
    mapOk(0x0, 0x1000, 0x8000_0000, Prot.RW);
    mapOk(G1, 0x1000, 0x8000_1000, Prot.RW);
    assert.equal(collectRanges(pgt, G1, G1).length, 1);
    assert.throws(() => collectRanges(pgt, 2 ** 40, 0x1000), RangeError);
  });
});

/** Index in pgt.ptes of the level-3 entry for `ipa` (4K granule, tables already present). */
function findPtep(pgt: Stage2, ipa: number): number {
  let base = pgt.rootPage * pgt.entriesPerPage;
  for (let level = pgt.geo.startLevel; ; level++) {
    const shift = pgt.geo.shifts[level] as number;
    const entries = level === pgt.geo.startLevel ? pgt.geo.pgdPages * pgt.entriesPerPage : pgt.entriesPerPage;
    const idx = Math.floor(ipa / 2 ** shift) % entries;
    if (level === 3) return base + idx;
    const pte = Atomics.load(pgt.ptes, base + idx);
    const next = pgt.pool.paToPage(Number(pte & 0xffff_ffff_f000n));
    assert.ok(next >= 0, `no table at level ${level} for 0x${ipa.toString(16)}`);
    base = next * pgt.entriesPerPage;
  }
}
