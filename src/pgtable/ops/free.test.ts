import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  assertErr,
  assertNoLeak,
  assertSound,
  makeFixture,
  strayPages,
  translate,
} from "../../testing/pgtable-harness.js";
import { decodeOa, Prot } from "../../arch/descriptor.js";
import { Errno } from "../../common/errno.js";
import {
  createUnlinked,
  destroy,
  freeSubtreeNow,
  getLeaf,
  LeafResult,
  map,
  setOwner,
  split,
  unmap,
  wrprotect,
} from "../mod.js";

const P = 4096;
const M2 = 2 ** 21;
const G = 2 ** 30;
const PA = 8 * G;

describe("unmap()", () => {
  test("removes a page and frees the tables that become empty", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G + P, P, PA, Prot.RW, mc);
    assertErr(unmap(pgt, G + P, P), Errno.OK, "unmap");
    assert.equal(translate(pgt, G + P).pte, 0n);
    const audit = assertSound(pgt);
    assert.equal(audit.tables, 1, "only the start-level table is left");
    assert.equal(strayPages(pgt, audit, mc.count), 0);
    assert.equal(pgt.stats().tablesFreed, 2);
    const c = pgt.maint.counts();
    assert.equal(c.tlbiIpa, 1, "the page");
    assert.equal(c.tlbiRange, 2, "the L3 and L2 tables");
    assertNoLeak(fx);
  });

  test("keeps a table whose other entries are still in use, with refcount 1 + entries", () => {
    const fx = makeFixture();
    const { pgt, mc, pool } = fx;
    mc.topup(4);
    map(pgt, G, 3 * P, PA, Prot.RW, mc);
    const root = pgt.rootPage;
    const l2 = pool.paToPage(decodeOa(pgt.ptes[root * 512 + 1]!, 4096));
    const l3 = pool.paToPage(decodeOa(pgt.ptes[l2 * 512]!, 4096));
    assert.equal(pool.refcount(l3), 4);
    assertErr(unmap(pgt, G + P, P), Errno.OK, "unmap the middle page");
    assert.equal(pool.refcount(l3), 3);
    assert.equal(pool.refcount(l2), 2);
    assert.equal(translate(pgt, G).pa, PA);
    assert.equal(translate(pgt, G + 2 * P).pa, PA + 2 * P);
    assertSound(pgt);
    assertNoLeak(fx);
  });

  test("a walk over part of a table frees the table only once it is really empty", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.RW, mc);
    map(pgt, G + M2 - P, P, PA, Prot.RW, mc);
    assertErr(unmap(pgt, G + P, M2 - 2 * P), Errno.OK, "unmap the hole between the two pages");
    assert.equal(assertSound(pgt).tables, 3);
    assertErr(unmap(pgt, G, P), Errno.OK, "first page");
    assert.equal(assertSound(pgt).tables, 3);
    assertErr(unmap(pgt, G + M2 - P, P), Errno.OK, "last page");
    assert.equal(assertSound(pgt).tables, 1);
    assertNoLeak(fx);
  });

  test("removes the whole block when the range covers only part of it (as Linux)", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, 2 * M2, PA, Prot.RW, mc);
    map(pgt, 2 * G, G, PA, Prot.RW, mc);
    assertErr(unmap(pgt, G + M2 + 5 * P, P), Errno.OK, "unmap a page of the second 2M block");
    assertErr(unmap(pgt, 2 * G + 7 * M2, P), Errno.OK, "unmap a page of the 1G block");
    assert.equal(translate(pgt, G + M2).pte, 0n);
    assert.equal(translate(pgt, G + 2 * M2 - P).pte, 0n);
    assert.equal(translate(pgt, G).pa, PA, "the first 2M block is untouched");
    assert.equal(translate(pgt, 2 * G).pte, 0n);
    assert.equal(translate(pgt, 3 * G - P).pte, 0n);
    const c = pgt.maint.counts();
    assert.deepEqual([c.tlbiIpa, c.tlbiRange], [2, 0]);
    assertSound(pgt);
    assertNoLeak(fx);
  });

  test("unmaps a range across several tables and levels", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(8);
    map(pgt, G - 3 * P, 2 * M2 + 6 * P, PA, Prot.RW, mc);
    map(pgt, 3 * G, P, PA, Prot.RW, mc);
    assertErr(unmap(pgt, 0, 3 * G), Errno.OK, "unmap 0..3G");
    const audit = assertSound(pgt);
    assert.deepEqual(
      audit.leaves.map((l) => l.ipa),
      [3 * G],
    );
    assert.equal(strayPages(pgt, audit, mc.count), 0);
    assertNoLeak(fx);
  });

  test("cleans the data cache of normal memory only", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, 0, P, PA, Prot.RW, mc);
    map(pgt, P, P, PA + P, Prot.RW | Prot.DEVICE, mc);
    const before = pgt.maint.counts().dcacheClean;
    unmap(pgt, 0, 2 * P);
    assert.equal(pgt.maint.counts().dcacheClean - before, 1);
    assertNoLeak(fx);
  });

  test("is OK over nothing, EINVAL when misaligned, ERANGE beyond the IPA space", () => {
    const fx = makeFixture();
    const { pgt } = fx;
    assertErr(unmap(pgt, G, G), Errno.OK, "nothing mapped");
    assertErr(unmap(pgt, G + 1, P), Errno.INVAL, "misaligned address");
    assertErr(unmap(pgt, G, P - 1), Errno.INVAL, "misaligned size");
    assertErr(unmap(pgt, G, 0), Errno.INVAL, "empty");
    assertErr(unmap(pgt, 2 ** 36 - P, 2 * P), Errno.RANGE, "beyond the IPA space");
    assertNoLeak(fx);
  });
});

describe("destroy()", () => {
  test("returns every page after pages, blocks, owners, splits and unlinked subtrees", () => {
    const fx = makeFixture({ pages: 2048, cache: 600 });
    const { pgt, mc, pool } = fx;
    mc.topup(600);
    map(pgt, 0, G + 5 * M2 + 17 * P, PA, Prot.RW, mc);
    map(pgt, 4 * G, G, PA, Prot.R, mc);
    setOwner(pgt, 6 * G + 3 * P, 2 * P, mc, 5);
    split(pgt, 4 * G, M2 * 3, mc);
    wrprotect(pgt, 0, G);
    const orphan = createUnlinked(pgt, PA, 2, Prot.R, mc, true);
    assert.ok(orphan >= 0);
    freeSubtreeNow(pgt, orphan, 2);
    assertSound(pgt);
    assertNoLeak(fx);
    assert.equal(pool.stats().allocated, 0);
  });

  test("marks the table destroyed: later walks and a second destroy return EINVAL", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.RW, mc);
    assertNoLeak(fx);
    assert.equal(pgt.rootPage, -1);
    assert.equal(pgt.rootPa, -1);
    assertErr(destroy(pgt), Errno.INVAL, "destroy again");
    assertErr(map(pgt, G, P, PA, Prot.RW, mc), Errno.INVAL, "map");
    assertErr(unmap(pgt, G, P), Errno.INVAL, "unmap");
    assertErr(getLeaf(pgt, G, new LeafResult()), Errno.INVAL, "getLeaf");
  });

  test("frees all 16 concatenated start-level pages", () => {
    const fx = makeFixture({ granule: 16384, iaBits: 40, pages: 64 });
    const { pgt, mc, pool } = fx;
    assert.equal(pgt.geo.pgdPages, 16);
    mc.topup(4);
    map(pgt, 2 ** 40 - 2 ** 14, 2 ** 14, PA, Prot.RW, mc);
    assert.equal(pool.allocatedPages().length, 16 + 1 + mc.count);
    assertSound(pgt);
    assertNoLeak(fx);
  });
});

describe("freeSubtreeNow()", () => {
  test("frees an unlinked subtree and every table below it, and returns how many pages", () => {
    const fx = makeFixture({ cache: 600, pages: 2048 });
    const { pgt, mc } = fx;
    mc.topup(600);
    const root = createUnlinked(pgt, PA, 1, Prot.RW, mc, true);
    assert.ok(root >= 0);
    assert.equal(freeSubtreeNow(pgt, root, 1), 513);
    assert.equal(strayPages(pgt, assertSound(pgt), mc.count), 0);
    assertNoLeak(fx);
  });
});
