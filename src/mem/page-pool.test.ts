import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DEFAULT_BASE_PA } from "./pool-options.js";
import { PagePool, PageState } from "./page-pool.js";

const GiB = 2 ** 30;

function pool4k(pages: number, basePa?: number): PagePool {
  return PagePool.create({ granule: 4096, pages, ...(basePa === undefined ? {} : { basePa }) });
}

function allocN(pool: PagePool, n: number): number[] {
  const pages: number[] = [];
  for (let i = 0; i < n; i++) pages.push(pool.allocPage());
  return pages;
}

describe("PagePool.create()", () => {
  test("derives the geometry of each granule", () => {
    for (const [granule, shift] of [
      [4096, 12],
      [16384, 14],
      [65536, 16],
    ] as const) {
      const pool = PagePool.create({ granule, pages: 4 });
      assert.equal(pool.pageShift, shift);
      assert.equal(pool.entriesPerPage, granule / 8);
      assert.equal(pool.ptes.length, 4 * (granule / 8));
      assert.equal(pool.words.length, 4 * (granule / 4));
      assert.equal(pool.basePa, DEFAULT_BASE_PA);
      assert.equal(pool.debug, false);
    }
  });

  test("rejects a bad granule, page count or base address", () => {
    assert.throws(() => PagePool.create({ granule: 8192 as 4096, pages: 4 }), /granule 8192 is not/);
    assert.throws(() => PagePool.create({ granule: 4096, pages: 0 }), RangeError);
    assert.throws(() => PagePool.create({ granule: 4096, pages: 1.5 }), RangeError);
    assert.throws(
      () => PagePool.create({ granule: 4096, pages: 4, basePa: 0x1000 + 8 }),
      /not a 4096-byte aligned/,
    );
    assert.throws(() => PagePool.create({ granule: 16384, pages: 4, basePa: 0x1000 }), /16384-byte aligned/);
    assert.throws(
      () => PagePool.create({ granule: 4096, pages: 2, basePa: 2 ** 48 - 4096 }),
      /48-bit PA space/,
    );
    assert.throws(() => PagePool.create(null as never), TypeError);
  });

  test("accepts a pool that ends exactly at 2^48", () => {
    const pool = pool4k(2, 2 ** 48 - 2 * 4096);
    assert.equal(pool.pageToPa(1), 2 ** 48 - 4096);
    assert.equal(pool.paToPage(2 ** 48 - 4096), 1);
  });
});

describe("PagePool addresses", () => {
  const base = 300 * GiB; // above 2^32: catches 32-bit arithmetic on addresses
  const pool = pool4k(8, base);

  test("pageToPa() and paToPage() are inverse inside the pool", () => {
    for (let p = 0; p < 8; p++) {
      assert.equal(pool.pageToPa(p), base + p * 4096);
      assert.equal(pool.paToPage(pool.pageToPa(p)), p);
    }
  });

  test("paToPage() returns -1 outside the pool or for misaligned addresses", () => {
    assert.equal(pool.paToPage(base - 4096), -1);
    assert.equal(pool.paToPage(base + 8 * 4096), -1);
    assert.equal(pool.paToPage(base + 8), -1);
    assert.equal(pool.paToPage(base + 4096 + 0.5), -1);
    assert.equal(pool.paToPage(0), -1);
    assert.equal(pool.paToPage(Number.NaN), -1);
    assert.equal(pool.paToPage(-4096), -1);
  });
});

describe("PagePool allocation", () => {
  test("allocPage() returns distinct zeroed pages with refcount 1, state TABLE, level and link -1", () => {
    const pool = pool4k(4);
    const pages = allocN(pool, 4);
    assert.deepEqual([...pages].sort(), [0, 1, 2, 3]);
    for (const p of pages) {
      assert.equal(pool.refcount(p), 1);
      assert.equal(pool.state(p), PageState.TABLE);
      assert.equal(pool.level(p), -1);
      assert.equal(pool.link(p), -1);
      assert.equal(pool.aux(p), 0);
    }
  });

  test("allocPage() returns -1 on an exhausted pool and counts the failure", () => {
    const pool = pool4k(2);
    allocN(pool, 2);
    assert.equal(pool.allocPage(), -1);
    assert.equal(pool.allocPage(), -1);
    const s = pool.stats();
    assert.equal(s.allocFailures, 2);
    assert.equal(s.allocated, 2);
    assert.equal(s.allocs, 2);
  });

  test("a freed page is handed out again, zeroed, with fresh metadata", () => {
    const pool = pool4k(1);
    const p = pool.allocPage();
    pool.ptes.fill(-1n, 0, pool.entriesPerPage);
    pool.setLevel(p, 3);
    pool.setLink(p, 7);
    pool.setAux(p, 9);
    pool.getPage(p);
    pool.freePage(p);
    assert.equal(pool.state(p), PageState.FREE);
    assert.equal(pool.refcount(p), 0);
    assert.equal(pool.allocPage(), p);
    assert.ok(pool.words.subarray(0, 1024).every((w) => w === 0));
    assert.deepEqual([pool.refcount(p), pool.level(p), pool.link(p), pool.aux(p)], [1, -1, -1, 0]);
  });

  test("allocBatch() fills out[offset..] and returns fewer pages when the pool runs out", () => {
    const pool = pool4k(5);
    const out = new Int32Array(10).fill(-7);
    assert.equal(pool.allocBatch(out, 3, 2), 3);
    assert.deepEqual([...out.subarray(0, 5)], [-7, -7, 0, 1, 2]);
    pool.freePage(1);
    assert.equal(pool.allocBatch(out, 8), 3, "one recycled page and the two left in the bump region");
    assert.deepEqual([...out.subarray(0, 3)].sort(), [1, 3, 4]);
    assert.equal(pool.stats().allocFailures, 1);
    assert.throws(() => pool.allocBatch(out, 11), RangeError);
    assert.throws(() => pool.allocBatch(out, 2, 9), RangeError);
  });

  test("allocContiguous() takes an aligned run from the bump region and frees the padding", () => {
    const pool = pool4k(8);
    assert.equal(pool.allocPage(), 0);
    // 4 pages are aligned to 4 frames (VTTBR_EL2.BADDR of concatenated tables): pages 1-3 are skipped.
    assert.equal(pool.allocContiguous(4), 4);
    for (let p = 4; p < 8; p++) assert.equal(pool.state(p), PageState.TABLE);
    assert.equal(pool.stats().allocated, 5, "the padding is not allocated");
    assert.equal(pool.allocContiguous(4), -1, "no aligned run of 4 is left");
    assert.equal(pool.allocContiguous(2), 2, "a run of 2 from the freed padding, aligned to 2");
    assert.throws(() => pool.allocContiguous(0), RangeError);
    assert.throws(() => pool.allocContiguous(17), RangeError);
    assert.deepEqual(pool.audit(), []);
  });

  test("allocContiguous() finds an aligned run on the free list once the bump region is used up", () => {
    const pool = pool4k(10);
    allocN(pool, 10);
    for (const p of [1, 3, 4, 6, 7, 8]) pool.freePage(p);
    pool.ptes.fill(5n, 6 * 512, 8 * 512);
    assert.equal(pool.allocContiguous(4), -1);
    assert.equal(pool.allocContiguous(2), 6, "3-4 is free but not aligned to 2");
    assert.ok(
      pool.ptes.subarray(6 * 512, 8 * 512).every((e) => e === 0n),
      "recycled run is zeroed",
    );
    assert.equal(pool.allocContiguous(2), -1);
    assert.equal(pool.allocContiguous(1), 1);
    assert.deepEqual(pool.audit(), []);
  });

  test("freeBatch() frees every page of the batch with one call", () => {
    const pool = pool4k(6);
    const pages = Int32Array.from(allocN(pool, 6));
    pool.freeBatch(pages, 4, 1);
    assert.deepEqual(pool.allocatedPages(), [pages[0], pages[5]]);
    assert.equal(pool.stats().frees, 4);
    assert.deepEqual(pool.audit(), []);
  });
});

describe("PagePool reference counts", () => {
  test("getPage() and putPage() return the new count; the last put frees the page", () => {
    const pool = pool4k(2);
    const p = pool.allocPage();
    assert.equal(pool.getPage(p), 2);
    assert.equal(pool.getPage(p), 3);
    assert.equal(pool.putPage(p), 2);
    assert.equal(pool.putPage(p), 1);
    assert.equal(pool.state(p), PageState.TABLE);
    assert.equal(pool.putPage(p), 0);
    assert.equal(pool.state(p), PageState.FREE);
    assert.equal(pool.stats().frees, 1);
  });

  test("freePage() frees whatever the refcount", () => {
    const pool = pool4k(2);
    const p = pool.allocPage();
    for (let i = 0; i < 5; i++) pool.getPage(p);
    pool.freePage(p);
    assert.equal(pool.refcount(p), 0);
    assert.deepEqual(pool.allocatedPages(), []);
  });

  test("putPage() below zero is counted, not thrown, outside debug mode", () => {
    const pool = pool4k(2);
    const p = pool.allocPage();
    pool.putPage(p);
    assert.equal(pool.putPage(p), -1);
    assert.equal(pool.stats().refcountUnderflows, 1);
  });
});

describe("PagePool metadata", () => {
  test("setState() accepts UNLINKED and TABLE, and refuses FREE", () => {
    const pool = pool4k(2);
    const p = pool.allocPage();
    pool.setState(p, PageState.UNLINKED);
    assert.equal(pool.state(p), PageState.UNLINKED);
    pool.setState(p, PageState.TABLE);
    assert.throws(() => pool.setState(p, PageState.FREE), /use freePage/);
  });

  test("the generation moves at every free and isLive() tracks it", () => {
    const pool = pool4k(1);
    const p = pool.allocPage();
    const gen = pool.generation(p);
    assert.equal(pool.isLive(p, gen), true);
    pool.setState(p, PageState.UNLINKED);
    assert.equal(pool.isLive(p, gen), true, "unlinked pages stay readable");
    pool.freePage(p);
    assert.equal(pool.generation(p), gen + 1);
    assert.equal(pool.isLive(p, gen), false);
    assert.equal(pool.allocPage(), p);
    assert.equal(pool.isLive(p, gen), false, "reallocated under a new generation");
    assert.equal(pool.isLive(p, gen + 1), true);
  });

  test("a double free is counted and does not put the page on the free list twice", () => {
    const pool = pool4k(3);
    const p = pool.allocPage();
    pool.freePage(p);
    pool.freePage(p);
    assert.equal(pool.stats().doubleFrees, 1);
    assert.equal(pool.stats().frees, 1);
    assert.deepEqual(pool.audit(), []);
    assert.equal(pool.allocPage(), p);
    assert.notEqual(pool.allocPage(), p);
  });

  test("page indices outside the pool throw RangeError", () => {
    const pool = pool4k(2);
    for (const bad of [-1, 2, 0.5, Number.NaN]) {
      assert.throws(() => pool.getPage(bad), RangeError);
      assert.throws(() => pool.freePage(bad), RangeError);
      assert.throws(() => pool.refcount(bad), RangeError);
      assert.throws(() => pool.setLevel(bad, 1), RangeError);
    }
    assert.deepEqual(pool.stats().allocs, 0);
  });
});

describe("PagePool leak check and statistics", () => {
  test("allocatedPages() and leakReport() list the pages still allocated", () => {
    const pool = pool4k(6);
    const pages = allocN(pool, 5);
    pool.freePage(pages[1]!);
    pool.freePage(pages[3]!);
    pool.setState(pages[4]!, PageState.UNLINKED);
    pool.setLevel(pages[4]!, 2);
    assert.deepEqual(pool.allocatedPages(), [0, 2, 4]);
    const report = pool.leakReport().split("\n");
    assert.equal(report.length, 3);
    assert.equal(report[2], "page 4 (PA 0x40004000): UNLINKED refcount 1 level 2 gen 0");
    pool.freeBatch(Int32Array.of(0, 2, 4), 3);
    assert.deepEqual(pool.allocatedPages(), []);
    assert.equal(pool.leakReport(), "");
  });

  test("stats() tracks allocated, peak, allocs and frees", () => {
    const pool = pool4k(8);
    const pages = allocN(pool, 6);
    for (const p of pages.slice(0, 4)) pool.freePage(p);
    allocN(pool, 1);
    const s = pool.stats();
    assert.deepEqual(
      [s.pageCount, s.allocated, s.peakAllocated, s.allocs, s.frees, s.freeListPages, s.untouchedPages],
      [8, 3, 6, 7, 4, 3, 2],
    );
  });
});

describe("PagePool.attach()", () => {
  test("a view built from a cloned handle shares pages and metadata", () => {
    const pool = pool4k(4, 2 * GiB);
    const other = PagePool.attach(structuredClone(pool.handle));
    assert.equal(other.basePa, 2 * GiB);
    const p = other.allocPage();
    Atomics.store(other.ptes, p * 512 + 3, 0x1234n);
    assert.equal(Atomics.load(pool.ptes, p * 512 + 3), 0x1234n);
    assert.equal(pool.state(p), PageState.TABLE);
    assert.equal(pool.stats().allocated, 1);
  });

  test("rejects handles whose buffers do not match their options", () => {
    const pool = pool4k(4);
    assert.throws(() => PagePool.attach({ ...pool.handle, pages: 5 }), /buffer sizes/);
    assert.throws(() => PagePool.attach({ ...pool.handle, memory: new ArrayBuffer(8) as never }), TypeError);
    assert.throws(() => PagePool.attach(undefined as never), TypeError);
  });
});
