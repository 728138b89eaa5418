/**
 * The OWNER_DEAD repair (`repairLockedEntries`) on the states a walker leaves when it dies inside
 * break-before-make, built by hand on one thread: the entry locked by the break's compare-and-swap
 * but the old entry's reference not yet dropped, the reference dropped, and the make's new
 * reference taken but the entry not yet stored; and a walker that died installing over an empty
 * entry, its reference taken and its compare-and-swap not made (nothing locked). Each time the
 * repair must leave the entry empty and the table page's reference count at 1 + its counted
 * entries (the audit's rule).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { lockedMarker, lockOwner, Prot, PTE_LOCKED } from "../arch/descriptor.js";
import { Errno } from "../common/errno.js";
import { auditTable } from "../pgtable/audit.js";
import { map } from "../pgtable/mod.js";
import type { Stage2 } from "../pgtable/stage2.js";
import { type VisitCtx, walk, WalkFlag } from "../pgtable/walk.js";
import { MemCache } from "../mem/mod.js";
import { freezeSubtree } from "../pgtable/ops/unlinked.js";
import { makeFixture } from "../testing/pgtable-harness.js";
import { repairLockedEntries } from "./death.js";
import { Rec, VcpuRecords, VcpuState } from "./vcpu-record.js";
import { Vm } from "./vm.js";

const P = 4096;

/** Where the leaf entry for `ipa` lives (its index in pgt.ptes). */
function leafPtep(pgt: Stage2, ipa: number): number {
  let at = -1;
  const visitor = {
    visit(_pgt: Stage2, ctx: VisitCtx): number {
      at = ctx.ptep;
      return Errno.OK;
    },
  };
  walk(pgt, ipa, P, { visitor, arg: null, flags: WalkFlag.LEAF });
  return at;
}

/** A table with pages mapped at 0 and 2P (one level-3 table page), and the entry for `ipa`. */
function setup(ipa: number): { pgt: Stage2; ptep: number; page: number } {
  const fx = makeFixture();
  assert.equal(fx.mc.topup(8), Errno.OK);
  for (const at of [0, 2 * P]) assert.equal(map(fx.pgt, at, P, 0x4000_0000 + at, Prot.RW, fx.mc), Errno.OK);
  const ptep = leafPtep(fx.pgt, ipa);
  assert.ok(ptep >= 0);
  assert.deepEqual(auditTable(fx.pgt).problems, []);
  return { pgt: fx.pgt, ptep, page: fx.pgt.pageOf(ptep) };
}

function repairAndAudit(pgt: Stage2, ptep: number, what: string, locked = 1): void {
  const ranges = pgt.maint.counts().tlbiRange;
  assert.equal(repairLockedEntries(pgt, new VcpuRecords(1)), locked, `${what}: locked entries`);
  assert.equal(Atomics.load(pgt.ptes, ptep), 0n, `${what}: the entry is empty`);
  assert.deepEqual(auditTable(pgt).problems, [], `${what}: the table audits clean`);
  assert.equal(
    pgt.maint.counts().tlbiRange,
    ranges + locked,
    `${what}: each zapped entry's range invalidated`,
  );
}

test("repair after a death between break and the drop of the old entry's reference", () => {
  const { pgt, ptep } = setup(0);
  // What tryBreakPte's compare-and-swap left: locked; putPage not reached.
  Atomics.store(pgt.ptes, ptep, PTE_LOCKED);
  assert.notDeepEqual(auditTable(pgt).problems, [], "the state is one the audit refuses");
  repairAndAudit(pgt, ptep, "old reference held");
});

test("repair after a death between break (reference dropped) and make", () => {
  const { pgt, ptep, page } = setup(0);
  Atomics.store(pgt.ptes, ptep, PTE_LOCKED);
  pgt.pool.putPage(page);
  repairAndAudit(pgt, ptep, "nothing held");
});

test("repair after a death in make, between taking the new reference and the store", () => {
  const { pgt, ptep, page } = setup(P);
  // A fault locked the empty entry, then makePte took the leaf's reference and died.
  Atomics.store(pgt.ptes, ptep, PTE_LOCKED);
  pgt.pool.getPage(page);
  repairAndAudit(pgt, ptep, "new reference held");
});

test("repair after a death in an install over an empty entry, between its reference and its CAS", () => {
  const { pgt, ptep, page } = setup(P);
  // installOverEmpty takes the reference first (the count never lags a visible entry), then dies
  // at pte.before-cas: nothing is locked, the count is one too high.
  pgt.pool.getPage(page);
  assert.notDeepEqual(auditTable(pgt).problems, [], "the state is one the audit refuses");
  repairAndAudit(pgt, ptep, "install reference held", 0);
});

test("a freeze takes a dead vCPU's locked entry as empty instead of waiting for its make", async () => {
  const vm = await Vm.create({
    granule: P,
    iaBits: 36,
    poolPages: 256,
    mode: "shared",
    vcpus: 2,
    debug: true,
    memslots: [{ ipa: 0, size: 4 * 2 ** 20, backing: "anonymous" }],
  });
  try {
    const mc = new MemCache(vm.pool, 8);
    assert.equal(mc.topup(8), Errno.OK);
    for (const at of [0, 2 * P]) assert.equal(map(vm.pgt, at, P, 0x4000_0000 + at, Prot.RW, mc), Errno.OK);
    const ptep = leafPtep(vm.pgt, P);
    const page = vm.pgt.pageOf(ptep);
    // vCPU 1 broke the entry (its marker names it) and died before its make.
    Atomics.store(vm.pgt.ptes, ptep, lockedMarker(1));
    assert.equal(lockOwner(Atomics.load(vm.pgt.ptes, ptep)), 1);
    Atomics.store(vm.records.words, vm.records.base(1) + Rec.STATE, VcpuState.DEAD);
    const out: number[] = [];
    // Without the owner check this spins 2^20 rounds and reports the table corrupt.
    assert.equal(freezeSubtree(vm.pgt, page, 2, out), Errno.OK);
    assert.deepEqual(out, [page]);
    assert.equal(vm.pgt.stats().corrupt, 0);
    mc.drain();
  } finally {
    await vm.rcu.close();
  }
});
