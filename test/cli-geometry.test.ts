/**
 * Geometry against first principles: test/independent/geometry_check.py (stand-alone Python, no
 * project code) derives levels, start level, concatenated pages, block sizes and VTCR_EL2 for every
 * granule and IPA size; computeGeometry and `stage2 geometry --json` must agree with it exactly.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { computeGeometry, type Granule } from "../src/arch/geometry.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const CHECK = fileURLToPath(new URL("../../test/independent/geometry_check.py", import.meta.url));

interface Row {
  granule: Granule;
  iaBits: number;
  paBits: number;
  levels: number;
  startLevel: number;
  pgdPages: number;
  blockSizes: number[];
  vtcr: string;
}

function firstPrinciples(args: string[] = []): Row[] {
  const r = spawnSync("python3", [CHECK, ...args], { encoding: "utf8" });
  assert.equal(r.error, undefined, `python3 must be installed: ${r.error}`);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

function project(row: Row): Omit<Row, "granule" | "iaBits" | "paBits"> {
  const g = computeGeometry(row.granule, row.iaBits, row.paBits);
  return {
    levels: g.levels,
    startLevel: g.startLevel,
    pgdPages: g.pgdPages,
    blockSizes: [...g.blockSizes],
    vtcr: `0x${g.vtcr.toString(16)}`,
  };
}

function strip(row: Row): Omit<Row, "granule" | "iaBits" | "paBits"> {
  const { granule: _g, iaBits: _i, paBits: _p, ...rest } = row;
  return rest;
}

describe("geometry matches an independent first-principles derivation", () => {
  test("computeGeometry() for every granule and IPA size (PA 48, or 52 above 48 bits)", () => {
    const rows = firstPrinciples();
    assert.equal(rows.length, 17 + 17 + 21, "4K 32..48, 16K 32..48, 64K 32..52");
    for (const row of rows) assert.deepEqual(project(row), strip(row), `${row.granule}/${row.iaBits}`);
  });

  test("computeGeometry() with every other PA size encoding", () => {
    for (const pa of [32, 36, 40, 42, 44]) {
      const rows = firstPrinciples(["--pa-bits", String(pa)]);
      assert.ok(rows.length > 0);
      for (const row of rows)
        assert.deepEqual(project(row), strip(row), `${row.granule}/${row.iaBits}/PA${pa}`);
    }
  });

  test("stage2 geometry --json for a sample of configurations", () => {
    const rows = firstPrinciples();
    const sample = rows.filter((r) => [32, 33, 40, 42, 47, 48, 52].includes(r.iaBits));
    for (const row of sample) {
      const r = spawnSync(
        process.execPath,
        [
          MAIN,
          "geometry",
          "--granule",
          String(row.granule),
          "--ia-bits",
          String(row.iaBits),
          "--pa-bits",
          String(row.paBits),
          "--json",
        ],
        { encoding: "utf8" },
      );
      assert.equal(r.status, 0, r.stderr);
      const g = JSON.parse(r.stdout);
      assert.deepEqual(
        {
          levels: g.levels,
          startLevel: g.startLevel,
          pgdPages: g.pgdPages,
          blockSizes: g.blockSizes,
          vtcr: g.vtcr,
        },
        strip(row),
        `${row.granule}/${row.iaBits}`,
      );
    }
  });
});
