import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  archBlockLevels,
  decodeDescriptor,
  decodedToJson,
  formatSize,
  memAttrName,
  permString,
  shareabilityName,
  summarizeDescriptor,
} from "./decode.js";
import { leafAttrs, makeLeafPte, makeOwnerPte, makeTablePte, Prot, PTE_LOCKED } from "./descriptor.js";

// Hand-assembled: PA 0x90001000, page (0b11), MemAttr 0xf, S2AP R, SH 0b11, AF, XN (bit 54).
const PAGE_R = 0x0040_0000_9000_177fn;

describe("decodeDescriptor", () => {
  test("decodes every field of a level-3 page", () => {
    const d = decodeDescriptor(PAGE_R, 3, 4096);
    assert.equal(d.valid, true);
    assert.equal(d.type, "page");
    assert.equal(d.reserved, false);
    assert.equal(d.oa, 0x9000_1000);
    const l = d.leaf!;
    assert.equal(l.memAttr, 0xf);
    assert.equal(l.memAttrName, "normal-wb");
    assert.equal(l.read, true);
    assert.equal(l.write, false);
    assert.equal(l.sh, 3);
    assert.equal(l.shName, "IS");
    assert.equal(l.af, true);
    assert.equal(l.xn, true);
    assert.equal(l.xnx, false);
    assert.equal(l.dbm, false);
    assert.equal(l.contiguous, false);
    assert.equal(l.sw, 0);
    assert.equal(permString(l), "R--");
  });

  test("decodes DBM, contiguous, XN[0] and software bits", () => {
    const pte = PAGE_R | (1n << 51n) | (1n << 52n) | (1n << 53n) | (0xan << 55n);
    const l = decodeDescriptor(pte, 3, 4096).leaf!;
    assert.deepEqual([l.dbm, l.contiguous, l.xnx, l.xn, l.sw], [true, true, true, true, 0xa]);
  });

  test("0b11 is a table at levels 0-2, with the next-level table address", () => {
    for (const level of [0, 1, 2]) {
      const d = decodeDescriptor(0x4000_3003n, level, 4096);
      assert.equal(d.type, "table");
      assert.equal(d.valid, true);
      assert.equal(d.nextTable, 0x4000_3000);
      assert.equal(d.leaf, null);
    }
  });

  test("0b01 is a block where the granule allows one", () => {
    const block = 0x0000_0000_8020_07fdn; // 0x80200000, RW, normal, AF
    assert.equal(decodeDescriptor(block, 1, 4096).type, "block");
    assert.equal(decodeDescriptor(block, 2, 4096).type, "block");
    assert.equal(decodeDescriptor(block, 2, 16384).type, "block");
    assert.equal(decodeDescriptor(block, 2, 65536).type, "block");
    assert.equal(decodeDescriptor(block, 2, 4096).oa, 0x8020_0000);
  });

  test("0b01 at level 3, and at block-less levels, is reserved and reported invalid", () => {
    const cases: [number, 4096 | 16384 | 65536][] = [
      [3, 4096],
      [3, 16384],
      [3, 65536],
      [0, 4096],
      [1, 16384],
      [0, 16384],
      [1, 65536],
    ];
    for (const [level, granule] of cases) {
      const d = decodeDescriptor(0x8020_07fdn, level, granule);
      assert.equal(d.type, "invalid", `L${level} ${granule}`);
      assert.equal(d.valid, false);
      assert.equal(d.reserved, true);
      assert.match(d.note, /translation fault/);
      assert.equal(d.locked, false, "KVM's annotations need bit 0 clear");
      assert.equal(d.owner, 0);
      assert.equal(d.leaf, null);
    }
    assert.match(decodeDescriptor(0x1n, 3, 4096).note, /level 3 is reserved/);
    assert.match(decodeDescriptor(0x1n, 0, 4096).note, /level 0 with the 4K granule/);
  });

  test("invalid descriptors report KVM's locked marker and owner id", () => {
    const empty = decodeDescriptor(0n, 2, 4096);
    assert.deepEqual(
      [empty.type, empty.valid, empty.locked, empty.owner, empty.reserved],
      ["invalid", false, false, 0, false],
    );
    assert.equal(decodeDescriptor(PTE_LOCKED, 3, 4096).locked, true);
    const owned = decodeDescriptor(makeOwnerPte(0xab), 1, 4096);
    assert.deepEqual([owned.locked, owned.owner], [false, 0xab]);
    const both = decodeDescriptor(makeOwnerPte(5) | PTE_LOCKED, 3, 4096);
    assert.deepEqual([both.locked, both.owner], [true, 5]);
  });

  test("output addresses follow the granule: 16K drops bits 13:12, 64K reads OA[51:48] from 15:12", () => {
    assert.equal(decodeDescriptor(0x4000_7003n, 3, 16384).oa, 0x4000_4000);
    const hi = 0x0001_2345_0000n | (0x3n << 12n) | 3n;
    assert.equal(decodeDescriptor(hi, 3, 65536).oa, 0x3_0001_2345_0000);
    assert.equal(decodeDescriptor(makeTablePte(0x4_0000_0000, 65536), 2, 65536).nextTable, 0x4_0000_0000);
  });

  test("agrees with the encoders for every prot", () => {
    for (let prot = 1; prot <= (Prot.RWX | Prot.DEVICE); prot++) {
      if ((prot & Prot.RWX) === 0) continue;
      const pte = makeLeafPte(0x4020_0000, leafAttrs(prot, 3), 2, 4096);
      const d = decodeDescriptor(pte, 2, 4096);
      assert.equal(d.type, "block");
      assert.equal(d.oa, 0x4020_0000);
      const l = d.leaf!;
      assert.equal(l.read, (prot & Prot.R) !== 0);
      assert.equal(l.write, (prot & Prot.W) !== 0);
      assert.equal(l.xn, (prot & Prot.X) === 0);
      assert.equal(l.memAttrName, prot & Prot.DEVICE ? "device-nGnRE" : "normal-wb");
      assert.equal(l.sw, 3);
      assert.equal(l.af, true);
    }
  });

  test("reads negative BigInts as 64-bit two's complement and rejects bad levels", () => {
    assert.equal(decodeDescriptor(-1n, 3, 4096).raw, (1n << 64n) - 1n);
    assert.throws(() => decodeDescriptor(0n, 4, 4096), RangeError);
    assert.throws(() => decodeDescriptor(0n, -1, 4096), RangeError);
  });
});

describe("names", () => {
  test("memAttrName() names device types and normal cacheability", () => {
    assert.equal(memAttrName(0x0), "device-nGnRnE");
    assert.equal(memAttrName(0x1), "device-nGnRE");
    assert.equal(memAttrName(0x2), "device-nGRE");
    assert.equal(memAttrName(0x3), "device-GRE");
    assert.equal(memAttrName(0x5), "normal-nc");
    assert.equal(memAttrName(0xa), "normal-wt");
    assert.equal(memAttrName(0xf), "normal-wb");
    assert.equal(memAttrName(0xd), "normal-owb-inc");
    assert.equal(memAttrName(0x4), "reserved(0x4)");
  });

  test("shareabilityName() names SH[1:0]", () => {
    assert.deepEqual([0, 1, 2, 3].map(shareabilityName), ["NS", "reserved", "OS", "IS"]);
  });

  test("archBlockLevels() and formatSize()", () => {
    assert.deepEqual(archBlockLevels(4096), [1, 2]);
    assert.deepEqual(archBlockLevels(16384), [2]);
    assert.deepEqual(archBlockLevels(65536), [2]);
    assert.deepEqual([4096, 2 ** 21, 2 ** 30, 3 * 2 ** 19, 2 ** 40, 100].map(formatSize), [
      "4K",
      "2M",
      "1G",
      "1536K",
      "1T",
      "100",
    ]);
  });

  test("summarizeDescriptor() gives one line per kind", () => {
    assert.equal(
      summarizeDescriptor(decodeDescriptor(PAGE_R, 3, 4096)),
      "L3 page PA 0x90001000 R-- normal-wb IS AF",
    );
    assert.equal(summarizeDescriptor(decodeDescriptor(0x4000_3003n, 1, 4096)), "L1 table next 0x40003000");
    assert.equal(summarizeDescriptor(decodeDescriptor(0n, 2, 4096)), "L2 invalid (empty)");
    assert.equal(summarizeDescriptor(decodeDescriptor(makeOwnerPte(7), 3, 4096)), "L3 invalid owner=7");
    assert.match(summarizeDescriptor(decodeDescriptor(1n, 3, 4096)), /^L3 reserved \(/);
  });
});

describe("decodedToJson", () => {
  test("has the documented keys for each kind", () => {
    const page = decodedToJson(decodeDescriptor(PAGE_R, 3, 4096), true);
    assert.equal(page.valid, true);
    assert.equal(page.type, "page");
    assert.equal(page.oa, "0x90001000");
    assert.equal(page.levelAssumed, true);
    assert.equal(page.memAttrName, "normal-wb");
    assert.deepEqual(page.s2ap, { r: true, w: false, raw: 1 });
    assert.equal("locked" in page, false);
    const inv = decodedToJson(decodeDescriptor(makeOwnerPte(9), 3, 4096));
    assert.deepEqual(
      [inv.valid, inv.type, inv.locked, inv.owner, "oa" in inv],
      [false, "invalid", false, 9, false],
    );
    const table = decodedToJson(decodeDescriptor(0x4000_3003n, 2, 4096));
    assert.equal(table.nextTable, "0x40003000");
    const reserved = decodedToJson(decodeDescriptor(1n, 3, 4096));
    assert.deepEqual(
      [reserved.type, reserved.reserved, reserved.locked, reserved.owner],
      ["invalid", true, false, 0],
    );
    assert.equal(typeof reserved.note, "string");
    assert.doesNotThrow(() => JSON.stringify(page));
  });
});
