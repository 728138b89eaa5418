import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  decodeOa,
  encodeOa,
  INVALID_OWNER_MASK,
  leafAttrBits,
  leafAttrs,
  leafProt,
  makeLeafPte,
  makeOwnerPte,
  makeTablePte,
  Prot,
  PTE_ADDR_64K_HI_MASK,
  PTE_LOCKED,
  PTE_TYPE_MASK,
  pteIsCounted,
  pteIsLocked,
  pteIsTable,
  pteHalves,
  pteOr,
  pteOwner,
  pteValid,
  S2_AF,
  S2_MEMATTR_DEVICE,
  S2_MEMATTR_MASK,
  S2_MEMATTR_NORMAL,
  S2_S2AP_R,
  S2_S2AP_W,
  S2_SH_IS,
  S2_SH_MASK,
  S2_XN,
  SW_MASK,
  SW_SHIFT,
} from "./descriptor.js";
import { GRANULES, type Granule } from "./geometry.js";

/** Bits [hi:lo] of a descriptor as a number. */
function bits(pte: bigint, hi: number, lo: number): number {
  return Number((BigInt.asUintN(64, pte) >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n));
}

describe("leaf attributes", () => {
  test("bit positions match the VMSAv8-64 stage-2 format", () => {
    assert.equal(S2_MEMATTR_MASK, 0xfn << 2n);
    assert.equal(bits(S2_MEMATTR_NORMAL, 5, 2), 0xf);
    assert.equal(bits(S2_MEMATTR_DEVICE, 5, 2), 0x1);
    assert.equal(S2_S2AP_R, 1n << 6n);
    assert.equal(S2_S2AP_W, 1n << 7n);
    assert.equal(S2_SH_MASK, 3n << 8n);
    assert.equal(S2_AF, 1n << 10n);
    assert.equal(S2_XN, 1n << 54n);
    assert.equal(SW_MASK, 0xfn << 55n);
    assert.equal(PTE_LOCKED, 1n << 10n);
    assert.equal(INVALID_OWNER_MASK, 0xffn << 2n);
  });

  test("every prot round-trips through leafAttrs() and leafProt()", () => {
    for (let prot = 0; prot <= 0xf; prot++) {
      if (prot & Prot.DEVICE && prot & Prot.X) continue; // device memory is never executable
      const attrs = leafAttrs(prot);
      assert.equal(leafProt(attrs), prot, `prot ${prot}`);
      assert.equal(bits(attrs, 6, 6), prot & Prot.R ? 1 : 0, `S2AP R for prot ${prot}`);
      assert.equal(bits(attrs, 7, 7), prot & Prot.W ? 1 : 0, `S2AP W for prot ${prot}`);
      assert.equal(bits(attrs, 54, 54), prot & Prot.X ? 0 : 1, `XN for prot ${prot}`);
      assert.equal(bits(attrs, 5, 2), prot & Prot.DEVICE ? 0x1 : 0xf, `MemAttr for prot ${prot}`);
      assert.equal(attrs & S2_SH_MASK, S2_SH_IS, "inner shareable");
      assert.equal(attrs & S2_AF, S2_AF, "access flag set");
      assert.equal(attrs & PTE_TYPE_MASK, 0n, "no type bits in attributes");
    }
  });

  test("software bits 58:55 are passed through and do not disturb the rest", () => {
    for (let sw = 0; sw <= 0xf; sw++) {
      const attrs = leafAttrs(Prot.RW, sw);
      assert.equal(Number((attrs & SW_MASK) >> SW_SHIFT), sw);
      assert.equal(attrs & ~SW_MASK, leafAttrs(Prot.RW));
      assert.equal(leafProt(attrs), Prot.RW);
    }
    assert.equal(leafAttrs(Prot.R, 0x1f) & SW_MASK, 0xfn << SW_SHIFT, "only 4 software bits");
  });
});

describe("output addresses", () => {
  const samples: Record<Granule, number[]> = {
    4096: [0, 0x1000, 0x4000_0000, 0x1234_5678_9000, 2 ** 48 - 0x1000],
    16384: [0, 0x4000, 0x8_0000_4000, 2 ** 48 - 0x4000],
    65536: [0, 0x1_0000, 0x4000_0000, 2 ** 48 - 0x1_0000],
  };

  test("encodeOa()/decodeOa() round-trip granule-aligned addresses below 2^48 for every granule", () => {
    for (const granule of GRANULES) {
      for (const pa of samples[granule]) {
        const oa = encodeOa(pa, granule);
        assert.equal(decodeOa(oa, granule), pa, `${granule}: 0x${pa.toString(16)}`);
        assert.equal(oa & 0xfffn, 0n, "nothing below bit 12");
        assert.equal(oa >> 48n, 0n, "nothing above bit 47");
      }
    }
  });

  test("64K granule with 52-bit PAs: PA[51:48] live in descriptor bits 15:12", () => {
    for (const hi of [0x1, 0x8, 0xf]) {
      const pa = hi * 2 ** 48 + 0xabcd_0000;
      const oa = encodeOa(pa, 65536);
      assert.equal(bits(oa, 15, 12), hi, `PA[51:48] = ${hi}`);
      assert.equal(bits(oa, 47, 16), 0xabcd, "PA[47:16] in place");
      assert.equal(oa >> 48n, 0n, "bits 63:48 stay clear");
      assert.equal(decodeOa(oa, 65536), pa);
      const leaf = makeLeafPte(pa, leafAttrs(Prot.RWX), 2, 65536);
      assert.equal(decodeOa(leaf, 65536), pa);
      assert.equal(leafProt(leaf), Prot.RWX);
    }
    assert.equal(PTE_ADDR_64K_HI_MASK, 0xfn << 12n);
  });

  test("decodeOa() ignores attribute bits and, for 16K and 64K, the address bits below the granule", () => {
    const attrs = leafAttrs(Prot.RWX, 0xf) | S2_XN | (1n << 51n) | (1n << 52n);
    assert.equal(decodeOa(0x4000_0000n | attrs | 3n, 4096), 0x4000_0000);
    assert.equal(decodeOa(0x4000_0000n | 0x3000n | attrs, 16384), 0x4000_0000);
    // Bits 15:12 of a 64K descriptor are PA[51:48], never PA[15:12].
    assert.equal(decodeOa(0x4000_0000n | 0x1000n, 65536), 0x4000_0000 + 2 ** 48);
  });
});

describe("descriptors", () => {
  test("a page at level 3 and a block at levels 1-2 carry the right type bits", () => {
    for (const granule of GRANULES) {
      const attrs = leafAttrs(Prot.RW);
      const page = makeLeafPte(0x8000_0000, attrs, 3, granule);
      const block = makeLeafPte(0x8000_0000, attrs, 2, granule);
      assert.equal(bits(page, 1, 0), 0b11, "page");
      assert.equal(bits(block, 1, 0), 0b01, "block");
      assert.ok(pteValid(page) && pteValid(block));
      assert.equal(pteIsTable(page, 3), false, "bit 1 means page at level 3");
      assert.equal(pteIsTable(block, 2), false);
      assert.equal(decodeOa(page, granule), 0x8000_0000);
      assert.equal(leafAttrBits(page), attrs);
      assert.equal(leafAttrBits(block), attrs);
    }
  });

  test("a table descriptor points at the next table and is a table only above level 3", () => {
    for (const granule of GRANULES) {
      const t = makeTablePte(0x4123_0000, granule);
      assert.equal(bits(t, 1, 0), 0b11);
      assert.ok(pteIsTable(t, 0) && pteIsTable(t, 1) && pteIsTable(t, 2));
      assert.equal(pteIsTable(t, 3), false);
      assert.equal(decodeOa(t, granule), 0x4123_0000);
      assert.equal(leafAttrBits(t), 0n, "no leaf attributes");
    }
  });

  test("leafAttrBits() keeps every attribute and drops type and address", () => {
    const attrs = leafAttrs(Prot.R | Prot.DEVICE, 0x5) | (1n << 51n) | (1n << 52n);
    const pte = makeLeafPte(0x7fff_f000, attrs, 3, 4096);
    assert.equal(leafAttrBits(pte), attrs);
  });

  test("an invalid descriptor with an owner annotation is counted but not valid", () => {
    for (const owner of [1, 0x2a, 0xff]) {
      const pte = makeOwnerPte(owner);
      assert.equal(pteValid(pte), false);
      assert.equal(pteOwner(pte), owner);
      assert.equal(bits(pte, 9, 2), owner);
      assert.equal(pteIsLocked(pte), false);
      assert.equal(pteIsCounted(pte), true);
    }
    assert.equal(makeOwnerPte(0x1ff), makeOwnerPte(0xff), "owner ids are 8 bits");
    assert.equal(pteOwner(0n), 0);
    assert.equal(pteIsCounted(0n), false);
  });

  test("the locked marker is invalid, recognised, and not counted in a table's refcount", () => {
    assert.equal(pteValid(PTE_LOCKED), false);
    assert.equal(pteIsLocked(PTE_LOCKED), true);
    assert.equal(pteIsCounted(PTE_LOCKED), false);
    assert.equal(pteOwner(PTE_LOCKED), 0);
    // Bit 10 of a valid leaf is AF, not the lock.
    assert.equal(pteIsLocked(makeLeafPte(0x1000, leafAttrs(Prot.R), 3, 4096)), false);
    assert.equal(pteIsLocked(0n), false);
    assert.equal(pteIsCounted(makeLeafPte(0x1000, leafAttrs(Prot.R), 3, 4096)), true);
  });
});

describe("pteOr()", () => {
  test("is BigInt(n) | bits for every integer below 2^53, whatever bits the halves hold", () => {
    const bitSets = [
      0n,
      leafAttrs(Prot.RW) | 3n,
      leafAttrs(Prot.R | Prot.X) | 1n,
      (1n << 63n) | (1n << 31n) | 0x7ffn, // both halves' sign bits
      0xffff_ffff_ffff_f000n,
    ];
    const ns = [
      0,
      1,
      0x1000,
      2 ** 31,
      2 ** 32 - 4096,
      2 ** 32,
      2 ** 40 + 0x7000,
      2 ** 48 - 4096,
      2 ** 53 - 1,
    ];
    for (const bits of bitSets) {
      const [lo, hi] = pteHalves(bits);
      assert.equal(BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo >>> 0)), BigInt.asIntN(64, bits));
      for (const n of ns)
        assert.equal(
          pteOr(n, lo, hi),
          BigInt.asIntN(64, BigInt(n) | bits),
          `0x${n.toString(16)} | 0x${bits.toString(16)}`,
        );
    }
  });
});
