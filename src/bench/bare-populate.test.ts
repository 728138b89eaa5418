import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Granule } from "../arch/geometry.js";
import { BarePopulate, timeBarePopulate } from "./bare-populate.js";

const GIB = 2 ** 30;

describe("BarePopulate", () => {
  for (const [granule, iaBits, tables] of [
    [4096, 40, 2 + 1 + 32],
    [4096, 48, 1 + 1 + 1 + 32],
    [16384, 40, 16 + 2],
    [65536, 42, 1 + 1],
  ] as [Granule, number, number][]) {
    test(`populate() maps every page once with its own descriptor (${granule / 1024}K, ${iaBits}-bit)`, () => {
      const bytes = 64 * 2 ** 20;
      const bare = new BarePopulate(granule, iaBits, bytes, GIB);
      assert.equal(bare.populate(GIB, bytes), bytes / granule);
      assert.equal(bare.tablePages, tables, "one table per level and span touched, from the bump pointer");
      for (let ipa = GIB; ipa < GIB + bytes; ipa += granule) {
        const pte = bare.lookup(ipa);
        assert.equal(pte & 3n, 3n, `page descriptor at 0x${ipa.toString(16)}`);
        assert.equal(
          Number(pte & 0xffff_ffff_f000n),
          ipa + 2 ** 40,
          `output address of 0x${ipa.toString(16)}`,
        );
      }
      assert.equal(bare.lookup(GIB + bytes), 0n, "nothing mapped past the range");
      assert.equal(bare.populate(GIB, bytes), 0, "the leaf CAS expects an empty entry");
      bare.reset();
      assert.equal(bare.lookup(GIB), 0n);
      assert.equal(bare.populate(GIB, bytes), bytes / granule, "reset() empties the table");
    });
  }

  test("a range beyond the IPA space is refused", () => {
    assert.throws(() => new BarePopulate(4096, 32, GIB, 4 * GIB - 4096), RangeError);
  });

  test("timeBarePopulate() returns one finite figure per counted round", () => {
    const ns = timeBarePopulate(4096, 40, 2 ** 21, GIB, 3);
    assert.equal(ns.length, 3);
    for (const x of ns) assert.ok(Number.isFinite(x) && x > 0);
  });
});
