import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  assertErr,
  assertNoLeak,
  assertSound,
  makeFixture,
  translate,
} from "../../testing/pgtable-harness.js";
import { decodeOa, Prot, pteOwner, S2_AF } from "../../arch/descriptor.js";
import { Errno } from "../../common/errno.js";
import {
  flush,
  getLeaf,
  LeafResult,
  map,
  mkyoung,
  relaxPerms,
  setOwner,
  testClearYoung,
  WalkFlag,
  wrprotect,
} from "../mod.js";

const P = 4096;
const M2 = 2 ** 21;
const G = 2 ** 30;
const PA = 8 * G;

describe("wrprotect()", () => {
  test("removes write permission from every page and block in the range, without break-before-make", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, 4 * P, PA, Prot.RWX, mc);
    map(pgt, G + M2, M2, PA, Prot.RW, mc);
    map(pgt, 2 * G, G, PA, Prot.RW, mc);
    const breaks = pgt.stats().breaks;
    assertErr(wrprotect(pgt, G + P, 2 * P), Errno.OK, "two pages");
    assertErr(wrprotect(pgt, G + M2 + 5 * P, P), Errno.OK, "one page of a 2M block");
    assertErr(wrprotect(pgt, 2 * G, 2 * G), Errno.OK, "the 1G block and a hole after it");
    assert.deepEqual(
      [0, 1, 2, 3].map((i) => translate(pgt, G + i * P).prot),
      [Prot.RWX, Prot.R | Prot.X, Prot.R | Prot.X, Prot.RWX],
    );
    assert.equal(translate(pgt, G + M2).prot, Prot.R, "the whole block is write-protected");
    assert.equal(translate(pgt, 3 * G - P).prot, Prot.R);
    assert.equal(translate(pgt, G + M2 + 9 * P).pa, PA + 9 * P, "translations are untouched");
    assert.equal(pgt.stats().breaks, breaks);
    assertSound(pgt);
    assertNoLeak(fx);
  });

  test("returns EINVAL when misaligned and ERANGE beyond the IPA space", () => {
    const fx = makeFixture();
    assertErr(wrprotect(fx.pgt, 1, P), Errno.INVAL, "misaligned");
    assertErr(wrprotect(fx.pgt, 0, 0), Errno.INVAL, "empty");
    assertErr(wrprotect(fx.pgt, 2 ** 36, P), Errno.RANGE, "beyond");
    assertNoLeak(fx);
  });
});

describe("relaxPerms()", () => {
  test("adds write permission to a page and invalidates its IPA at level 3", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.R, mc);
    const breaks = pgt.stats().breaks;
    assertErr(relaxPerms(pgt, G + 100, Prot.W), Errno.OK, "relax");
    assert.equal(translate(pgt, G).prot, Prot.RW);
    const c = pgt.maint.counts();
    assert.deepEqual([c.tlbiIpa, c.tlbiRange, c.icacheInval], [1, 0, 0]);
    assert.equal(pgt.stats().breaks, breaks, "no break-before-make");
    assertNoLeak(fx);
  });

  test("makes a whole block executable and invalidates the instruction cache", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, M2, PA, Prot.RW, mc);
    const icache = pgt.maint.counts().icacheInval;
    assertErr(relaxPerms(pgt, G + 7 * P, Prot.X, WalkFlag.SHARED | WalkFlag.HANDLE_FAULT), Errno.OK, "relax");
    assert.equal(translate(pgt, G).prot, Prot.RWX);
    assert.equal(translate(pgt, G + M2 - P).prot, Prot.RWX);
    assert.equal(pgt.maint.counts().icacheInval - icache, 1);
    assertSound(pgt);
    assertNoLeak(fx);
  });

  test("never removes a permission", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.RWX, mc);
    const pte = translate(pgt, G).pte;
    assertErr(relaxPerms(pgt, G, Prot.R), Errno.OK, "relax R");
    assertErr(relaxPerms(pgt, G, Prot.NONE), Errno.OK, "relax nothing");
    assert.equal(translate(pgt, G).pte, pte);
    assertNoLeak(fx);
  });

  test("returns EAGAIN where no valid leaf maps the address", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    setOwner(pgt, G, P, mc, 4);
    for (const flags of [0, WalkFlag.HANDLE_FAULT, WalkFlag.SHARED | WalkFlag.HANDLE_FAULT]) {
      assertErr(relaxPerms(pgt, 3 * G, Prot.W, flags), Errno.AGAIN, `unmapped, flags ${flags}`);
      assertErr(relaxPerms(pgt, G, Prot.W, flags), Errno.AGAIN, `owner annotation, flags ${flags}`);
    }
    assert.equal(pteOwner(translate(pgt, G).pte), 4);
    assert.equal(pgt.maint.counts().tlbiIpa, 0, "nothing to invalidate");
    assertNoLeak(fx);
  });

  test("returns EINVAL for device memory or unknown bits, ERANGE beyond the IPA space", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.R, mc);
    assertErr(relaxPerms(pgt, G, Prot.DEVICE | Prot.R), Errno.INVAL, "device");
    assertErr(relaxPerms(pgt, G, 0x20), Errno.INVAL, "unknown bit");
    assertErr(relaxPerms(pgt, 2 ** 36, Prot.R), Errno.RANGE, "beyond");
    assert.equal(translate(pgt, G).prot, Prot.R);
    assertNoLeak(fx);
  });
});

describe("access flag: mkyoung() and testClearYoung()", () => {
  test("a new mapping is young; testClearYoung(mkold) makes it old and mkyoung() young again", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, 2 * P, PA, Prot.RW, mc);
    map(pgt, G + M2, M2, PA + M2, Prot.RW, mc);
    assert.equal(testClearYoung(pgt, G, 2 * M2, false), true);
    assert.equal(testClearYoung(pgt, G, 2 * M2, false), true, "testing alone clears nothing");
    assert.equal(testClearYoung(pgt, G, 2 * M2, true), true);
    assert.equal(testClearYoung(pgt, G, 2 * M2, false), false);
    assert.equal(translate(pgt, G).pte & S2_AF, 0n);
    assert.equal(translate(pgt, G + M2).pte & S2_AF, 0n);
    const young = mkyoung(pgt, G + M2 + 3 * P);
    assert.notEqual(young & S2_AF, 0n);
    assert.equal(young, translate(pgt, G + M2).pte, "mkyoung returns the new leaf");
    assert.equal(decodeOa(young, 4096), PA + M2);
    assert.equal(testClearYoung(pgt, G, M2, false), false, "the pages are still old");
    assert.equal(testClearYoung(pgt, G + M2 + P, P, false), true, "the block is young");
    assertSound(pgt);
    const c = pgt.maint.counts();
    assert.deepEqual([c.tlbiIpa, c.tlbiRange], [0, 0], "ageing needs no TLB invalidation");
    assertNoLeak(fx);
  });

  test("mkyoung() of an unmapped address returns 0n; testClearYoung() over nothing is false", () => {
    const fx = makeFixture();
    assert.equal(mkyoung(fx.pgt, G), 0n);
    assert.equal(testClearYoung(fx.pgt, 0, 4 * G, true), false);
    assertNoLeak(fx);
  });
});

describe("getLeaf()", () => {
  test("reports the leaf and its level, or the invalid entry where the walk ended", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.R, mc);
    map(pgt, G + M2, M2, PA + M2, Prot.RW, mc);
    map(pgt, 2 * G, G, PA, Prot.RW, mc);
    setOwner(pgt, G + 2 * P, P, mc, 200);
    const out = new LeafResult();
    const at = (ipa: number) => {
      assertErr(getLeaf(pgt, ipa, out), Errno.OK, `getLeaf(0x${ipa.toString(16)})`);
      return [out.level, out.pte === 0n ? 0 : decodeOa(out.pte, 4096)];
    };
    assert.deepEqual(at(G + 5), [3, PA]);
    assert.deepEqual(at(G + M2 + 3 * P), [2, PA + M2]);
    assert.deepEqual(at(3 * G - 1), [1, PA]);
    assert.deepEqual(at(G + P), [3, 0], "hole in an L3 table");
    assert.deepEqual(at(G + 2 * M2), [2, 0], "hole in the L2 table");
    assert.deepEqual(at(5 * G), [1, 0], "hole at the start level");
    getLeaf(pgt, G + 2 * P, out);
    assert.equal(pteOwner(out.pte), 200);
    assertNoLeak(fx);
  });

  test("returns ERANGE beyond the IPA space and leaves the result empty", () => {
    const fx = makeFixture();
    const out = new LeafResult();
    out.level = 2;
    assertErr(getLeaf(fx.pgt, 2 ** 36, out), Errno.RANGE, "beyond");
    assert.deepEqual([out.level, out.pte], [-1, 0n]);
    assertNoLeak(fx);
  });

  test("a SHARED lookup runs inside the walk guard", () => {
    let inside = 0;
    let sections = 0;
    const guard = {
      begin() {
        inside++;
        sections++;
      },
      end() {
        inside--;
      },
    };
    const fx = makeFixture({ env: { guard } });
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.R, mc);
    assert.equal(sections, 0, "an exclusive map enters no read-side section");
    const out = new LeafResult();
    getLeaf(pgt, G, out, WalkFlag.SHARED);
    assert.deepEqual([sections, inside, out.level], [1, 0, 3]);
    assertNoLeak(fx);
  });
});

describe("flush()", () => {
  test("cleans the data cache once per cacheable leaf, skipping device memory and holes", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, 3 * P, PA, Prot.RW, mc, WalkFlag.SKIP_CMO);
    map(pgt, G + 3 * P, P, PA, Prot.RW | Prot.DEVICE, mc);
    map(pgt, G + M2, M2, PA, Prot.RW, mc, WalkFlag.SKIP_CMO);
    const before = pgt.maint.counts();
    assertErr(flush(pgt, G, G), Errno.OK, "flush");
    const after = pgt.maint.counts();
    assert.equal(after.dcacheClean - before.dcacheClean, 4, "three pages and one block");
    assert.equal(after.tlbiIpa + after.tlbiRange, 0);
    assertErr(flush(pgt, G + 1, P), Errno.INVAL, "misaligned");
    assertErr(flush(pgt, 2 ** 36, P), Errno.RANGE, "beyond");
    assertNoLeak(fx);
  });
});
