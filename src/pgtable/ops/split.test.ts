import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  assertErr,
  assertNoLeak,
  assertSound,
  auditTree,
  makeFixture,
  strayPages,
  translate,
} from "../../testing/pgtable-harness.js";
import { decodeOa, leafAttrBits, leafProt, Prot, S2_AF } from "../../arch/descriptor.js";
import { Errno } from "../../common/errno.js";
import {
  createUnlinked,
  freeSubtreeNow,
  map,
  pagesToSplit,
  split,
  testClearYoung,
  wrprotect,
} from "../mod.js";

const P = 4096;
const M2 = 2 ** 21;
const G = 2 ** 30;
const PA = 8 * G;

describe("createUnlinked()", () => {
  test("builds a detached table of pages for a 2M block", () => {
    const fx = makeFixture();
    const { pgt, mc, pool } = fx;
    mc.topup(4);
    const root = createUnlinked(pgt, PA + M2, 2, Prot.RW, mc, true);
    assert.ok(root >= 0, `createUnlinked returned ${root}`);
    assert.equal(mc.count, 15);
    assert.equal(pool.level(root), 3);
    assert.equal(pool.refcount(root), 1 + 512);
    for (const i of [0, 1, 311, 511]) {
      const pte = pgt.ptes[root * 512 + i]!;
      assert.equal(decodeOa(pte, 4096), PA + M2 + i * P);
      assert.equal(leafProt(pte), Prot.RW);
      assert.equal(pte & 3n, 3n, "page descriptor");
    }
    assert.equal(auditTree(pgt).tables, 1, "nothing was linked");
    assert.equal(freeSubtreeNow(pgt, root, 2), 1);
    assertNoLeak(fx);
  });

  test("a 1G block needs 513 pages down to pages, or one page of 2M blocks", () => {
    const fx = makeFixture({ pages: 2048, cache: 600 });
    const { pgt, mc, pool } = fx;
    assert.equal(pagesToSplit(pgt, 1), 513);
    assert.equal(pagesToSplit(pgt, 2), 1);
    mc.topup(600);
    const pages = createUnlinked(pgt, PA, 1, Prot.R, mc, true);
    assert.equal(600 - mc.count, 513);
    const l3 = pool.paToPage(decodeOa(pgt.ptes[pages * 512 + 7]!, 4096));
    assert.equal(decodeOa(pgt.ptes[l3 * 512 + 5]!, 4096), PA + 7 * M2 + 5 * P);
    assert.equal(freeSubtreeNow(pgt, pages, 1), 513);
    const blocks = createUnlinked(pgt, PA, 1, Prot.R, mc, false);
    assert.equal(pool.refcount(blocks), 513);
    const pte = pgt.ptes[blocks * 512 + 9]!;
    assert.deepEqual([pte & 3n, decodeOa(pte, 4096)], [1n, PA + 9 * M2], "a 2M block");
    assert.equal(freeSubtreeNow(pgt, blocks, 1), 1);
    assertNoLeak(fx);
  });

  test("returns ENOMEM when the cache runs dry part way, and leaks nothing", () => {
    const fx = makeFixture({ cache: 16 });
    const { pgt, mc } = fx;
    mc.topup(16);
    assertErr(createUnlinked(pgt, PA, 1, Prot.R, mc, true), Errno.NOMEM, "16 of 513 pages");
    assert.equal(mc.count, 0, "the cache was used up");
    assert.equal(strayPages(pgt, assertSound(pgt), mc.count), 0, "every page taken went back");
    assertErr(createUnlinked(pgt, PA, 2, Prot.R, mc, true), Errno.NOMEM, "empty cache");
    assertNoLeak(fx);
  });

  test("returns EINVAL for a level without tables below it, a misaligned PA or a bad prot", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    assertErr(createUnlinked(pgt, PA, 3, Prot.R, mc, true), Errno.INVAL, "level 3");
    assertErr(createUnlinked(pgt, PA, 0, Prot.R, mc, true), Errno.INVAL, "above the start level");
    assertErr(createUnlinked(pgt, PA + P, 2, Prot.R, mc, true), Errno.INVAL, "PA not 2M aligned");
    assertErr(createUnlinked(pgt, PA, 2, 0x40, mc, true), Errno.INVAL, "bad prot");
    assert.equal(mc.count, 16);
    assertNoLeak(fx);
  });
});

describe("split()", () => {
  test("splits every 2M block in the range to pages, keeping translation and attributes", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(8);
    map(pgt, G, 4 * M2, PA, Prot.RWX, mc);
    wrprotect(pgt, G + M2, M2);
    testClearYoung(pgt, G + 2 * M2, M2, true);
    const attrs = [0, 1, 2, 3].map((i) => leafAttrBits(translate(pgt, G + i * M2).pte));
    const cached = mc.count;
    assertErr(split(pgt, G + M2 + 5 * P, 2 * M2, mc), Errno.OK, "split three blocks");
    assert.equal(cached - mc.count, 3);
    assert.equal(translate(pgt, G).level, 2, "the first block was outside the range");
    for (let i = 1; i < 4; i++) {
      for (const off of [0, P, M2 - P]) {
        const t = translate(pgt, G + i * M2 + off);
        assert.equal(t.level, 3);
        assert.equal(t.pa, PA + i * M2 + off);
        assert.equal(leafAttrBits(t.pte), attrs[i], `attributes of block ${i}`);
      }
    }
    assert.equal(translate(pgt, G + 2 * M2).pte & S2_AF, 0n, "an old block splits into old pages");
    const c = pgt.maint.counts();
    assert.deepEqual([c.tlbiIpa, c.tlbiRange], [3, 0], "one TLBI by IPA per block broken");
    assertSound(pgt);
    assertNoLeak(fx);
  });

  test("splits a 1G block straight to pages when the cache holds enough", () => {
    const fx = makeFixture({ pages: 2048, cache: 600 });
    const { pgt, mc } = fx;
    map(pgt, G, G, PA, Prot.RW, null);
    mc.topup(600);
    assertErr(split(pgt, G, G, mc), Errno.OK, "split");
    assert.equal(600 - mc.count, 513);
    const audit = assertSound(pgt);
    assert.equal(audit.leaves.length, 512 * 512);
    assert.ok(audit.leaves.every((l) => l.level === 3 && decodeOa(l.pte, 4096) === PA + (l.ipa - G)));
    assertNoLeak(fx);
  });

  test("with a small cache splits one level at a time and stops with ENOMEM", () => {
    const fx = makeFixture({ cache: 4 });
    const { pgt, mc } = fx;
    map(pgt, G, G, PA, Prot.R, null);
    mc.topup(4);
    const start = G + 5 * M2 + 3 * P;
    assertErr(split(pgt, start, G - 5 * M2 - 3 * P, mc), Errno.NOMEM, "split with 4 pages");
    assert.equal(mc.count, 0);
    // 1G -> 512 2M blocks (one page), then the blocks from the walk's address on, one page each.
    const levels = [0, 4, 5, 6, 7, 8].map((i) => translate(pgt, G + i * M2 + M2 - P).level);
    assert.deepEqual(levels, [2, 2, 3, 3, 3, 2]);
    for (const ipa of [G, start, G + 8 * M2 + 77 * P, 2 * G - P]) {
      assert.equal(translate(pgt, ipa).pa, PA + (ipa - G), "translation kept");
    }
    assertSound(pgt);
    mc.topup(4);
    assertErr(split(pgt, G + 8 * M2, 4 * M2, mc), Errno.OK, "what was split stays split; the rest follows");
    assert.equal(translate(pgt, G + 11 * M2).level, 3);
    assertNoLeak(fx);
  });

  test("returns ENOMEM with an empty cache and changes nothing; OK where nothing needs splitting", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.R, mc);
    map(pgt, G + M2, M2, PA, Prot.R, mc);
    mc.drain();
    assertErr(split(pgt, G, M2, mc), Errno.OK, "pages and holes only");
    assertErr(split(pgt, G, 2 * M2, mc), Errno.NOMEM, "a block and no pages");
    assert.equal(translate(pgt, G + M2).level, 2);
    assertErr(split(pgt, G + 1, P, mc), Errno.INVAL, "misaligned");
    assertErr(split(pgt, 2 ** 36, P, mc), Errno.RANGE, "beyond");
    assertSound(pgt);
    assertNoLeak(fx);
  });
});
