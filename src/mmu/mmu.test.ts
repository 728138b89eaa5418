import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Prot } from "../arch/descriptor.js";
import { Errno } from "../common/errno.js";
import { map, testClearYoung, unmap, wrprotect } from "../pgtable/mod.js";
import { makeFixture } from "../testing/pgtable-harness.js";
import { C, H, servicedBy, VState } from "./layout.js";
import { Access, decodeVtcr, Mmu, MmuTlbi, TlbiKind, TTL_NONE, VcpuMmu } from "./mod.js";
import { postTlbi } from "./tlbi.js";

const P = 4096;
const M2 = 2 ** 21;
const G = 2 ** 30;
const PA = 8 * G;

/** A 4K/40-bit table (3 levels, start level 1, two concatenated root pages) with a 2-vCPU model. */
function setUp(check = false) {
  const fx = makeFixture({ iaBits: 40 });
  const mmu = Mmu.create({ vcpus: 2, check });
  fx.pgt.tlb = new MmuTlbi(mmu, fx.pgt, fx.pgt.maint, -1);
  const cpu = new VcpuMmu(mmu, fx.pgt, 0);
  fx.mc.topup(8);
  return { ...fx, mmu, cpu };
}

describe("decodeVtcr()", () => {
  test("reads back the granule, IPA size and start level computeGeometry encoded", () => {
    const { pgt } = makeFixture({ iaBits: 40 });
    assert.deepEqual(decodeVtcr(pgt.geo.vtcr), { granule: 4096, iaBits: 40, startLevel: 1 });
    const f16 = makeFixture({ granule: 16384, iaBits: 40 });
    assert.deepEqual(decodeVtcr(f16.pgt.geo.vtcr), {
      granule: 16384,
      iaBits: 40,
      startLevel: f16.pgt.geo.startLevel,
    });
  });
});

describe("VcpuMmu.access()", () => {
  test("raises a translation fault at the level of the invalid entry and caches nothing", () => {
    const { cpu } = setUp();
    assert.equal(cpu.access(G, false), Access.TRANSLATION_FAULT);
    assert.equal(cpu.faultLevel, 1);
    assert.deepEqual(cpu.tlb.count(), { leaves: 0, tables: 0 });
  });

  test("walks to a page, fills the TLB and walk cache, then hits", () => {
    const { pgt, mc, cpu } = setUp();
    assert.equal(map(pgt, G + 5 * P, P, PA, Prot.RW, mc), Errno.OK);
    assert.equal(cpu.access(G + 5 * P + 8, true), Access.OK);
    assert.deepEqual(cpu.tlb.count(), { leaves: 1, tables: 2 });
    const e = cpu.tlb.lookupLeaf(pgt.vmid, G + 5 * P);
    assert.ok(e >= 0);
    assert.equal(cpu.tlb.entryOa(e), PA);
    assert.equal(cpu.access(G + 5 * P, false), Access.OK);
  });

  test("a 64K leaf's output address above 2^48 (PA[51:48] in descriptor bits 15:12) reaches the TLB whole", () => {
    const fx = makeFixture({ granule: 65536, iaBits: 42, paBits: 52 });
    const mmu = Mmu.create({ vcpus: 1 });
    fx.pgt.tlb = new MmuTlbi(mmu, fx.pgt, fx.pgt.maint, -1);
    const cpu = new VcpuMmu(mmu, fx.pgt, 0);
    fx.mc.topup(8);
    const pa = 2 ** 50 + 3 * 2 ** 33 + 7 * 65536;
    assert.equal(map(fx.pgt, G, 65536, pa, Prot.RW, fx.mc), Errno.OK);
    assert.equal(cpu.access(G + 8, true), Access.OK);
    assert.equal(cpu.tlb.entryOa(cpu.tlb.lookupLeaf(fx.pgt.vmid, G)), pa);
  });

  test("a walk starts below the deepest walk-cache entry, one it filled itself included", () => {
    const { pgt, mc, mmu, cpu } = setUp();
    const fills = () => mmu.words[cpu.tlb.ctl + C.FILLS] as number;
    assert.equal(map(pgt, G, P, PA, Prot.RW, mc), Errno.OK);
    assert.equal(map(pgt, G + M2, 3 * P, PA + M2, Prot.RW, mc), Errno.OK);
    // From the root: the level-1 and level-2 table entries and the leaf.
    assert.equal(cpu.access(G, true), Access.OK);
    assert.equal(fills(), 3);
    // Another 2M region under the same level-1 entry: from that entry, so its level-2 entry and leaf.
    assert.equal(cpu.access(G + M2, true), Access.OK);
    assert.equal(fills(), 5);
    // The next page of that region starts below the level-2 entry the last walk filled: its leaf only.
    assert.equal(cpu.access(G + M2 + P, true), Access.OK);
    assert.equal(fills(), 6);
    // A faulting walk there reads only the level-3 entry.
    assert.equal(cpu.access(G + M2 + 3 * P, true), Access.TRANSLATION_FAULT);
    assert.equal(cpu.faultLevel, 3);
    assert.equal(fills(), 6);
  });

  test("a 2M block is one TLB entry for every page inside it", () => {
    const { pgt, mc, cpu } = setUp();
    assert.equal(map(pgt, G + M2, M2, PA, Prot.RW, mc), Errno.OK);
    assert.equal(cpu.access(G + M2 + 7 * P, false), Access.OK);
    const e = cpu.tlb.lookupLeaf(pgt.vmid, G + M2 + 300 * P);
    assert.ok(e >= 0);
    assert.equal(cpu.tlb.entryOa(e) + 300 * P, PA + 300 * P);
  });

  test("permission and access-flag faults name the leaf level and are not cached", () => {
    const { pgt, mc, cpu } = setUp();
    map(pgt, G, P, PA, Prot.R, mc);
    assert.equal(cpu.access(G, true), Access.PERMISSION_FAULT);
    assert.equal(cpu.faultLevel, 3);
    assert.equal(cpu.tlb.count().leaves, 0);
    map(pgt, G + P, P, PA + P, Prot.RW, mc);
    testClearYoung(pgt, G + P, P, true);
    assert.equal(cpu.access(G + P, false), Access.ACCESS_FLAG_FAULT);
    assert.equal(cpu.tlb.count().leaves, 0);
    // A read-only leaf is cached by a read; a write then faults from the TLB itself.
    assert.equal(cpu.access(G, false), Access.OK);
    assert.equal(cpu.access(G, true), Access.PERMISSION_FAULT);
  });

  test("an instruction fetch faults on an execute-never leaf, from a walk and from the TLB", () => {
    const { pgt, mc, cpu } = setUp();
    map(pgt, G, P, PA, Prot.RW, mc); // XN set
    assert.equal(cpu.access(G, false, true), Access.PERMISSION_FAULT);
    assert.equal(cpu.faultLevel, 3);
    assert.equal(cpu.tlb.count().leaves, 0, "a faulting fetch caches nothing");
    assert.equal(cpu.access(G, false), Access.OK, "a read through the same leaf is fine");
    assert.equal(cpu.access(G, false, true), Access.PERMISSION_FAULT, "the cached leaf keeps its XN");
    map(pgt, G + P, P, PA + P, Prot.RWX, mc);
    assert.equal(cpu.access(G + P, false, true), Access.OK);
    assert.equal(cpu.access(G + P, false, true), Access.OK, "and from the TLB");
  });

  test("unmap and write-protect reach the TLB through the broadcast invalidation", () => {
    const { pgt, mc, cpu } = setUp();
    map(pgt, G, 2 * P, PA, Prot.RW, mc);
    assert.equal(cpu.access(G, true), Access.OK);
    assert.equal(cpu.access(G + P, true), Access.OK);
    unmap(pgt, G, P);
    assert.equal(cpu.access(G, true), Access.TRANSLATION_FAULT);
    wrprotect(pgt, G + P, P);
    // wrprotect() itself issues no TLBI (the host does, after the walk): the stale entry still writes.
    assert.equal(cpu.access(G + P, true), Access.OK);
    pgt.tlb.flushRange(pgt.vmid, G + P, P);
    assert.equal(cpu.access(G + P, true), Access.PERMISSION_FAULT);
  });
});

describe("VcpuMmu: the retry of a faulting walk", () => {
  const count = (mmu: Mmu, cpu: VcpuMmu, c: C) => mmu.words[cpu.tlb.ctl + c] as number;

  test("walks without a lookup, fills the TLB, and the next access hits", () => {
    const { pgt, mc, mmu, cpu } = setUp();
    map(pgt, G + P, P, PA + P, Prot.RW, mc);
    assert.equal(cpu.access(G, true), Access.TRANSLATION_FAULT);
    map(pgt, G, P, PA, Prot.RW, mc);
    assert.equal(cpu.access(G, true), Access.OK);
    assert.equal(cpu.tlb.entryOa(cpu.tlb.lookupLeaf(pgt.vmid, G)), PA);
    assert.equal(cpu.access(G, false), Access.OK);
    assert.deepEqual(
      [count(mmu, cpu, C.WALKS), count(mmu, cpu, C.HITS), count(mmu, cpu, C.FAULTS)],
      [2, 1, 1],
    );
  });

  test("looks up again once another walk filled a leaf that covers the faulting address", () => {
    const { pgt, mc, mmu, cpu } = setUp();
    assert.equal(cpu.access(G + M2 + 5 * P, true), Access.TRANSLATION_FAULT);
    assert.equal(map(pgt, G + M2, M2, PA, Prot.RW, mc), Errno.OK);
    // Another page of the new block fills its one leaf; the faulting address then hits it.
    assert.equal(cpu.access(G + M2, true), Access.OK);
    assert.equal(cpu.access(G + M2 + 5 * P, true), Access.OK);
    assert.deepEqual([count(mmu, cpu, C.WALKS), count(mmu, cpu, C.HITS)], [2, 1]);
    const stats = mmu.vcpuStats(pgt)[0];
    assert.deepEqual([stats?.accesses, stats?.faults], [3, 1]);
  });
});

describe("VcpuMmu.enterGuest() .. leaveGuest()", () => {
  test("holds STATE across accesses and acknowledges a TLBI at the next access", () => {
    const { pgt, mc, mmu, cpu } = setUp();
    map(pgt, G, 2 * P, PA, Prot.RW, mc);
    const state = () => Atomics.load(mmu.words, cpu.tlb.ctl + C.STATE);
    const acked = () => Atomics.load(mmu.words, cpu.tlb.ctl + C.ACKED);
    cpu.enterGuest();
    assert.equal(state(), VState.IN_ACCESS);
    assert.equal(cpu.guestAccess(G, true, false), Access.OK);
    // Posted, not yet complete: a poster could not take our STATE to drain on our behalf.
    const seq = postTlbi(mmu.words, TlbiKind.IPA, pgt.vmid, G, 0, TTL_NONE, -1);
    assert.equal(acked(), seq);
    assert.equal(
      Atomics.compareExchange(mmu.words, cpu.tlb.ctl + C.STATE, VState.IDLE, VState.SERVICED),
      VState.IN_ACCESS,
    );
    assert.ok(cpu.tlb.lookupLeaf(pgt.vmid, G) >= 0, "not applied between accesses");
    assert.equal(cpu.guestAccess(G + P, true, false), Access.OK);
    assert.equal(acked(), seq + 1, "applied before the next access translated");
    assert.equal(cpu.tlb.lookupLeaf(pgt.vmid, G), -1);
    postTlbi(mmu.words, TlbiKind.IPA, pgt.vmid, G + P, 0, TTL_NONE, -1);
    cpu.leaveGuest();
    assert.equal(acked(), Atomics.load(mmu.words, H.RING_HEAD), "and on the way out");
    assert.equal(cpu.tlb.lookupLeaf(pgt.vmid, G + P), -1);
    assert.equal(state(), VState.IDLE);
  });
});

describe("Mmu.releaseDeadVcpu()", () => {
  test("hands back a vCPU whose ring a dead vCPU was draining as a TLBI poster, and only that", () => {
    const { pgt, mc, mmu, cpu } = setUp();
    map(pgt, G, P, PA, Prot.RW, mc);
    assert.equal(cpu.access(G, true), Access.OK);
    const state = () => Atomics.load(mmu.words, cpu.tlb.ctl + C.STATE);
    // vCPU 1, posting a TLBI, took vCPU 0's STATE to drain its ring for it, and was killed there.
    const seq = postTlbi(mmu.words, TlbiKind.IPA, pgt.vmid, G, 0, TTL_NONE, 1);
    assert.equal(
      Atomics.compareExchange(mmu.words, cpu.tlb.ctl + C.STATE, VState.IDLE, servicedBy(1)),
      VState.IDLE,
    );
    assert.equal(mmu.releaseDeadVcpu(0), 0, "a hold of another thread's is not the dead vCPU's to give back");
    assert.equal(state(), servicedBy(1));
    assert.equal(mmu.releaseDeadVcpu(1), 1);
    assert.equal(state(), VState.IDLE);
    // vCPU 0 enters again and applies the TLBI its dead servicer never acknowledged for it.
    assert.equal(Atomics.load(mmu.words, cpu.tlb.ctl + C.ACKED), seq);
    assert.equal(cpu.access(G, true), Access.OK);
    assert.equal(Atomics.load(mmu.words, cpu.tlb.ctl + C.ACKED), seq + 1);
  });

  test("and one killed inside a guest access is set idle", () => {
    const { mmu, cpu } = setUp();
    cpu.enterGuest();
    assert.equal(mmu.releaseDeadVcpu(0), 1);
    assert.equal(Atomics.load(mmu.words, cpu.tlb.ctl + C.STATE), VState.IDLE);
  });
});

describe("MmuTlbi.abandonUpdates()", () => {
  test("a dead vCPU's open update silences the checks only until the repair closes it", () => {
    const { pgt, mc, mmu, cpu } = setUp(true);
    map(pgt, G, P, PA, Prot.RW, mc);
    assert.equal(cpu.access(G, true), Access.OK);
    // vCPU 1 began an update as a TLBI poster and died inside it: its count stays open.
    new MmuTlbi(mmu, pgt, pgt.maint, 1).updateBegin();
    // A write-protect whose TLBI has not come yet: the cached writable entry is stale.
    wrprotect(pgt, G, P);
    assert.equal(cpu.access(G, true), Access.OK);
    assert.deepEqual(mmu.violations(), [], "an update is in flight: the write may still land");
    // The OWNER_DEAD repair closes the dead vCPU's updates (death.ts): the same write is a finding.
    pgt.tlb.abandonUpdates(1);
    assert.equal(cpu.access(G, true), Access.OK);
    assert.deepEqual(
      mmu.violations().map((v) => v.kind),
      ["dirty log"],
    );
  });
});

describe("VcpuMmu.enterGuest() while a poster holds its TLB", () => {
  test("fails loudly, naming the holder, once it has waited STUCK_MS (10 s)", () => {
    const { mmu, cpu } = setUp();
    Atomics.store(mmu.words, cpu.tlb.ctl + C.STATE, servicedBy(1));
    assert.throws(
      () => cpu.enterGuest(),
      /^Error: vCPU 0 cannot enter the guest: vCPU 1 has held its TLB \(stuck, or its thread is gone and was not reaped\) for 10 s$/,
    );
  });
});

describe("VcpuTlb.invalidate()", () => {
  function filled() {
    const s = setUp();
    map(s.pgt, G, P, PA, Prot.RW, s.mc);
    map(s.pgt, G + M2, M2, PA + M2, Prot.RW, s.mc);
    assert.equal(s.cpu.access(G, false), Access.OK);
    assert.equal(s.cpu.access(G + M2, false), Access.OK);
    return s;
  }

  test("by IPA without a hint drops the leaf and the walk-cache entries on its path", () => {
    const { pgt, cpu } = filled();
    cpu.tlb.invalidate(TlbiKind.IPA, pgt.vmid, G, 0, TTL_NONE);
    assert.equal(cpu.tlb.lookupLeaf(pgt.vmid, G), -1);
    assert.equal(cpu.tlb.lookupTable(pgt.vmid, G), -1);
    assert.ok(cpu.tlb.lookupLeaf(pgt.vmid, G + M2) >= 0);
  });

  test("a right TTL hint drops the leaf; a wrong one drops nothing; walk caches stay", () => {
    const { pgt, cpu } = filled();
    cpu.tlb.invalidate(TlbiKind.IPA, pgt.vmid, G, 0, 2);
    assert.ok(cpu.tlb.lookupLeaf(pgt.vmid, G) >= 0, "wrong hint (2 for a page)");
    cpu.tlb.invalidate(TlbiKind.IPA, pgt.vmid, G, 0, 3);
    assert.equal(cpu.tlb.lookupLeaf(pgt.vmid, G), -1);
    assert.ok(cpu.tlb.lookupTable(pgt.vmid, G) >= 0, "hinted: walk cache kept");
  });

  test("last level only keeps the walk cache", () => {
    const { pgt, cpu } = filled();
    cpu.tlb.invalidate(TlbiKind.IPA_LAST_LEVEL, pgt.vmid, G, 0, TTL_NONE);
    assert.equal(cpu.tlb.lookupLeaf(pgt.vmid, G), -1);
    assert.ok(cpu.tlb.lookupTable(pgt.vmid, G) >= 0);
  });

  test("by range drops what overlaps, and by VMID drops everything of the VMID", () => {
    const { pgt, cpu } = filled();
    cpu.tlb.invalidate(TlbiKind.RANGE, pgt.vmid, G + M2 + 4 * P, P, TTL_NONE);
    assert.equal(cpu.tlb.lookupLeaf(pgt.vmid, G + M2), -1, "the block overlaps one page of the range");
    assert.ok(cpu.tlb.lookupLeaf(pgt.vmid, G) >= 0);
    cpu.tlb.invalidate(TlbiKind.VMID, pgt.vmid + 1, 0, 0, TTL_NONE);
    assert.ok(cpu.tlb.lookupLeaf(pgt.vmid, G) >= 0, "another VMID");
    cpu.tlb.invalidate(TlbiKind.VMID, pgt.vmid, 0, 0, TTL_NONE);
    assert.deepEqual(cpu.tlb.count(), { leaves: 0, tables: 0 });
  });

  test("every vCPU's TLB gets a broadcast invalidation, idle ones drained by the poster", () => {
    const { pgt, mc, mmu, cpu } = setUp();
    const cpu1 = new VcpuMmu(mmu, pgt, 1);
    map(pgt, G, P, PA, Prot.RW, mc);
    assert.equal(cpu.access(G, false), Access.OK);
    assert.equal(cpu1.access(G, false), Access.OK);
    pgt.tlb.flushIpa(pgt.vmid, G, 3);
    assert.equal(cpu.tlb.lookupLeaf(pgt.vmid, G), -1);
    assert.equal(cpu1.tlb.lookupLeaf(pgt.vmid, G), -1);
    assert.ok(mmu.vcpuStats(pgt).every((s) => s.serviced >= 1));
  });
});
