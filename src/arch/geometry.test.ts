import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  blockAllowedAt,
  computeGeometry,
  GRANULES,
  type Granule,
  levelShift,
  levelSize,
  maxIaBits,
  parseGranule,
  VTCR_RES1,
} from "./geometry.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Every IPA size a granule supports (32 up to its maximum), with a PA size large enough for it. */
function everyConfig(): { granule: Granule; iaBits: number; paBits: number }[] {
  const out: { granule: Granule; iaBits: number; paBits: number }[] = [];
  for (const granule of GRANULES) {
    for (let iaBits = 32; iaBits <= maxIaBits(granule); iaBits++) {
      out.push({ granule, iaBits, paBits: iaBits > 48 ? 52 : 48 });
    }
  }
  return out;
}

function label(granule: Granule, iaBits: number): string {
  return `${granule / KiB}K/${iaBits}`;
}

describe("levelShift()", () => {
  test("matches the architecture's shifts for every granule and level", () => {
    const expected: Record<Granule, number[]> = {
      4096: [39, 30, 21, 12],
      16384: [47, 36, 25, 14],
      65536: [55, 42, 29, 16],
    };
    for (const granule of GRANULES) {
      const pageShift = Math.log2(granule);
      assert.deepEqual(
        [0, 1, 2, 3].map((l) => levelShift(pageShift, l)),
        expected[granule],
        `${granule / KiB}K`,
      );
      assert.deepEqual(computeGeometry(granule, 40).shifts, expected[granule]);
    }
  });
});

describe("computeGeometry()", () => {
  test("4K with a 40-bit IPA: 3 levels from level 1, 2 concatenated start tables", () => {
    const g = computeGeometry(4096, 40);
    assert.equal(g.levels, 3);
    assert.equal(g.startLevel, 1);
    assert.equal(g.pgdPages, 2);
    assert.equal(g.entriesPerPage, 512);
    assert.equal(g.pageShift, 12);
    assert.deepEqual(g.blockLevels, [1, 2]);
    assert.deepEqual(g.blockSizes, [GiB, 2 * MiB]);
    assert.equal(g.ipaSize, 2 ** 40);
  });

  test("4K with a 32-bit IPA: 2 levels from level 2, 4 concatenated start tables, 2M blocks only", () => {
    const g = computeGeometry(4096, 32);
    assert.equal(g.levels, 2);
    assert.equal(g.startLevel, 2);
    assert.equal(g.pgdPages, 4);
    assert.deepEqual(g.blockLevels, [2]);
    assert.deepEqual(g.blockSizes, [2 * MiB]);
  });

  test("known geometries of other granules and IPA sizes", () => {
    const cases: [Granule, number, number, number, number][] = [
      // granule, iaBits, levels, startLevel, pgdPages
      [4096, 36, 3, 1, 1],
      [4096, 39, 3, 1, 1],
      [4096, 43, 3, 1, 16],
      [4096, 44, 4, 0, 1],
      [4096, 48, 4, 0, 1],
      [16384, 32, 2, 2, 1],
      [16384, 40, 2, 2, 16],
      [16384, 42, 3, 1, 1],
      [16384, 48, 3, 1, 2],
      [65536, 32, 2, 2, 1],
      [65536, 42, 2, 2, 1],
      [65536, 46, 2, 2, 16],
      [65536, 48, 3, 1, 1],
      [65536, 52, 3, 1, 1],
    ];
    for (const [granule, iaBits, levels, startLevel, pgdPages] of cases) {
      const g = computeGeometry(granule, iaBits, iaBits > 48 ? 52 : 48);
      assert.deepEqual(
        [g.levels, g.startLevel, g.pgdPages],
        [levels, startLevel, pgdPages],
        label(granule, iaBits),
      );
    }
  });

  test("for every granule and IPA size the start-level tables cover exactly the IPA space", () => {
    for (const { granule, iaBits, paBits } of everyConfig()) {
      const g = computeGeometry(granule, iaBits, paBits);
      const name = label(granule, iaBits);
      const pageShift = Math.log2(granule);
      assert.equal(g.levels, Math.max(2, Math.floor((iaBits - 8) / (pageShift - 3))), name);
      assert.equal(g.startLevel, 4 - g.levels, name);
      assert.ok(g.pgdPages >= 1 && g.pgdPages <= 16, `${name}: ${g.pgdPages} start pages`);
      const perPage = g.entriesPerPage * levelSize(g, g.startLevel);
      // Enough pages to translate every IPA, and not one page more.
      assert.ok(g.pgdPages * perPage >= 2 ** iaBits, `${name}: start tables too small`);
      assert.ok((g.pgdPages - 1) * perPage < 2 ** iaBits, `${name}: one start table too many`);
      // The levels below the start level resolve exactly down to the page.
      assert.equal(g.shifts[3], pageShift, name);
      assert.equal(g.entriesPerPage, granule / 8, name);
    }
  });

  test("block levels: 4K at levels 1 and 2, 16K and 64K at level 2, never above the start level", () => {
    for (const { granule, iaBits, paBits } of everyConfig()) {
      const g = computeGeometry(granule, iaBits, paBits);
      const name = label(granule, iaBits);
      const allowed = granule === 4096 ? [1, 2] : [2];
      assert.deepEqual(
        g.blockLevels,
        allowed.filter((l) => l >= g.startLevel),
        name,
      );
      assert.deepEqual(
        g.blockSizes,
        g.blockLevels.map((l) => levelSize(g, l)),
        name,
      );
      for (let level = 0; level <= 3; level++) {
        assert.equal(
          blockAllowedAt(g, level),
          level === 3 || g.blockLevels.includes(level),
          `${name} L${level}`,
        );
      }
    }
    assert.deepEqual(computeGeometry(16384, 40).blockSizes, [32 * MiB]);
    assert.deepEqual(computeGeometry(65536, 42).blockSizes, [512 * MiB]);
  });

  test("VTCR_EL2 fields for 4K/40 with 48-bit PAs", () => {
    const v = computeGeometry(4096, 40, 48).vtcr;
    assert.equal(v & 0x3f, 24, "T0SZ = 64 - 40");
    assert.equal((v >>> 6) & 3, 1, "SL0 = 2 - start level 1");
    assert.equal((v >>> 8) & 3, 1, "IRGN0 write-back write-allocate");
    assert.equal((v >>> 10) & 3, 1, "ORGN0 write-back write-allocate");
    assert.equal((v >>> 12) & 3, 3, "SH0 inner shareable");
    assert.equal((v >>> 14) & 3, 0, "TG0 4K");
    assert.equal((v >>> 16) & 7, 5, "PS 48 bits");
    assert.equal(v >>> 31, 1, "bit 31 RES1");
    assert.equal(v, (24 | (1 << 6) | (1 << 8) | (1 << 10) | (3 << 12) | (5 << 16) | VTCR_RES1) >>> 0);
  });

  test("VTCR_EL2 TG0, SL0 and PS for every granule and IPA size", () => {
    const tg0: Record<Granule, number> = { 4096: 0, 65536: 1, 16384: 2 };
    const sl0Base: Record<Granule, number> = { 4096: 2, 16384: 3, 65536: 3 };
    for (const { granule, iaBits, paBits } of everyConfig()) {
      const g = computeGeometry(granule, iaBits, paBits);
      const name = label(granule, iaBits);
      assert.equal(g.vtcr & 0x3f, 64 - iaBits, `${name} T0SZ`);
      assert.equal((g.vtcr >>> 6) & 3, sl0Base[granule] - g.startLevel, `${name} SL0`);
      assert.equal((g.vtcr >>> 14) & 3, tg0[granule], `${name} TG0`);
      assert.equal((g.vtcr >>> 16) & 7, paBits === 52 ? 6 : 5, `${name} PS`);
      assert.ok(g.vtcr >= 0 && g.vtcr < 2 ** 32, `${name} unsigned 32-bit`);
    }
    const ps = [32, 36, 40, 42, 44, 48, 52].map((pa) => (computeGeometry(65536, 32, pa).vtcr >>> 16) & 7);
    assert.deepEqual(ps, [0, 1, 2, 3, 4, 5, 6]);
  });

  test("an impossible combination throws a RangeError that names it", () => {
    const cases: [Granule, number, number | undefined, RegExp][] = [
      [4096, 31, undefined, /Unsupported IPA size 31 bits with the 4K granule: use 32 to 48/],
      [4096, 49, 52, /Unsupported IPA size 49 bits with the 4K granule/],
      [16384, 52, 52, /Unsupported IPA size 52 bits with the 16K granule: use 32 to 48/],
      [65536, 53, 52, /Unsupported IPA size 53 bits with the 64K granule: use 32 to 52/],
      [4096, 40.5, undefined, /Unsupported IPA size 40.5 bits/],
      [65536, 52, 48, /IPA size 52 bits exceeds the 48-bit physical address size/],
      [4096, 40, 50, /Unsupported PA size 50 bits: use one of 32, 36, 40, 42, 44, 48, 52/],
      [8192 as Granule, 40, undefined, /Unsupported granule 8192/],
      [4096, 40, 52, /52-bit output addresses need the 64K granule/],
      [16384, 40, 52, /52-bit output addresses need the 64K granule/],
    ];
    for (const [granule, iaBits, paBits, message] of cases) {
      assert.throws(() => computeGeometry(granule, iaBits, paBits), { name: "RangeError", message });
    }
  });
});

describe("parseGranule()", () => {
  test("accepts sizes with K suffixes and in bytes, rejects anything else", () => {
    assert.equal(parseGranule("4k"), 4096);
    assert.equal(parseGranule(" 16K "), 16384);
    assert.equal(parseGranule("65536"), 65536);
    assert.equal(parseGranule("8k"), undefined);
    assert.equal(parseGranule(""), undefined);
  });
});
