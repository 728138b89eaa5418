import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PagePool, PageState, PTE_POISON } from "./page-pool.js";
import { PageMisuseError } from "./poison.js";

function debugPool(pages: number): PagePool {
  return PagePool.create({ granule: 4096, pages, debug: true });
}

function misuse(kind: PageMisuseError["kind"], page: number) {
  return (err: unknown) => err instanceof PageMisuseError && err.kind === kind && err.page === page;
}

describe("PTE_POISON", () => {
  test("is an invalid descriptor that is not the walker lock marker", () => {
    assert.equal(PTE_POISON & 1n, 0n, "bit 0 (valid) clear");
    assert.equal(PTE_POISON & (1n << 10n), 0n, "bit 10 (KVM_INVALID_PTE_LOCKED) clear");
    assert.equal(BigInt.asIntN(64, PTE_POISON), PTE_POISON, "fits a BigInt64Array element unchanged");
  });
});

describe("PagePool debug mode", () => {
  test("freePage() poisons every descriptor of the page and bumps its generation", () => {
    const pool = debugPool(2);
    const p = pool.allocPage();
    const q = pool.allocPage();
    Atomics.store(pool.ptes, p * 512 + 7, 0x4000_0003n);
    const gen = pool.generation(p);
    pool.freePage(p);
    assert.ok(pool.ptes.subarray(p * 512, (p + 1) * 512).every((e) => e === PTE_POISON));
    assert.ok(
      pool.ptes.subarray(q * 512, (q + 1) * 512).every((e) => e === 0n),
      "neighbour untouched",
    );
    assert.equal(pool.generation(p), gen + 1);
    assert.equal(pool.isLive(p, gen), false);
  });

  test("a reallocated page is zeroed again", () => {
    const pool = debugPool(1);
    pool.freePage(pool.allocPage());
    const p = pool.allocPage();
    assert.equal(p, 0);
    assert.ok(pool.ptes.subarray(0, 512).every((e) => e === 0n));
    assert.deepEqual(pool.audit(), []);
  });

  test("a double free throws PageMisuseError and is counted", () => {
    const pool = debugPool(2);
    const p = pool.allocPage();
    pool.freePage(p);
    assert.throws(() => pool.freePage(p), misuse("double-free", p));
    assert.equal(pool.stats().doubleFrees, 1);
    assert.equal(pool.stats().frees, 1);
  });

  test("freeBatch() frees the rest of a batch before it reports a double free", () => {
    const pool = debugPool(3);
    const [p, q, r] = [pool.allocPage(), pool.allocPage(), pool.allocPage()];
    pool.freePage(q);
    assert.throws(() => pool.freeBatch(Int32Array.of(p, q, r), 3), misuse("double-free", q));
    assert.deepEqual(pool.allocatedPages(), []);
    assert.deepEqual(pool.audit(), []);
    assert.equal(pool.stats().frees, 3);
  });

  test("a write to a freed page is detected when the page is handed out again", () => {
    const pool = debugPool(1);
    const p = pool.allocPage();
    pool.freePage(p);
    Atomics.store(pool.ptes, p * 512 + 42, 0x4000_0003n);
    assert.throws(
      () => pool.allocPage(),
      (err: unknown) => {
        return misuse("write-after-free", p)(err) && /entry 42/.test((err as Error).message);
      },
    );
    assert.equal(pool.stats().poisonViolations, 1);
  });

  test("a write to a page never allocated is detected at its first allocation", () => {
    const pool = debugPool(2);
    pool.words[1024 + 5] = 1;
    assert.equal(pool.allocPage(), 0);
    assert.throws(() => pool.allocPage(), misuse("write-after-free", 1));
  });

  test("getPage() and setState() on a free page throw use-after-free", () => {
    const pool = debugPool(2);
    const p = pool.allocPage();
    pool.freePage(p);
    assert.throws(() => pool.getPage(p), misuse("use-after-free", p));
    assert.throws(() => pool.setState(p, PageState.UNLINKED), misuse("use-after-free", p));
  });

  test("putPage() below zero throws refcount-underflow", () => {
    const pool = debugPool(2);
    const p = pool.allocPage();
    pool.getPage(p);
    pool.putPage(p);
    pool.putPage(p);
    assert.throws(() => pool.putPage(p), misuse("refcount-underflow", p));
    assert.equal(pool.stats().refcountUnderflows, 1);
  });

  test("a walker's recorded generation exposes a table freed while it was inside", () => {
    const pool = debugPool(2);
    const table = pool.allocPage();
    pool.setLevel(table, 2);
    const gen = pool.generation(table);
    pool.setState(table, PageState.UNLINKED);
    assert.equal(pool.isLive(table, gen), true, "readable until the grace period ends");
    pool.freePage(table);
    const entry = Atomics.load(pool.ptes, table * 512);
    assert.equal(entry & 1n, 0n, "the walker reads an invalid entry, not garbage");
    assert.equal(pool.isLive(table, gen), false);
  });
});
