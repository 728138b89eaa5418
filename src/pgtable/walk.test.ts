import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { assertErr, assertNoLeak, assertSound, makeFixture } from "../testing/pgtable-harness.js";
import { leafAttrs, lockedMarker, makeLeafPte, Prot, pteIsTable } from "../arch/descriptor.js";
import { Errno } from "../common/errno.js";
import { clearPte, setPrivatePte, tryBreakPte, trySetPte } from "./pte-update.js";
import {
  Ctl,
  map,
  type Stage2,
  Visit,
  type VisitCtx,
  type Visitor,
  WalkFlag,
  walk,
  walkSubtree,
} from "./mod.js";

const P = 4096;
const M2 = 2 ** 21;
const G = 2 ** 30;
const PA = 8 * G;

const VISIT_NAME: Record<number, string> = {
  [Visit.LEAF]: "leaf",
  [Visit.TABLE_PRE]: "pre",
  [Visit.TABLE_POST]: "post",
};

/** Records each visit as "kind L<level> <addr in pages>"; `result` decides what the visit returns. */
class Recorder implements Visitor {
  readonly log: string[] = [];
  result: (ctx: VisitCtx, visit: Visit) => number = () => Errno.OK;
  visit(_pgt: Stage2, ctx: VisitCtx, visit: Visit): number {
    this.log.push(`${VISIT_NAME[visit]} L${ctx.level} ${ctx.addr / P}`);
    return this.result(ctx, visit);
  }
}

function walkWith(pgt: Stage2, rec: Visitor, addr: number, size: number, flags: number): number {
  return walk(pgt, addr, size, { visitor: rec, arg: null, flags });
}

const ALL = WalkFlag.LEAF | WalkFlag.TABLE_PRE | WalkFlag.TABLE_POST;

describe("walk()", () => {
  test("visits TABLE_PRE, the children, then TABLE_POST, in address order", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G + P, P, PA, Prot.R, mc);
    const rec = new Recorder();
    assertErr(walkWith(pgt, rec, G, 3 * P, ALL), Errno.OK, "walk");
    const g = G / P;
    assert.deepEqual(rec.log, [
      `pre L1 ${g}`,
      `pre L2 ${g}`,
      `leaf L3 ${g}`,
      `leaf L3 ${g + 1}`,
      `leaf L3 ${g + 2}`,
      `post L2 ${g}`, // TABLE_POST sees the address the table entry was first visited at (as Linux)
      `post L1 ${g}`,
    ]);
    const leaves = new Recorder();
    walkWith(pgt, leaves, G - P, 2 * P, WalkFlag.LEAF);
    assert.deepEqual(leaves.log, [`leaf L1 ${g - 1}`, `leaf L3 ${g}`], "invalid entries are leaves");
    assertNoLeak(fx);
  });

  test("rounds the range out to whole pages", () => {
    const fx = makeFixture();
    const rec = new Recorder();
    walkWith(fx.pgt, rec, 5, 1, WalkFlag.LEAF);
    assert.deepEqual(rec.log, ["leaf L1 0"]);
    assertNoLeak(fx);
  });

  test("re-reads the entry after a callback: a table installed by LEAF is descended into", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, M2, PA, Prot.R, mc);
    const rec = new Recorder();
    // Split the 2M block (map of one page inside it) from within a LEAF visit of an exclusive walk.
    let splitDone = false;
    rec.result = (ctx) => {
      if (ctx.level === 2 && !splitDone) {
        splitDone = true;
        const leaf = makeLeafPte(PA, leafAttrs(Prot.R), 3, 4096);
        const child = mc.alloc();
        pgt.pool.setLevel(child, 3);
        pgt.count(Ctl.TABLES_ALLOCATED);
        // Through the pte-update.ts helpers, as every visitor writes (the walker counts them).
        setPrivatePte(pgt, child * 512, leaf);
        pgt.pool.getPage(child);
        assert.ok(trySetPte(pgt, ctx, BigInt(pgt.pool.pageToPa(child)) | 3n));
      }
      return Errno.OK;
    };
    walkWith(pgt, rec, G, P, WalkFlag.LEAF | WalkFlag.TABLE_POST);
    const g = G / P;
    assert.deepEqual(rec.log, [`leaf L2 ${g}`, `leaf L3 ${g}`, `post L2 ${g}`, `post L1 ${g}`]);
    assertSound(pgt);
    assertNoLeak(fx);
  });

  test("re-reads the entry after a callback: a table replaced by TABLE_PRE is not descended into", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.R, mc);
    const rec = new Recorder();
    let unlinked = { ptep: -1, pte: 0n };
    rec.result = (ctx, visit) => {
      if (visit === Visit.TABLE_PRE && ctx.level === 2) {
        unlinked = { ptep: ctx.ptep, pte: ctx.old };
        clearPte(pgt, ctx.ptep);
      }
      return Errno.OK;
    };
    walkWith(pgt, rec, G, P, ALL);
    const g = G / P;
    assert.deepEqual(rec.log, [`pre L1 ${g}`, `pre L2 ${g}`, `post L1 ${g}`]);
    assert.ok(pteIsTable(unlinked.pte, 2));
    Atomics.store(pgt.ptes, unlinked.ptep, unlinked.pte); // relink, so that teardown finds every page
    assertSound(pgt);
    assertNoLeak(fx);
  });

  test("AGAIN stops a HANDLE_FAULT walk and is ignored by other walks; other errors stop every walk", () => {
    const fx = makeFixture();
    const rec = new Recorder();
    rec.result = () => Errno.AGAIN;
    assertErr(walkWith(fx.pgt, rec, 0, 3 * G, WalkFlag.LEAF), Errno.OK, "AGAIN ignored");
    assert.equal(rec.log.length, 3);
    rec.log.length = 0;
    assertErr(walkWith(fx.pgt, rec, 0, 3 * G, WalkFlag.LEAF | WalkFlag.HANDLE_FAULT), Errno.AGAIN, "HF");
    assert.equal(rec.log.length, 1);
    rec.log.length = 0;
    rec.result = () => Errno.NOMEM;
    assertErr(walkWith(fx.pgt, rec, 0, 3 * G, WalkFlag.LEAF), Errno.NOMEM, "NOMEM");
    assert.equal(rec.log.length, 1);
    assertNoLeak(fx);
  });

  test("returns ERANGE outside the IPA space and EINVAL after destroy", () => {
    const fx = makeFixture();
    const rec = new Recorder();
    assertErr(walkWith(fx.pgt, rec, 2 ** 36, P, WalkFlag.LEAF), Errno.RANGE, "start beyond");
    assertErr(walkWith(fx.pgt, rec, 2 ** 36 - P, 2 * P, WalkFlag.LEAF), Errno.RANGE, "end beyond");
    assertErr(walkWith(fx.pgt, rec, -P, P, WalkFlag.LEAF), Errno.RANGE, "negative");
    assertErr(walkWith(fx.pgt, rec, 0, -P, WalkFlag.LEAF), Errno.RANGE, "negative size");
    assert.deepEqual(rec.log, []);
    assertNoLeak(fx);
    assertErr(walkWith(fx.pgt, rec, 0, P, WalkFlag.LEAF), Errno.INVAL, "destroyed");
  });

  test("throws when re-entered on the same view, and recovers afterwards", () => {
    const fx = makeFixture();
    const { pgt } = fx;
    const inner = new Recorder();
    const outer = new Recorder();
    outer.result = () => walkWith(pgt, inner, 0, P, WalkFlag.LEAF);
    assert.throws(() => walkWith(pgt, outer, 0, P, WalkFlag.LEAF), /re-entered/);
    assertErr(walkWith(pgt, inner, 0, P, WalkFlag.LEAF), Errno.OK, "the view is usable again");
    assertNoLeak(fx);
  });

  test("a SHARED walk leaves the guard's section even when a visitor throws", () => {
    let depth = 0;
    const guard = {
      begin: () => void depth++,
      end: () => void depth--,
    };
    const fx = makeFixture({ env: { guard } });
    const rec = new Recorder();
    rec.result = () => {
      assert.equal(depth, 1, "inside the read-side section");
      throw new Error("visitor failed");
    };
    assert.throws(() => walkWith(fx.pgt, rec, 0, P, WalkFlag.LEAF | WalkFlag.SHARED), /visitor failed/);
    assert.equal(depth, 0);
    assertNoLeak(fx);
  });

  test("spans concatenated start-level tables as one", () => {
    const fx = makeFixture({ iaBits: 32 });
    const { pgt, mc } = fx;
    assert.equal(pgt.geo.pgdPages, 4);
    mc.topup(4);
    assertErr(map(pgt, G - M2, 2 * M2, PA, Prot.R, mc), Errno.OK, "map across the first two start pages");
    const rec = new Recorder();
    walkWith(pgt, rec, G - M2, 2 * M2, WalkFlag.LEAF);
    assert.deepEqual(rec.log, [`leaf L2 ${(G - M2) / P}`, `leaf L2 ${G / P}`]);
    const root = pgt.rootPage;
    assert.equal(pgt.pool.refcount(root), 2);
    assert.equal(pgt.pool.refcount(root + 1), 2);
    assertSound(pgt);
    assertNoLeak(fx);
  });
});

describe("walkSubtree()", () => {
  test("visits an unlinked table's entries with addresses relative to the subtree", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    const page = mc.alloc();
    pgt.pool.setLevel(page, 3);
    Atomics.store(pgt.ptes, page * 512 + 2, makeLeafPte(PA, leafAttrs(Prot.R), 3, 4096));
    pgt.pool.getPage(page);
    const rec = new Recorder();
    assertErr(walkSubtree(pgt, page, 2, { visitor: rec, arg: null, flags: WalkFlag.LEAF }), Errno.OK, "walk");
    assert.equal(rec.log.length, 512);
    assert.deepEqual(rec.log.slice(0, 3), ["leaf L3 0", "leaf L3 1", "leaf L3 2"]);
    assert.equal(rec.log[511], "leaf L3 511");
    Atomics.store(pgt.ptes, page * 512 + 2, 0n);
    pgt.pool.putPage(page);
    pgt.pool.putPage(page);
    assertNoLeak(fx);
  });
});

describe("walk() re-reads", () => {
  test("an entry is re-read only after a callback that wrote through a pte-update.ts helper", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.R, mc);
    const before = pgt.pteWrites;
    const rec = new Recorder();
    // A TABLE_PRE callback that writes nothing: the walker goes on from the value it read.
    walkWith(pgt, rec, G, P, ALL);
    assert.equal(pgt.pteWrites, before, "a read-only walk counts no write");
    const g = G / P;
    assert.deepEqual(rec.log, [`pre L1 ${g}`, `pre L2 ${g}`, `leaf L3 ${g}`, `post L2 ${g}`, `post L1 ${g}`]);
    // Every write through a helper counts (compare-and-swap attempts too, won or lost).
    rec.result = (ctx, visit) => {
      if (visit === Visit.LEAF) assert.equal(trySetPte(pgt, ctx, ctx.old), true);
      return Errno.OK;
    };
    walkWith(pgt, rec, G, P, WalkFlag.LEAF);
    assert.equal(pgt.pteWrites, before + 1);
    assertNoLeak(fx);
  });
});

describe("tryBreakPte() of an empty entry (a 32-bit write of the marker's low half)", () => {
  /** Breaks the empty level-3 entry of G + P from a LEAF visit; `before` runs first, as another walker. */
  function breakEmpty(flags: number, before: (pgt: Stage2, ptep: number) => void = () => {}) {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.R, mc);
    pgt.setLockOwner(3);
    const rec = new Recorder();
    let won: boolean | null = null;
    let ptep = -1;
    rec.result = (ctx, visit) => {
      assert.equal(visit, Visit.LEAF);
      assert.equal(ctx.old, 0n);
      ptep = ctx.ptep;
      before(pgt, ptep);
      won = tryBreakPte(pgt, ctx);
      return Errno.OK;
    };
    pgt.flushStats();
    const casFailures = pgt.stats().casFailures;
    const breaks = pgt.stats().breaks;
    assertErr(walkWith(pgt, rec, G + P, P, flags), Errno.OK, "walk");
    pgt.flushStats();
    const entry = Atomics.load(pgt.ptes, ptep);
    const counts = {
      casFailures: pgt.stats().casFailures - casFailures,
      breaks: pgt.stats().breaks - breaks,
    };
    // The neighbours are untouched: the page mapped before it, the empty entry after it.
    assert.equal(Atomics.load(pgt.ptes, ptep - 1), makeLeafPte(PA, leafAttrs(Prot.R), 3, P));
    assert.equal(Atomics.load(pgt.ptes, ptep + 1), 0n);
    Atomics.store(pgt.ptes, ptep, 0n);
    assertNoLeak(fx);
    return { won, entry, counts };
  }

  for (const [name, flags] of [
    ["SHARED", WalkFlag.SHARED | WalkFlag.LEAF],
    ["exclusive", WalkFlag.LEAF],
  ] as const) {
    test(`${name}: writes this view's whole locked marker, owner included, and counts a break`, () => {
      const r = breakEmpty(flags);
      assert.equal(r.won, true);
      assert.equal(r.entry, lockedMarker(3));
      assert.deepEqual(r.counts, { casFailures: 0, breaks: 1 });
    });
  }

  test("SHARED: loses to a walker that filled the entry after it was read, and leaves that entry alone", () => {
    const leaf = makeLeafPte(PA + 5 * P, leafAttrs(Prot.RW), 3, P);
    const r = breakEmpty(WalkFlag.SHARED | WalkFlag.LEAF, (pgt, ptep) => Atomics.store(pgt.ptes, ptep, leaf));
    assert.equal(r.won, false);
    assert.equal(r.entry, leaf);
    assert.deepEqual(r.counts, { casFailures: 1, breaks: 0 });
  });

  test("SHARED: loses to another walker's break (its marker names its owner)", () => {
    const theirs = lockedMarker(0);
    const r = breakEmpty(WalkFlag.SHARED | WalkFlag.LEAF, (pgt, ptep) =>
      Atomics.store(pgt.ptes, ptep, theirs),
    );
    assert.equal(r.won, false);
    assert.equal(r.entry, theirs);
    assert.deepEqual(r.counts, { casFailures: 1, breaks: 0 });
  });
});

describe("walk() of one page", () => {
  /**
   * The same tree twice: in a pool below 4 GiB (table entries read from their low halves, the
   * one-page descent) and in one above it (whole descriptors, the generic walk).
   */
  function twoTrees() {
    const low = makeFixture();
    const high = makeFixture({ basePa: 2 ** 33 });
    assert.equal(low.pgt.tablesLow, true);
    assert.equal(high.pgt.tablesLow, false);
    for (const { pgt, mc } of [low, high]) {
      mc.topup(8);
      assertErr(map(pgt, G, M2, PA, Prot.R, mc), Errno.OK, "2M block");
      assertErr(map(pgt, G + M2 + P, P, PA, Prot.R, mc), Errno.OK, "page");
    }
    return [low, high];
  }

  test("visits the same entries as the whole-descriptor walk, wherever the tree stops", () => {
    const [low, high] = twoTrees() as [ReturnType<typeof makeFixture>, ReturnType<typeof makeFixture>];
    // In the block, a mapped page, an empty page of a table, an empty level-2 entry, an empty
    // level-1 entry, and the last page of the IPA space.
    for (const addr of [G + 5 * P, G + M2 + P, G + M2 + 7 * P, G + 3 * M2, 3 * G, 2 ** 36 - P]) {
      const logs = [low, high].map(({ pgt }) => {
        const rec = new Recorder();
        assertErr(walkWith(pgt, rec, addr, P, WalkFlag.LEAF), Errno.OK, `walk at 0x${addr.toString(16)}`);
        return rec.log;
      });
      assert.deepEqual(logs[0], logs[1], `0x${addr.toString(16)}`);
      assert.equal(logs[0]?.length, 1);
    }
    for (const fx of [low, high]) assertSound(fx.pgt);
  });

  test("a visitor that installs a table is followed into it, as in the generic walk", () => {
    const [low, high] = twoTrees() as [ReturnType<typeof makeFixture>, ReturnType<typeof makeFixture>];
    const logs = [low, high].map(({ pgt, mc }) => {
      const before = pgt.stats().tablesAllocated;
      assertErr(
        map(pgt, 2 * G + 3 * P, P, PA, Prot.R, mc, WalkFlag.SHARED | WalkFlag.HANDLE_FAULT),
        Errno.OK,
        "map into an empty level-1 entry",
      );
      assert.equal(pgt.stats().tablesAllocated - before, 2, "a level-2 and a level-3 table");
      const rec = new Recorder();
      walkWith(pgt, rec, 2 * G + 3 * P, P, WalkFlag.LEAF);
      return rec.log;
    });
    assert.deepEqual(logs[0], [`leaf L3 ${(2 * G) / P + 3}`]);
    assert.deepEqual(logs[0], logs[1]);
    for (const fx of [low, high]) assertSound(fx.pgt);
  });

  test("a table descriptor that points outside the pool is corruption on both paths", () => {
    for (const fx of twoTrees()) {
      const { pgt } = fx;
      const rec = new Recorder();
      // Level-1 entry 2 (IPA 2 GiB) of the concatenated start-level tables: a table at the PA
      // just past the pool.
      const outside = pgt.pool.pageToPa(pgt.pool.pageCount);
      setPrivatePte(pgt, pgt.rootPage * 512 + 2, BigInt(outside) | 3n);
      assertErr(walkWith(pgt, rec, 2 * G, P, WalkFlag.LEAF), Errno.INVAL, "walk");
      assert.deepEqual(rec.log, []);
      assert.equal(pgt.stats().corrupt, 1);
      assert.match(pgt.firstFault ?? "", /corrupt table descriptor/);
      clearPte(pgt, pgt.rootPage * 512 + 2);
    }
  });
});
