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
import { decodeOa, Prot, PTE_LOCKED, pteOwner, pteValid } from "../../arch/descriptor.js";
import { Errno } from "../../common/errno.js";
import { aligned } from "./map-data.js";
import {
  freeSubtreeNow,
  map,
  type ReclaimHook,
  relaxPerms,
  type Stage2,
  setOwner,
  unmap,
  WalkFlag,
} from "../mod.js";

const P = 4096;
const M2 = 2 ** 21;
const G = 2 ** 30;
/** A guest-physical base far from the pool, 1 GiB aligned. */
const PA = 8 * G;

/** Records every unlinked subtree and frees it at once (as an exclusive walk may). */
class RecordingReclaim implements ReclaimHook {
  readonly calls: { page: number; level: number; shared: boolean }[] = [];
  freeUnlinked(pgt: Stage2, page: number, level: number, shared: boolean): void {
    this.calls.push({ page, level, shared });
    freeSubtreeNow(pgt, page, level);
  }
}

describe("map()", () => {
  test("maps a 4K page with one table per missing level from the memory cache", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    assert.equal(mc.topup(2), Errno.OK);
    const before = mc.count;
    assertErr(map(pgt, G + 5 * P, P, PA + 5 * P, Prot.RW, mc), Errno.OK, "map");
    assert.equal(before - mc.count, 2, "an L2 and an L3 table");
    const t = translate(pgt, G + 5 * P);
    assert.deepEqual([t.level, t.pa, t.prot], [3, PA + 5 * P, Prot.RW]);
    assert.equal(translate(pgt, G + 6 * P).valid, false);
    const audit = assertSound(pgt);
    assert.equal(audit.tables, 3);
    assert.equal(strayPages(pgt, audit, mc.count), 0);
    assertNoLeak(fx);
  });

  test("uses the largest leaf that range, level and PA alignment allow", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    assertErr(map(pgt, 2 * G, G + M2 + P, PA, Prot.RWX, mc), Errno.OK, "map 1G + 2M + 4K");
    const levels = assertSound(pgt).leaves.map((l) => [l.ipa, l.level]);
    assert.deepEqual(levels, [
      [2 * G, 1],
      [3 * G, 2],
      [3 * G + M2, 3],
    ]);
    assertNoLeak(fx);
  });

  test("maps pages when the PA is not aligned for a block", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    assertErr(map(pgt, 2 * G, M2, PA + P, Prot.R, mc), Errno.OK, "map");
    const leaves = assertSound(pgt).leaves;
    assert.equal(leaves.length, 512);
    assert.ok(leaves.every((l) => l.level === 3));
    assertNoLeak(fx);
  });

  test("forcePte maps pages only", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    assertErr(map(pgt, 2 * G, M2, PA, Prot.R, mc, 0, true), Errno.OK, "map");
    assert.equal(translate(pgt, 2 * G + M2 - P).level, 3);
    assert.equal(assertSound(pgt).leaves.length, 512);
    assertNoLeak(fx);
  });

  test("derives every output address from the IPA offset", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(8);
    const start = G - 3 * M2 - 7 * P; // spans pages, 2M blocks and two L2 tables
    const size = 3 * M2 + 7 * P + M2 + 9 * P;
    const phys = PA + G - 3 * M2 - 7 * P;
    assertErr(map(pgt, start, size, phys, Prot.RW, mc), Errno.OK, "map");
    for (let ipa = start; ipa < start + size; ipa += 3 * P + 123) {
      assert.equal(translate(pgt, ipa).pa, phys + (ipa - start), `IPA 0x${ipa.toString(16)}`);
    }
    assert.ok(new Set(assertSound(pgt).leaves.map((l) => l.level)).size === 2, "pages and blocks");
    assertNoLeak(fx);
  });

  test("needs no TLB invalidation to map over invalid entries", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, 0, G + M2 + P, PA, Prot.RW, mc);
    const c = pgt.maint.counts();
    assert.deepEqual([c.tlbiIpa, c.tlbiRange, c.tlbiVmid], [0, 0, 0]);
    assertNoLeak(fx);
  });

  test("replaces a leaf with another translation by break-before-make and a TLBI by IPA", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.RW, mc);
    map(pgt, G + M2, M2, PA, Prot.RW, mc);
    const breaks = pgt.stats().breaks;
    assertErr(map(pgt, G, P, PA + P, Prot.RW, mc), Errno.OK, "remap page");
    assertErr(map(pgt, G + M2, M2, PA + M2, Prot.R, mc), Errno.OK, "remap block");
    assert.equal(translate(pgt, G).pa, PA + P);
    assert.equal(translate(pgt, G + M2 + 5 * P).pa, PA + M2 + 5 * P);
    const c = pgt.maint.counts();
    assert.deepEqual([c.tlbiIpa, c.tlbiRange], [2, 0]);
    assert.equal(pgt.stats().breaks - breaks, 2);
    assertSound(pgt);
    assertNoLeak(fx);
  });

  test("a SHARED map or relax that meets a locked entry returns AGAIN and leaves it alone", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.R, mc);
    // Another walker is between break and make on the next entry, and on the mapped one.
    const ptep = findLeafPtep(pgt, G);
    Atomics.store(pgt.ptes, ptep + 1, PTE_LOCKED);
    const mapped = Atomics.load(pgt.ptes, ptep);
    Atomics.store(pgt.ptes, ptep, PTE_LOCKED);
    const shared = WalkFlag.SHARED | WalkFlag.HANDLE_FAULT;
    const casFailures = pgt.stats().casFailures;
    assertErr(map(pgt, G + P, P, PA + P, Prot.RW, mc, shared), Errno.AGAIN, "map over a locked empty entry");
    assertErr(map(pgt, G, P, PA + 8 * P, Prot.RW, mc, shared), Errno.AGAIN, "map over a locked leaf");
    assertErr(relaxPerms(pgt, G, Prot.RW, shared), Errno.AGAIN, "relax a locked leaf");
    assert.equal(Atomics.load(pgt.ptes, ptep), PTE_LOCKED);
    assert.equal(Atomics.load(pgt.ptes, ptep + 1), PTE_LOCKED);
    assert.equal(pgt.stats().casFailures, casFailures, "AGAIN came from the lock, not a lost CAS");
    // The other walker makes its entries; the retried fault goes through.
    Atomics.store(pgt.ptes, ptep, mapped);
    Atomics.store(pgt.ptes, ptep + 1, 0n);
    assertErr(map(pgt, G + P, P, PA + P, Prot.RW, mc, shared), Errno.OK, "retried fault");
    assert.equal(translate(pgt, G + P).pa, PA + P);
    assertSound(pgt);
    assertNoLeak(fx);
  });

  test("SKIP_BBM_TLBI replaces a leaf by break-before-make without the TLBI", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.RW, mc);
    const breaks = pgt.stats().breaks;
    assertErr(map(pgt, G, P, PA + P, Prot.RW, mc, WalkFlag.SKIP_BBM_TLBI), Errno.OK, "remap page");
    assert.equal(translate(pgt, G).pa, PA + P);
    assert.equal(pgt.stats().breaks - breaks, 1, "still a break and a make");
    assert.equal(pgt.maint.counts().tlbiIpa, 0, "no TLBI issued");
    assertSound(pgt);
    assertNoLeak(fx);
  });

  test("mapping the same translation again changes nothing: AGAIN for a fault, OK otherwise", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.R, mc);
    const pte = translate(pgt, G).pte;
    const breaks = pgt.stats().breaks;
    assertErr(map(pgt, G, P, PA, Prot.R, mc, WalkFlag.HANDLE_FAULT), Errno.AGAIN, "same translation");
    assertErr(map(pgt, G, P, PA, Prot.RWX, mc, WalkFlag.HANDLE_FAULT), Errno.AGAIN, "only perms differ");
    assertErr(map(pgt, G, P, PA, Prot.RW, mc), Errno.OK, "exclusive walks ignore AGAIN");
    assert.equal(translate(pgt, G).pte, pte, "the leaf is untouched (relax_perms changes perms)");
    assert.equal(pgt.stats().breaks, breaks);
    assert.equal(pgt.maint.counts().tlbiIpa, 0);
    assertNoLeak(fx);
  });

  test("a block over an existing table hands the unlinked subtree to the reclaim hook exactly once", () => {
    const reclaim = new RecordingReclaim();
    const fx = makeFixture({ env: { reclaim } });
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G + 3 * P, 2 * P, PA + 3 * P, Prot.RW, mc);
    map(pgt, G + M2 - P, P, PA + M2 - P, Prot.RW, mc);
    const l3 = auditTree(pgt).tables - 2;
    assert.equal(l3, 1);
    assertErr(map(pgt, G, M2, PA, Prot.RW, mc), Errno.OK, "collapse into a 2M block");
    assert.equal(reclaim.calls.length, 1);
    assert.deepEqual(
      { level: reclaim.calls[0]!.level, shared: reclaim.calls[0]!.shared },
      { level: 2, shared: false },
    );
    const t = translate(pgt, G + 77 * P);
    assert.deepEqual([t.level, t.pa], [2, PA + 77 * P]);
    const c = pgt.maint.counts();
    assert.deepEqual([c.tlbiIpa, c.tlbiRange], [0, 1], "a table break invalidates by range");
    const s = pgt.stats();
    assert.equal(s.unlinkedSubtrees, 1);
    const audit = assertSound(pgt);
    assert.equal(strayPages(pgt, audit, mc.count), 0, "the hook freed the subtree");
    assertNoLeak(fx);
  });

  test("a 1G block over a two-level subtree unlinks it once and frees every page of it", () => {
    const reclaim = new RecordingReclaim();
    const fx = makeFixture({ env: { reclaim } });
    const { pgt, mc } = fx;
    mc.topup(8);
    map(pgt, G + P, P, PA + P, Prot.RW, mc);
    map(pgt, G + 5 * M2, M2, PA + 5 * M2, Prot.RW, mc);
    map(pgt, 2 * G - P, P, PA + G - P, Prot.RW, mc);
    assert.equal(auditTree(pgt).tables, 4);
    assertErr(map(pgt, G, G, PA, Prot.RW, mc), Errno.OK, "1G block");
    assert.equal(reclaim.calls.length, 1);
    assert.equal(reclaim.calls[0]!.level, 1);
    assert.equal(pgt.stats().tablesFreed, 3);
    assert.equal(strayPages(pgt, assertSound(pgt), mc.count), 0);
    assertNoLeak(fx);
  });

  test("without a reclaim hook an exclusive walk frees the unlinked subtree at once", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.RW, mc);
    const freed = pgt.stats().tablesFreed;
    map(pgt, G, M2, PA, Prot.RW, mc);
    assert.equal(pgt.stats().tablesFreed - freed, 1);
    assert.equal(strayPages(pgt, assertSound(pgt), mc.count), 0);
    assertNoLeak(fx);
  });

  test("a shared walk passes shared=true to the reclaim hook", () => {
    const reclaim = new RecordingReclaim();
    const fx = makeFixture({ env: { reclaim } });
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, P, PA, Prot.RW, mc);
    const flags = WalkFlag.SHARED | WalkFlag.HANDLE_FAULT;
    assertErr(map(pgt, G, M2, PA, Prot.RW, mc, flags), Errno.OK, "shared collapse");
    assert.deepEqual(
      reclaim.calls.map((c) => c.shared),
      [true],
    );
    assertNoLeak(fx);
  });

  test("a page inside a 1G block splits the block and keeps the rest of its translation", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, G, PA, Prot.RWX, mc);
    const cached = mc.count;
    const target = G + 3 * M2 + 9 * P;
    assertErr(map(pgt, target, P, 16 * G, Prot.R, mc), Errno.OK, "map page inside block");
    assert.equal(cached - mc.count, 2, "an L2 table of 2M blocks and an L3 table of pages");
    const t = translate(pgt, target);
    assert.deepEqual([t.level, t.pa, t.prot], [3, 16 * G, Prot.R]);
    for (const ipa of [G, G + 3 * M2, target - P, target + P, G + 3 * M2 + M2 - P, G + 4 * M2, 2 * G - 1]) {
      const u = translate(pgt, ipa);
      assert.deepEqual([u.pa, u.prot], [PA + (ipa - G), Prot.RWX], `IPA 0x${ipa.toString(16)}`);
      assert.equal(u.level, ipa >= G + 3 * M2 && ipa < G + 4 * M2 ? 3 : 2);
    }
    const c = pgt.maint.counts();
    assert.deepEqual([c.tlbiIpa, c.tlbiRange], [3, 0], "two block breaks and one page break");
    assertSound(pgt);
    assertNoLeak(fx);
  });

  test("a page with new permissions inside a block changes only that page", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, M2, PA, Prot.R, mc);
    assertErr(map(pgt, G + P, P, PA + P, Prot.RW, mc, WalkFlag.HANDLE_FAULT), Errno.OK, "map");
    assert.equal(translate(pgt, G + P).prot, Prot.RW);
    assert.equal(translate(pgt, G).prot, Prot.R);
    assert.equal(translate(pgt, G + 2 * P).prot, Prot.R);
    assertSound(pgt);
    assertNoLeak(fx);
  });

  test("the same translation inside a block splits it but returns AGAIN to a fault", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, M2, PA, Prot.RW, mc);
    assertErr(map(pgt, G + P, P, PA + P, Prot.RW, mc, WalkFlag.HANDLE_FAULT), Errno.AGAIN, "map");
    const t = translate(pgt, G + P);
    assert.deepEqual([t.level, t.pa, t.prot], [3, PA + P, Prot.RW]);
    assertSound(pgt);
    assertNoLeak(fx);
  });

  test("cleans the data cache for normal memory and invalidates the I-cache for executable memory", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, 0, P, PA, Prot.RW, mc);
    map(pgt, P, P, PA + P, Prot.R | Prot.X, mc);
    map(pgt, 2 * P, P, PA + 2 * P, Prot.RW | Prot.DEVICE, mc);
    map(pgt, 3 * P, P, PA + 3 * P, Prot.RWX, mc, WalkFlag.SKIP_CMO);
    const c = pgt.maint.counts();
    assert.deepEqual([c.dcacheClean, c.icacheInval], [2, 1]);
    assertNoLeak(fx);
  });

  test("returns EINVAL for misaligned input or a bad prot, and maps nothing", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    const cases: [number, number, number, number][] = [
      [G + 1, P, PA, Prot.R],
      [G, P + 1, PA, Prot.R],
      [G, P, PA + 8, Prot.R],
      [G, 0, PA, Prot.R],
      [G, P, -P, Prot.R],
      [G, P, PA, Prot.NONE],
      [G, P, PA, Prot.DEVICE],
      [G, P, PA, 0x10 | Prot.R],
      [G, P, PA, Prot.DEVICE | Prot.X | Prot.R],
    ];
    for (const [addr, size, phys, prot] of cases) {
      assertErr(map(pgt, addr, size, phys, prot, mc), Errno.INVAL, `map(${addr}, ${size}, ${phys}, ${prot})`);
    }
    assert.equal(mc.count, 16, "no table taken");
    assert.equal(assertSound(pgt).leaves.length, 0);
    assertNoLeak(fx);
  });

  test("returns ERANGE beyond the IPA or PA space", () => {
    const fx = makeFixture({ iaBits: 36, paBits: 40 });
    const { pgt, mc } = fx;
    mc.topup(4);
    const ipaEnd = 2 ** 36;
    assertErr(map(pgt, ipaEnd, P, PA, Prot.R, mc), Errno.RANGE, "IPA at the end");
    assertErr(map(pgt, ipaEnd - P, 2 * P, PA, Prot.R, mc), Errno.RANGE, "range crossing the end");
    assertErr(map(pgt, -P, P, PA, Prot.R, mc), Errno.RANGE, "negative IPA");
    assertErr(map(pgt, 0, P, 2 ** 40, Prot.R, mc), Errno.RANGE, "PA beyond 40 bits");
    assertErr(map(pgt, 0, 2 * P, 2 ** 40 - P, Prot.R, mc), Errno.RANGE, "PA range crossing 40 bits");
    assertErr(map(pgt, ipaEnd - P, P, 2 ** 40 - P, Prot.R, mc), Errno.OK, "last page of both");
    assertNoLeak(fx);
  });

  test("returns ENOMEM without a cache or with an empty one, and leaks nothing", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    assertErr(map(pgt, G, P, PA, Prot.R, null), Errno.NOMEM, "no cache");
    assertErr(map(pgt, G, P, PA, Prot.R, mc), Errno.NOMEM, "empty cache");
    assertErr(map(pgt, G, G, PA, Prot.R, null), Errno.OK, "a 1G block at the start level needs no table");
    const audit = assertSound(pgt);
    assert.equal(audit.tables, 1);
    assert.equal(strayPages(pgt, audit, mc.count), 0);
    assertNoLeak(fx);
  });

  test("returns ENOMEM from a cache too small for the walk; the tables it got stay linked", () => {
    const fx = makeFixture({ cache: 1 });
    const { pgt, mc } = fx;
    mc.topup(1);
    assertErr(map(pgt, G, P, PA, Prot.R, mc), Errno.NOMEM, "needs two tables");
    const audit = assertSound(pgt);
    assert.equal(audit.tables, 2, "the L2 table went in");
    assert.equal(audit.emptyTables, 1);
    assert.equal(strayPages(pgt, audit, mc.count), 0, "nothing leaked");
    mc.topup(1);
    assertErr(map(pgt, G, P, PA, Prot.R, mc), Errno.OK, "the retry needs one more");
    assertNoLeak(fx);
  });

  test("splitting a 1G block with a one-page cache stops at the 2M level with ENOMEM", () => {
    const fx = makeFixture({ cache: 1 });
    const { pgt, mc } = fx;
    map(pgt, G, G, PA, Prot.RW, null);
    mc.topup(1);
    assertErr(map(pgt, G + P, P, 9 * G, Prot.RW, mc), Errno.NOMEM, "map inside block");
    const t = translate(pgt, G + P);
    assert.deepEqual([t.level, t.pa], [2, PA + P], "the block was split into 2M blocks only");
    assertSound(pgt);
    assertNoLeak(fx);
  });
});

describe("setOwner()", () => {
  test("annotates invalid entries with an owner, counted in the table's refcount", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    assertErr(setOwner(pgt, G + P, 2 * P, mc, 7), Errno.OK, "set owner");
    assertErr(setOwner(pgt, 2 * G, M2, mc, 9), Errno.OK, "set owner on a block-sized range");
    const t = translate(pgt, G + 2 * P);
    assert.equal(t.valid, false);
    assert.equal(pteOwner(t.pte), 7);
    assert.equal(translate(pgt, G).pte, 0n);
    const b = translate(pgt, 2 * G + 5 * P);
    assert.deepEqual([b.level, pteOwner(b.pte)], [2, 9]);
    assertSound(pgt);
    assertErr(unmap(pgt, G, 4 * P), Errno.OK, "unmap");
    assert.equal(translate(pgt, G + P).pte, 0n);
    assert.equal(assertSound(pgt).tables, 2, "the L3 table is gone once its annotations are");
    assertNoLeak(fx);
  });

  test("replaces a mapping by break-before-make", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    map(pgt, G, M2, PA, Prot.RW, mc);
    assertErr(setOwner(pgt, G + P, P, mc, 3), Errno.OK, "set owner inside a block");
    assert.equal(pteOwner(translate(pgt, G + P).pte), 3);
    assert.ok(pteValid(translate(pgt, G).pte), "the rest of the block stays mapped");
    assert.equal(pgt.maint.counts().tlbiIpa, 2);
    assertSound(pgt);
    assertNoLeak(fx);
  });

  test("returns EINVAL for an owner outside 1..255 or a misaligned range", () => {
    const fx = makeFixture();
    const { pgt, mc } = fx;
    mc.topup(4);
    for (const owner of [0, 256, 1.5, -1]) {
      assertErr(setOwner(pgt, G, P, mc, owner), Errno.INVAL, `owner ${owner}`);
    }
    assertErr(setOwner(pgt, G + 1, P, mc, 1), Errno.INVAL, "misaligned");
    assertErr(setOwner(pgt, G, 0, mc, 1), Errno.INVAL, "empty");
    assertErr(setOwner(pgt, 2 ** 36, P, mc, 1), Errno.RANGE, "beyond the IPA space");
    assertNoLeak(fx);
  });
});

/** The level-3 entry index (into pgt.ptes) for `ipa`, whose tables must exist. */
function findLeafPtep(pgt: Stage2, ipa: number): number {
  let base = pgt.rootPage * pgt.entriesPerPage;
  for (let level = pgt.geo.startLevel; ; level++) {
    const shift = pgt.geo.shifts[level] as number;
    const entries = level === pgt.geo.startLevel ? pgt.geo.pgdPages * pgt.entriesPerPage : pgt.entriesPerPage;
    const idx = Math.floor(ipa / 2 ** shift) % entries;
    if (level === 3) return base + idx;
    const next = pgt.pool.paToPage(decodeOa(Atomics.load(pgt.ptes, base + idx), pgt.geo.granule));
    assert.ok(next >= 0, `no table at level ${level} for 0x${ipa.toString(16)}`);
    base = next * pgt.entriesPerPage;
  }
}

describe("aligned()", () => {
  test("answers as the remainder does: masks for small sizes, division for large ones", () => {
    const xs = [
      0,
      4096,
      4097,
      -4096,
      -1,
      2 ** 30,
      2 ** 31,
      2 ** 32 + 4096,
      2 ** 40,
      2 ** 52,
      2 ** 53 - 1,
      0.5,
      4096.5,
    ];
    const odd = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
    for (let shift = 12; shift <= 42; shift += 3) {
      const size = 2 ** shift;
      for (const x of xs) assert.equal(aligned(x, size), x % size === 0, `${x} % 2^${shift}`);
      for (const x of odd) assert.equal(aligned(x, size), false, `${x}`);
    }
  });
});
