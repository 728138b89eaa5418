/**
 * The guest side of the dirty-log stress (kvm-dirty-stress.test.ts), run inside a scripted vCPU:
 * random writes to this vCPU's pages (page % vcpus === vcpu), each recorded with the host clock
 * T read *before* the translation that found the page writable, so the write happened at or after
 * T. Pauses when the host asks (PAUSE odd), acknowledging in ACKS, until PAUSE moves on.
 */
import { pteValid, S2_AF, S2_S2AP_W } from "../src/arch/descriptor.js";
import { Errno } from "../src/common/errno.js";
import { RacePoint, setRaceDelays, clearRaceDelays } from "../src/common/race-points.js";
import { FaultKind, type FaultHandler } from "../src/kvm/fault.js";
import { getLeaf, LeafResult, WalkFlag } from "../src/pgtable/mod.js";
import { Rng } from "../src/common/rng.js";

/** Words of the shared control array. */
export const enum DirtyCtl {
  T = 0,
  STOP = 1,
  PAUSE = 2,
  ACKS = 3,
  WORDS = 4,
}

export interface DirtyWriterOptions {
  seed: number;
  vcpu: number;
  vcpus: number;
  start: number;
  pages: number;
  ctl: SharedArrayBuffer;
  /** Int32 per page: the T of its last write, -1 never written. */
  lastWrite: SharedArrayBuffer;
  slotReadSpins: number;
}

const leaf = new LeafResult();

/** One guest write to `ipa`: returns the T read before the translation that let it through. */
function write(h: FaultHandler, ctl: Int32Array, ipa: number): number {
  for (;;) {
    // Pairs with the host's Atomics.add of T: the translation below happens after this load.
    const t = Atomics.load(ctl, DirtyCtl.T);
    h.lock.readLock();
    const ret = getLeaf(h.pgt, ipa, leaf, WalkFlag.SHARED);
    h.lock.readUnlock();
    if (ret !== Errno.OK) throw new Error(`translation of 0x${ipa.toString(16)} failed: ${ret}`);
    let status: number;
    if (!pteValid(leaf.pte)) status = h.handle(ipa, FaultKind.TRANSLATION, true);
    else if ((leaf.pte & S2_S2AP_W) === 0n) status = h.handle(ipa, FaultKind.PERMISSION, true, leaf.level);
    else if ((leaf.pte & S2_AF) === 0n) status = h.handle(ipa, FaultKind.ACCESS_FLAG, true, leaf.level);
    else return t;
    if (status !== Errno.OK && status !== Errno.AGAIN)
      throw new Error(`fault at 0x${ipa.toString(16)}: ${status}`);
  }
}

/** Runs until STOP; returns the writes done. */
export function dirtyWriter(h: FaultHandler, o: DirtyWriterOptions): number {
  const ctl = new Int32Array(o.ctl);
  const last = new Int32Array(o.lastWrite);
  const rng = new Rng(o.seed);
  if (o.slotReadSpins > 0) setRaceDelays({ [RacePoint.FAULT_SLOT_READ]: o.slotReadSpins }, o.seed);
  const mine = Math.floor((o.pages - o.vcpu + o.vcpus - 1) / o.vcpus);
  let writes = 0;
  while (Atomics.load(ctl, DirtyCtl.STOP) === 0) {
    // PAUSE is a generation: odd = the host asks every vCPU to stop and acknowledge.
    const pause = Atomics.load(ctl, DirtyCtl.PAUSE);
    if ((pause & 1) !== 0) {
      // Pairs with the host's wait on ACKS: every write recorded so far is visible to it.
      Atomics.add(ctl, DirtyCtl.ACKS, 1);
      Atomics.notify(ctl, DirtyCtl.ACKS);
      while (Atomics.load(ctl, DirtyCtl.PAUSE) === pause) Atomics.wait(ctl, DirtyCtl.PAUSE, pause, 5);
      continue;
    }
    const page = rng.below(mine) * o.vcpus + o.vcpu;
    const t = write(h, ctl, o.start + page * h.pgt.geo.granule);
    Atomics.store(last, page, t);
    writes++;
  }
  clearRaceDelays();
  return writes;
}
