/**
 * Host operations on one thread: memslot create/delete/move and their errors, lookups, mapping
 * sizes per backing, MMU-notifier sequence, dirty-log bitmap semantics in both protect modes,
 * eager splitting in chunks, test-and-clear-young and idle counts. Mappings that vCPUs would
 * fault in are installed with the page table's own map() (exclusive, this thread); the fault path
 * itself is covered by test/kvm-*.test.ts with worker threads.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Prot, pteValid, S2_S2AP_W } from "../arch/descriptor.js";
import { computeGeometry } from "../arch/geometry.js";
import { Errno } from "../common/errno.js";
import { MemCache } from "../mem/mod.js";
import { getLeaf, LeafResult, map } from "../pgtable/mod.js";
import { backingMapSize, mappingSize, SlotRef, SlotWord } from "./memslot.js";
import { MmuSeq, mmuSeqRead, mmuSeqRetry } from "./mmu-seq.js";
import { Rng, seedFromEnv } from "../common/rng.js";
import { clearFailures, RacePoint, setFailureRates } from "../common/race-points.js";
import { Vm } from "./vm.js";

const P = 4096;
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

let vm: Vm;
let mc: MemCache;
const leaf = new LeafResult();

before(async () => {
  vm = await Vm.create({
    granule: P,
    iaBits: 40,
    poolPages: 4096,
    debug: true,
    mode: "shared",
    vcpus: 1,
    maxMemslots: 8,
  });
  mc = new MemCache(vm.pool, 16);
});

after(async () => {
  mc.drain();
  const r = await vm.destroy();
  assert.deepEqual(r.leakedPages, []);
});

/** What a vCPU's fault would map: [ipa, ipa+size) of slot `id` with `prot`. */
function fault(id: number, ipa: number, size: number, prot = Prot.RW): void {
  const s = vm.memslot(id);
  assert.ok(s);
  assert.equal(mc.topup(8), Errno.OK);
  assert.equal(map(vm.pgt, ipa, size, s.hostPa + (ipa - s.ipa), prot, mc), Errno.OK);
}

function leafAt(ipa: number): LeafResult {
  assert.equal(getLeaf(vm.pgt, ipa, leaf), Errno.OK);
  return leaf;
}

function writable(ipa: number): boolean {
  const l = leafAt(ipa);
  return pteValid(l.pte) && (l.pte & S2_S2AP_W) !== 0n;
}

function clearAll(): void {
  for (const id of vm.host.memslotIds()) vm.deleteMemslot(id);
}

describe("createMemslot()", () => {
  test("createMemslot() hands out the lowest free id and lookup() finds the slot", () => {
    clearAll();
    const a = vm.createMemslot({ ipa: GIB, size: 2 * MIB, backing: "anonymous" });
    const b = vm.createMemslot({
      ipa: 2 * GIB,
      size: 4 * MIB,
      hostPa: 0x40_0000_0000,
      backing: "anonymous_thp",
    });
    assert.deepEqual([a, b], [0, 1]);
    const ref = new SlotRef();
    assert.equal(vm.memslots.lookup(2 * GIB + 5 * P, ref), 1);
    assert.equal(ref.hostPa, 0x40_0000_0000);
    assert.equal(vm.memslots.lookup(GIB + 2 * MIB, ref), -1, "just past slot 0 is MMIO");
    vm.deleteMemslot(a);
    assert.equal(vm.memslots.lookup(GIB, ref), -1);
    assert.equal(vm.createMemslot({ ipa: 3 * GIB, size: P, backing: "anonymous" }), 0, "id 0 is reused");
    assert.deepEqual(vm.memslot(1), {
      id: 1,
      ipa: 2 * GIB,
      size: 4 * MIB,
      hostPa: 0x40_0000_0000,
      backing: "anonymous_thp",
      readOnly: false,
      logging: false,
      manualProtect: false,
    });
  });

  test("createMemslot() rejects bad ranges with a RangeError naming the value", () => {
    clearAll();
    vm.createMemslot({ ipa: GIB, size: 2 * MIB, backing: "anonymous" });
    const bad: [Parameters<Vm["createMemslot"]>[0], RegExp][] = [
      [{ ipa: GIB + 2 * MIB + 1, size: P, backing: "anonymous" }, /multiples of 4096/],
      [{ ipa: GIB + MIB, size: 2 * MIB, backing: "anonymous" }, /overlaps memslot 0 \[0x40000000/],
      [{ ipa: 2 ** 40 - P, size: 2 * P, backing: "anonymous" }, /40-bit IPA space/],
      [
        { ipa: 4 * GIB, size: GIB, hostPa: 2 * MIB, backing: "anonymous_hugetlb_1gb" },
        /multiples of 1073741824/,
      ],
      [{ ipa: 4 * GIB, size: P, hostPa: 2 ** 48, backing: "anonymous" }, /48-bit PA space/],
      [{ ipa: 4 * GIB, size: P, backing: "hugepages" as never }, /Unknown memslot backing "hugepages"/],
    ];
    for (const [spec, msg] of bad)
      assert.throws(
        () => vm.createMemslot(spec),
        (e: Error) => e instanceof RangeError && msg.test(e.message),
      );
  });

  test("createMemslot() throws once maxMemslots slots are live", () => {
    clearAll();
    for (let i = 0; i < 8; i++) vm.createMemslot({ ipa: GIB + i * MIB, size: MIB, backing: "anonymous" });
    assert.throws(
      () => vm.createMemslot({ ipa: 2 * GIB, size: MIB, backing: "anonymous" }),
      /all 8 slots are in use/,
    );
    clearAll();
  });
});

describe("lookup()", () => {
  test("lookup() agrees with a brute-force search through random creates, moves and deletes", async () => {
    const seed = seedFromEnv();
    console.log(`# memslot lookup: seed ${seed} (replay: STAGE2_SEED=${seed})`);
    const rng = new Rng(seed);
    const big = await Vm.create({
      granule: P,
      iaBits: 40,
      poolPages: 64,
      mode: "shared",
      vcpus: 1,
      maxMemslots: 256,
    });
    try {
      const ref = new SlotRef();
      const free = (ipa: number): boolean =>
        big.host.memslotIds().every((id) => {
          const s = big.memslot(id);
          return s === undefined || ipa + 2 * MIB <= s.ipa || s.ipa + s.size <= ipa;
        });
      for (let step = 0; step < 2000; step++) {
        const ids = big.host.memslotIds();
        const ipa = (1 + rng.below(1024)) * 2 * MIB;
        const dice = rng.next();
        if (dice < 0.5 && ids.length < 256 && free(ipa))
          big.createMemslot({ ipa, size: 2 * MIB, backing: "anonymous" });
        else if (dice < 0.75 && ids.length > 0 && free(ipa))
          big.moveMemslot(ids[rng.below(ids.length)] as number, ipa);
        else if (ids.length > 0) big.deleteMemslot(ids[rng.below(ids.length)] as number);
        for (let probe = 0; probe < 8; probe++) {
          const at = (2 + rng.below(2 * 1024 * 512)) * P;
          const want =
            big.host.memslotIds().find((id) => {
              const s = big.memslot(id);
              return s !== undefined && at >= s.ipa && at < s.ipa + s.size;
            }) ?? -1;
          assert.equal(
            big.memslots.lookup(at, ref),
            want,
            `seed ${seed} step ${step}: lookup(0x${at.toString(16)})`,
          );
        }
      }
    } finally {
      await big.destroy();
    }
  });
});

describe("deleteMemslot() and moveMemslot()", () => {
  test("deleteMemslot() unmaps the slot's range and bumps MMU_SEQ", () => {
    clearAll();
    const id = vm.createMemslot({ ipa: GIB, size: 4 * MIB, backing: "anonymous_thp" });
    fault(id, GIB, 2 * MIB);
    fault(id, GIB + 2 * MIB, P);
    const seq = mmuSeqRead(vm.memslots.words);
    vm.deleteMemslot(id);
    assert.ok(!pteValid(leafAt(GIB).pte) && !pteValid(leafAt(GIB + 2 * MIB).pte));
    assert.equal(mmuSeqRead(vm.memslots.words), seq + MmuSeq.SEQ_ONE);
    assert.throws(() => vm.deleteMemslot(id), /no such memslot/);
    assert.throws(() => vm.deleteMemslot(99), /ids are 0\.\.7/);
  });

  test("moveMemslot() unmaps the old range and keeps the host memory", () => {
    clearAll();
    const id = vm.createMemslot({ ipa: GIB, size: 2 * MIB, hostPa: 0x80_0000_0000, backing: "anonymous" });
    const other = vm.createMemslot({ ipa: 3 * GIB, size: 2 * MIB, backing: "anonymous" });
    fault(id, GIB, P);
    vm.moveMemslot(id, 2 * GIB);
    assert.ok(!pteValid(leafAt(GIB).pte));
    const ref = new SlotRef();
    assert.equal(vm.memslots.lookup(GIB, ref), -1);
    assert.equal(vm.memslots.lookup(2 * GIB + P, ref), id);
    assert.equal(ref.hostPa, 0x80_0000_0000);
    assert.throws(() => vm.moveMemslot(id, 3 * GIB - MIB), new RegExp(`overlaps memslot ${other}`));
    assert.throws(() => vm.moveMemslot(id, 2 * GIB + 1), RangeError);
    assert.equal(vm.memslot(id)?.ipa, 2 * GIB, "a refused move changes nothing");
  });
});

describe("mappingSize()", () => {
  test("mappingSize() follows the backing, the slot bounds, congruence and logging", () => {
    clearAll();
    const geo = computeGeometry(4096, 40);
    const max = [0, 1, 2, 3].map((c) => backingMapSize(c, geo));
    assert.deepEqual(max, [P, 2 * MIB, 2 * MIB, GIB]);
    const ref = new SlotRef();
    const cases: [Parameters<Vm["createMemslot"]>[0], number, number][] = [
      [{ ipa: GIB, size: GIB, backing: "anonymous" }, GIB, P],
      [{ ipa: GIB, size: GIB, backing: "anonymous_thp" }, GIB, 2 * MIB],
      [{ ipa: GIB, size: GIB, backing: "anonymous_hugetlb_2mb" }, GIB, 2 * MIB],
      [{ ipa: GIB, size: GIB, backing: "anonymous_hugetlb_1gb" }, GIB, GIB],
      [{ ipa: GIB, size: 4 * MIB, hostPa: GIB + P, backing: "anonymous_thp" }, GIB, P],
      [{ ipa: GIB + P, size: 4 * MIB, backing: "anonymous_thp" }, GIB + P, P],
    ];
    for (const [spec, at, size] of cases) {
      const id = vm.createMemslot(spec);
      vm.memslots.lookup(at, ref);
      assert.equal(mappingSize(ref, at, geo, max), size, `${spec.backing} at 0x${at.toString(16)}`);
      vm.deleteMemslot(id);
    }
    const id = vm.createMemslot({ ipa: GIB, size: GIB, backing: "anonymous_hugetlb_1gb" });
    vm.enableDirtyLogging(id);
    vm.memslots.lookup(GIB, ref);
    assert.equal(mappingSize(ref, GIB, geo, max), P, "pages while logging");
    vm.deleteMemslot(id);
  });
});

describe("MMU notifiers", () => {
  test("invalidateRangeStart() makes faults retry until invalidateRangeEnd() and after", () => {
    clearAll();
    const id = vm.createMemslot({ ipa: GIB, size: 2 * MIB, backing: "anonymous" });
    fault(id, GIB, P);
    const w = vm.memslots.words;
    const before = mmuSeqRead(w);
    vm.invalidateRangeStart(GIB, 2 * MIB);
    assert.ok(!pteValid(leafAt(GIB).pte), "start unmaps");
    const during = mmuSeqRead(w);
    assert.ok(mmuSeqRetry(w, before) && mmuSeqRetry(w, during), "in progress: every fault retries");
    vm.invalidateRangeEnd(GIB, 2 * MIB);
    assert.ok(mmuSeqRetry(w, during), "a fault that began inside the invalidation retries");
    const now = mmuSeqRead(w);
    assert.ok(!mmuSeqRetry(w, now));
    assert.equal(now, before + MmuSeq.SEQ_ONE);
    assert.throws(() => vm.invalidateRangeEnd(GIB, P), /none is in progress/);
    assert.throws(() => vm.unmap(GIB, 3), /multiples of 4096/);
    assert.equal(Atomics.load(w, SlotWord.GEN) % 2, 0);
  });
});

describe("access tracking", () => {
  test("testClearYoung() counts young pages once; countIdle() counts the rest", () => {
    clearAll();
    const id = vm.createMemslot({ ipa: GIB, size: 4 * MIB, backing: "anonymous_thp" });
    fault(id, GIB, 2 * MIB);
    for (let i = 0; i < 8; i++) fault(id, GIB + 2 * MIB + i * P, P);
    const total = (4 * MIB) / P;
    assert.equal(vm.countIdle(GIB, 4 * MIB), total - 512 - 8);
    assert.equal(vm.testClearYoung(GIB, 4 * MIB), 512 + 8);
    assert.equal(vm.testClearYoung(GIB, 4 * MIB), 0, "cleared");
    assert.equal(vm.countIdle(GIB, 4 * MIB), total);
    fault(id, GIB + 2 * MIB + P, P); // an access-flag fault sets it again
    assert.equal(vm.countIdle(GIB + 2 * MIB, 2 * MIB), 511);
    assert.equal(vm.testClearYoung(GIB + MIB, MIB), 0, "part of an old block");
  });
});

describe("dirty logging", () => {
  test("enableDirtyLogging() without manual protect write-protects the slot with one range TLBI", () => {
    clearAll();
    const id = vm.createMemslot({ ipa: GIB, size: 4 * MIB, backing: "anonymous_thp" });
    fault(id, GIB, 2 * MIB);
    fault(id, GIB + 2 * MIB, P);
    vm.pgt.maint.flush();
    const t0 = vm.pgt.maint.counts().tlbiRange;
    assert.deepEqual(vm.enableDirtyLogging(id), { splitChunks: 0, splitComplete: true });
    vm.pgt.maint.flush();
    assert.equal(vm.pgt.maint.counts().tlbiRange, t0 + 1);
    assert.ok(!writable(GIB) && !writable(GIB + 2 * MIB));
    assert.equal(countBits(vm.getDirtyLog(id)), 0);
    assert.throws(() => vm.enableDirtyLogging(id), /already enabled/);
    assert.throws(() => vm.clearDirtyLog(id, 0, 64), /manual protect is off/);
  });

  test("getDirtyLog() without manual protect returns the dirty pages, clears them and re-protects them", () => {
    clearAll();
    const id = vm.createMemslot({ ipa: GIB, size: 4 * MIB, backing: "anonymous" });
    vm.enableDirtyLogging(id);
    const ref = new SlotRef();
    for (const page of [0, 5, 33, 1023]) {
      fault(id, GIB + page * P, P);
      vm.memslots.lookup(GIB + page * P, ref);
      vm.memslots.markDirty(ref, GIB + page * P);
    }
    const log = vm.getDirtyLog(id);
    assert.equal(log.length, 32);
    assert.deepEqual(setBits(log), [0, 5, 33, 1023]);
    for (const page of [0, 5, 33, 1023]) assert.ok(!writable(GIB + page * P), `page ${page} re-protected`);
    assert.deepEqual(setBits(vm.getDirtyLog(id)), [], "get cleared the log");
  });

  test("manual protect with the log initially set: enable protects nothing, clear protects what it clears", () => {
    clearAll();
    const id = vm.createMemslot({ ipa: GIB, size: 4 * MIB, backing: "anonymous_thp" });
    fault(id, GIB, 2 * MIB);
    fault(id, GIB + 2 * MIB, 2 * MIB);
    vm.enableDirtyLogging(id, { manualProtect: true });
    assert.ok(writable(GIB) && writable(GIB + 2 * MIB), "nothing protected up front");
    assert.equal(countBits(vm.getDirtyLog(id)), 1024, "initially set");
    assert.equal(countBits(vm.getDirtyLog(id)), 1024, "get does not clear");
    assert.equal(vm.clearDirtyLog(id, 0, 64), 64);
    assert.ok(!writable(GIB), "the cleared pages' block is protected");
    assert.ok(writable(GIB + 2 * MIB), "the other block is not");
    const mask = new Uint32Array(2);
    mask[0] = 0b101;
    assert.equal(vm.clearDirtyLog(id, 512, 64, mask), 2);
    assert.equal(vm.clearDirtyLog(id, 512, 64, mask), 0, "already clear");
    const log = vm.getDirtyLog(id);
    assert.equal(countBits(log), 1024 - 66);
    assert.ok(!writable(GIB + 2 * MIB));
    assert.throws(() => vm.clearDirtyLog(id, 32, 64), /not 64-page aligned/);
    assert.throws(() => vm.clearDirtyLog(id, 960, 128), /it has 1024 pages/);
    assert.throws(() => vm.clearDirtyLog(id, 0, 128, new Uint32Array(2)), /need 4/);
    vm.disableDirtyLogging(id);
    assert.throws(() => vm.getDirtyLog(id), /dirty logging is off/);
  });

  test("manual protect without initially-set protects the slot at enable and starts clean", () => {
    clearAll();
    const id = vm.createMemslot({ ipa: GIB, size: 2 * MIB, backing: "anonymous_thp" });
    fault(id, GIB, 2 * MIB);
    vm.enableDirtyLogging(id, { manualProtect: true, initiallySet: false });
    assert.ok(!writable(GIB));
    assert.equal(countBits(vm.getDirtyLog(id)), 0);
    assert.throws(
      () =>
        vm.enableDirtyLogging(vm.createMemslot({ ipa: 2 * GIB, size: P, backing: "anonymous" }), {
          initiallySet: true,
        }),
      /requires manualProtect/,
    );
  });

  test("eager splitting splits every block in chunks, retaking the write lock per chunk", () => {
    clearAll();
    const id = vm.createMemslot({ ipa: GIB, size: 8 * MIB, backing: "anonymous_thp" });
    for (let i = 0; i < 4; i++) fault(id, GIB + i * 2 * MIB, 2 * MIB);
    const w0 = vm.lock.stats().writeAcquisitions;
    const r = vm.enableDirtyLogging(id, { eagerSplitChunk: 4 * MIB });
    assert.equal(r.splitChunks, 2);
    // One write lock to publish + protect, then one per chunk.
    assert.equal(vm.lock.stats().writeAcquisitions - w0, 1 + 2);
    for (let i = 0; i < 4; i++) {
      const l = leafAt(GIB + i * 2 * MIB + 7 * P);
      assert.equal(l.level, 3, `block ${i} split to pages`);
      assert.ok((l.pte & S2_S2AP_W) === 0n, "split pages keep the write protection");
    }
    vm.deleteMemslot(id);
  });

  test("eager splitting with the log initially set splits at clear time, the whole 1 GiB region", () => {
    clearAll();
    const id = vm.createMemslot({ ipa: GIB, size: 4 * MIB, backing: "anonymous_thp" });
    fault(id, GIB, 2 * MIB);
    fault(id, GIB + 2 * MIB, 2 * MIB);
    assert.equal(vm.enableDirtyLogging(id, { manualProtect: true, eagerSplitChunk: 2 * MIB }).splitChunks, 0);
    assert.equal(leafAt(GIB).level, 2, "nothing split at enable");
    vm.clearDirtyLog(id, 0, 64);
    assert.equal(leafAt(GIB).level, 3, "cleared range split");
    assert.equal(leafAt(GIB + 2 * MIB).level, 3, "as Linux: the region around it, aligned to 1 GiB, too");
    assert.ok(!writable(GIB) && writable(GIB + 64 * P), "only the cleared pages protected");
    assert.ok(writable(GIB + 2 * MIB));
    assert.equal(vm.host.memcache.count, 0, "the split cache was drained");
  });

  test("eager splitting is best effort: with the pool dry, logging is on and every cleared page protected", () => {
    clearAll();
    const id = vm.createMemslot({ ipa: GIB, size: 4 * MIB, backing: "anonymous_thp" });
    fault(id, GIB, 2 * MIB);
    fault(id, GIB + 2 * MIB, 2 * MIB);
    // Every allocation fails, as with an exhausted pool (the host thread is this one).
    setFailureRates({ [RacePoint.ALLOC_PAGE]: 1, [RacePoint.MEMCACHE_TOPUP]: 1 }, 1);
    try {
      const r = vm.enableDirtyLogging(id, { eagerSplitChunk: 2 * MIB });
      assert.deepEqual(r, { splitChunks: 0, splitComplete: false });
      assert.equal(vm.memslot(id)?.logging, true, "logging is on although the split stopped");
      assert.equal(leafAt(GIB).level, 2, "the block stays, for a write fault to split");
      assert.ok(!writable(GIB) && !writable(GIB + 2 * MIB), "the whole slot is write-protected");
      assert.equal(vm.host.memcache.count, 0, "the split cache was drained");
      vm.disableDirtyLogging(id);
      // At clear time (manual protect, log initially set): the cleared bits' pages are protected
      // even though the split could not run, so no write escapes the log.
      clearFailures();
      vm.unmap(GIB, 4 * MIB);
      fault(id, GIB, 2 * MIB);
      fault(id, GIB + 2 * MIB, 2 * MIB);
      vm.enableDirtyLogging(id, { manualProtect: true, eagerSplitChunk: 2 * MIB });
      assert.ok(writable(GIB));
      setFailureRates({ [RacePoint.ALLOC_PAGE]: 1, [RacePoint.MEMCACHE_TOPUP]: 1 }, 1);
      assert.equal(vm.clearDirtyLog(id, 0, 64), 64);
      assert.equal(leafAt(GIB).level, 2, "the split could not run");
      assert.ok(!writable(GIB), "a cleared page is write-protected");
      assert.equal(vm.host.memcache.count, 0);
    } finally {
      clearFailures();
    }
    vm.deleteMemslot(id);
  });

  test("the dirty bitmap is shared first-fit and its capacity is enforced", async () => {
    const small = await Vm.create({
      granule: P,
      iaBits: 40,
      poolPages: 256,
      mode: "shared",
      vcpus: 1,
      dirtyBitmapPages: 1024,
    });
    try {
      const a = small.createMemslot({ ipa: GIB, size: 2 * MIB, backing: "anonymous" });
      const b = small.createMemslot({ ipa: 2 * GIB, size: 2 * MIB, backing: "anonymous" });
      const c = small.createMemslot({ ipa: 3 * GIB, size: 4 * MIB, backing: "anonymous" });
      small.enableDirtyLogging(a);
      small.enableDirtyLogging(b);
      assert.throws(() => small.enableDirtyLogging(c), /1024 pages of bitmap needed, 0 free of 1024/);
      small.disableDirtyLogging(a);
      small.deleteMemslot(b);
      small.enableDirtyLogging(c, { manualProtect: true });
      assert.equal(countBits(small.getDirtyLog(c)), 1024);
    } finally {
      await small.destroy();
    }
  });
});

function setBits(words: Uint32Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < words.length * 32; i++) if (((words[i >>> 5] as number) >>> (i & 31)) & 1) out.push(i);
  return out;
}

function countBits(words: Uint32Array): number {
  return setBits(words).length;
}
