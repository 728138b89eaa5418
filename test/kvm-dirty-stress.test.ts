/**
 * Dirty logging under real concurrency: two vCPUs write random pages of a THP slot without pause
 * while the host cycles dirty logging (unmap everything so faults are in flight, enable, harvest
 * with get-dirty-log a few times, pause the vCPUs, final harvest, check, disable: faults then
 * collapse the page tables back into blocks).
 *
 * The check: a vCPU records for every write the host clock T read before the translation that
 * let the write through. A write recorded at T >= the clock after enable returned happened while
 * logging was on, so its page must appear in a harvest taken at a clock >= T. A lost dirty page
 * fails the run with the seed; STAGE2_SEED replays. The negative control turns both halves of
 * the race fix off (VmOptions.testOnly) and widens the fault.slot-read window: it must be caught.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Vm, type VmTestOnly } from "../src/kvm/vm.js";
import { auditTable } from "../src/pgtable/audit.js";
import { seedFromEnv } from "../src/common/rng.js";
import { DirtyCtl } from "./kvm-dirty-writer.js";
import { ScriptedVcpu } from "./kvm-helpers.js";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const P = 4096;
const SLOT = 16 * MIB;
const PAGES = SLOT / P;
const VCPUS = 2;

const seed = seedFromEnv();

interface StressOutcome {
  lost: number;
  firstLost: string;
  cycles: number;
  writes: number;
  harvested: number;
  seqRetries: number;
  blocksMapped: number;
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function stress(
  runSeed: number,
  cycles: number,
  testOnly: VmTestOnly,
  slotReadSpins: number,
): Promise<StressOutcome> {
  const vm = await Vm.create({
    granule: P,
    iaBits: 40,
    poolPages: 4096,
    debug: true,
    mode: "shared",
    vcpus: VCPUS,
    memslots: [{ ipa: GIB, size: SLOT, backing: "anonymous_thp" }],
    testOnly,
  });
  const ctl = new Int32Array(new SharedArrayBuffer(DirtyCtl.WORDS * 4));
  const lastWrite = new Int32Array(new SharedArrayBuffer(PAGES * 4)).fill(-1);
  const vcpus = Array.from({ length: VCPUS }, (_, i) => new ScriptedVcpu(vm, i));
  const out: StressOutcome = {
    lost: 0,
    firstLost: "",
    cycles,
    writes: 0,
    harvested: 0,
    seqRetries: 0,
    blocksMapped: 0,
  };
  const tick = (): number => Atomics.add(ctl, DirtyCtl.T, 1) + 1;
  const harvestedAt = new Int32Array(PAGES);
  const harvest = (): void => {
    const t = tick();
    const log = vm.getDirtyLog(0);
    for (let p = 0; p < PAGES; p++) {
      if (((log[p >>> 5] as number) >>> (p & 31)) & 1) {
        harvestedAt[p] = t;
        out.harvested++;
      }
    }
  };
  try {
    vcpus.forEach((v, i) => {
      v.post({
        op: "dirtyWriter",
        options: {
          seed: (runSeed + i * 0x9e3779b9) >>> 0,
          vcpu: i,
          vcpus: VCPUS,
          start: GIB,
          pages: PAGES,
          ctl: ctl.buffer as SharedArrayBuffer,
          lastWrite: lastWrite.buffer as SharedArrayBuffer,
          slotReadSpins,
        },
      });
    });
    for (let c = 0; c < cycles; c++) {
      vm.unmap(GIB, SLOT); // every vCPU is about to fault: the enable below meets faults in flight
      vm.enableDirtyLogging(0);
      const enabledAt = tick();
      harvestedAt.fill(-1);
      for (let r = 0; r < 3; r++) {
        sleepMs(1);
        harvest();
      }
      // Pause: ACKS first, then the odd generation (the vCPUs acknowledge only an odd PAUSE).
      Atomics.store(ctl, DirtyCtl.ACKS, 0);
      Atomics.add(ctl, DirtyCtl.PAUSE, 1);
      for (let n = Atomics.load(ctl, DirtyCtl.ACKS); n < VCPUS; n = Atomics.load(ctl, DirtyCtl.ACKS))
        Atomics.wait(ctl, DirtyCtl.ACKS, n, 5);
      harvest();
      for (let p = 0; p < PAGES; p++) {
        const w = lastWrite[p] as number;
        if (w >= enabledAt && (harvestedAt[p] as number) < w) {
          out.lost++;
          out.firstLost ||= `cycle ${c}: page ${p} written at T=${w} (logging on at T=${enabledAt}), last harvested at T=${harvestedAt[p]}`;
        }
      }
      vm.disableDirtyLogging(0);
      Atomics.add(ctl, DirtyCtl.PAUSE, 1);
      Atomics.notify(ctl, DirtyCtl.PAUSE);
      sleepMs(1);
    }
    Atomics.store(ctl, DirtyCtl.STOP, 1);
    for (const v of vcpus) out.writes += await v.result();
  } finally {
    Atomics.store(ctl, DirtyCtl.STOP, 1);
    Atomics.add(ctl, DirtyCtl.PAUSE, 1);
    for (const v of vcpus) await v.close();
    vm.pgt.flushStats();
    const s = vm.vcpuStats.snapshot();
    out.seqRetries = s.seqRetries;
    out.blocksMapped = s.blocksMapped;
    assert.deepEqual(auditTable(vm.pgt).problems, []);
    const d = await vm.destroy();
    assert.deepEqual(d.leakedPages, []);
  }
  return out;
}

test("dirty logging cycled under two writing vCPUs loses no dirty page", async () => {
  console.log(`# kvm-dirty-stress: seed ${seed}`);
  const r = await stress(seed, 12, {}, 200000);
  const why = `seed ${seed} (replay: STAGE2_SEED=${seed}): ${JSON.stringify(r)}`;
  assert.equal(r.lost, 0, why);
  assert.ok(r.writes > 0 && r.harvested > 0, `${why}: nothing was written or harvested`);
  assert.ok(r.blocksMapped > 0, `${why}: no fault mapped a block (logging never off?)`);
  console.log(`# ${r.writes} writes, ${r.harvested} pages harvested, ${r.seqRetries} MMU_SEQ retries`);
});

test("negative control: with the race fix off the stress loses dirty pages", async () => {
  let caught = "";
  for (let attempt = 0; attempt < 4 && caught === ""; attempt++) {
    const s = (seed + attempt * 7919) >>> 0;
    console.log(`# kvm-dirty-stress negative control: seed ${s}`);
    const r = await stress(s, 12, { noFaultWait: true, noSeqCheck: true }, 200000);
    if (r.lost > 0) caught = `${r.lost} lost: ${r.firstLost}`;
  }
  console.log(`# negative control caught: ${caught}`);
  assert.notEqual(caught, "", `the broken variant was never caught (seed ${seed}): the check cannot fail`);
});
