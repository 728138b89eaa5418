import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Errno } from "../common/errno.js";
import { MemCache } from "./memcache.js";
import { PagePool, PageState } from "./page-pool.js";

function pool4k(pages: number, debug = false): PagePool {
  return PagePool.create({ granule: 4096, pages, debug });
}

describe("MemCache", () => {
  test("topup() fills toward capacity in one batch and alloc() hands the pages out", () => {
    const pool = pool4k(32);
    const cache = new MemCache(pool, 8);
    assert.equal(cache.topup(3), Errno.OK);
    assert.equal(cache.count, 8);
    assert.equal(pool.stats().allocs, 8);
    const seen = new Set<number>();
    for (let i = 0; i < 8; i++) {
      const p = cache.alloc();
      assert.ok(p >= 0 && !seen.has(p));
      seen.add(p);
      assert.equal(pool.state(p), PageState.TABLE);
      assert.equal(pool.refcount(p), 1);
      assert.ok(pool.words.subarray(p * 1024, (p + 1) * 1024).every((w) => w === 0));
    }
    assert.equal(cache.alloc(), -1);
    assert.equal(cache.count, 0);
  });

  test("topup() does nothing while at least min pages are cached", () => {
    const pool = pool4k(32);
    const cache = new MemCache(pool, 4);
    cache.topup(4);
    cache.alloc();
    assert.equal(cache.topup(3), Errno.OK);
    assert.equal(pool.stats().allocs, 4);
    assert.equal(cache.topup(4), Errno.OK);
    assert.equal(cache.count, 4);
    assert.equal(pool.stats().allocs, 5);
  });

  test("topup() gives NOMEM on an exhausted pool, keeps what it got, and drain() leaks nothing", () => {
    const pool = pool4k(3, true);
    const cache = new MemCache(pool, 8);
    assert.equal(cache.topup(4), Errno.NOMEM);
    assert.equal(cache.count, 3);
    assert.equal(cache.topup(4), Errno.NOMEM, "a second attempt fails cleanly too");
    assert.equal(cache.topup(2), Errno.OK);
    const other = new MemCache(pool, 2);
    assert.equal(other.topup(1), Errno.NOMEM);
    assert.equal(other.count, 0);
    cache.drain();
    assert.equal(cache.count, 0);
    assert.deepEqual(pool.allocatedPages(), []);
    assert.deepEqual(pool.audit(), []);
    const s = pool.stats();
    assert.equal(s.allocated, 0);
    assert.equal(s.allocs, s.frees);
    assert.equal(other.topup(2), Errno.OK, "drained pages are available again");
  });

  test("the first min allocations after a successful topup(min) cannot fail", () => {
    const pool = pool4k(4);
    const cache = new MemCache(pool, 16);
    assert.equal(cache.topup(3), Errno.OK);
    assert.equal(cache.count, 4, "the pool had 4 pages for a capacity of 16: still OK since min is met");
    for (let i = 0; i < 3; i++) assert.ok(cache.alloc() >= 0);
  });

  test("rejects a bad capacity and a min above capacity", () => {
    const pool = pool4k(4);
    assert.throws(() => new MemCache(pool, 0), RangeError);
    assert.throws(() => new MemCache(pool, 2.5), RangeError);
    assert.throws(() => new MemCache(pool, 4).topup(5), /capacity is 4/);
  });
});
