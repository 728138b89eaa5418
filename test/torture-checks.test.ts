/**
 * The torture's own checks, each shown to fire on a deliberately broken input and to stay quiet on
 * a correct one: the RCU age check (a reader inside a table 2 grace periods after its unlink), and
 * the injected allocation failures (ENOMEM with nothing taken).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Prot } from "../src/arch/descriptor.js";
import { Errno } from "../src/common/errno.js";
import {
  clearFailures,
  injectedCounts,
  RacePoint,
  resetInjectedCounts,
  setFailureRates,
} from "../src/common/race-points.js";
import { Vm } from "../src/kvm/vm.js";
import { MemCache, PagePool } from "../src/mem/mod.js";
import { LeafResult, getLeaf } from "../src/pgtable/ops/attr.js";
import { map } from "../src/pgtable/mod.js";
import { WalkFlag } from "../src/pgtable/walk.js";
import { createAgeTable, installAgeCheck, recordUnlinked, takeAgeReport } from "../src/sim/rcu-age.js";

const G = 2 ** 30;
const P = 4096;

test("rcu age: pages entered 0 and 1 grace periods after their unlink pass, 2 is a violation", async () => {
  const vm = await Vm.create({
    granule: 4096,
    iaBits: 40,
    poolPages: 64,
    debug: true,
    mode: "shared",
    vcpus: 1,
  });
  try {
    const mc = new MemCache(vm.pool, 8);
    assert.equal(mc.topup(4), Errno.OK);
    assert.equal(map(vm.pgt, G, P, G, Prot.RW, mc), Errno.OK);
    mc.drain();
    vm.pgt.checkUaf = true;
    const leaf = new LeafResult();
    const walk = () => getLeaf(vm.pgt, G, leaf, WalkFlag.SHARED);
    installAgeCheck(createAgeTable(vm.pool.pageCount, vm.rcu.handle.rcu.ctl), vm.pgt);
    // The broken variant: every table is recorded as unlinked while readers still reach it, as if
    // a strategy unlinked it and readers kept its pointer across grace periods.
    recordUnlinked(vm.pgt, vm.pgt.rootPage, vm.pgt.geo.startLevel - 1);
    walk();
    let r = takeAgeReport();
    assert.equal(r.violations, 0);
    assert.ok(r.histogram[0] > 0, `age 0: ${r.histogram}`);
    installAgeCheck(createAgeTable(vm.pool.pageCount, vm.rcu.handle.rcu.ctl), vm.pgt);
    recordUnlinked(vm.pgt, vm.pgt.rootPage, vm.pgt.geo.startLevel - 1);
    vm.rcu.synchronize();
    walk();
    r = takeAgeReport();
    assert.equal(r.violations, 0, r.first ?? "");
    assert.ok(r.histogram[1] > 0 && r.histogram[0] === 0, `age 1: ${r.histogram}`);
    installAgeCheck(createAgeTable(vm.pool.pageCount, vm.rcu.handle.rcu.ctl), vm.pgt);
    recordUnlinked(vm.pgt, vm.pgt.rootPage, vm.pgt.geo.startLevel - 1);
    vm.rcu.synchronize();
    vm.rcu.synchronize();
    walk();
    r = takeAgeReport();
    assert.ok(r.violations > 0 && r.histogram[2] > 0, `age 2 not caught: ${r.histogram}`);
    assert.match(r.first ?? "", /2 grace periods after its unlink/);
    // An exclusive walk is no RCU reader: not looked at.
    installAgeCheck(createAgeTable(vm.pool.pageCount, vm.rcu.handle.rcu.ctl), vm.pgt);
    recordUnlinked(vm.pgt, vm.pgt.rootPage, vm.pgt.geo.startLevel - 1);
    vm.rcu.synchronize();
    vm.rcu.synchronize();
    getLeaf(vm.pgt, G, leaf, 0);
    r = takeAgeReport();
    assert.deepEqual(r.histogram, [0, 0, 0, 0]);
  } finally {
    takeAgeReport();
    await vm.destroy();
  }
});

test("injected ENOMEM: allocBatch and topup fail before taking anything, and count it", () => {
  const pool = PagePool.create({ granule: 4096, pages: 32, debug: true });
  const cache = new MemCache(pool, 8);
  resetInjectedCounts();
  try {
    setFailureRates({ [RacePoint.ALLOC_PAGE]: 1 }, 1);
    assert.equal(pool.allocPage(), -1);
    assert.equal(pool.allocBatch(new Int32Array(4), 4), 0);
    assert.equal(cache.topup(2), Errno.NOMEM);
    assert.equal(cache.count, 0);
    assert.equal(pool.stats().allocated, 0);
    assert.equal(pool.stats().allocFailures, 3);
    setFailureRates({ [RacePoint.MEMCACHE_TOPUP]: 1 }, 1);
    assert.equal(cache.topup(2), Errno.NOMEM);
    assert.equal(pool.stats().allocated, 0);
    assert.deepEqual(injectedCounts().failures, { "alloc.page": 3, "memcache.topup": 1 });
    clearFailures();
    assert.equal(cache.topup(2), Errno.OK);
    cache.drain();
    assert.deepEqual(pool.allocatedPages(), []);
    assert.deepEqual(pool.audit(), []);
  } finally {
    clearFailures();
  }
});
