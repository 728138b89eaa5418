/**
 * What vCPU threads do: workloads built on the fault handler, all driven by seeds.
 *
 *  - populate: touch every page of a region once (dirty_log_perf_test's populate phase).
 *  - stress:   touch random pages, collapse random ranges into blocks (unlinking populated
 *              tables), and translate random addresses with software walks that check every
 *              table page they enter against the pool's poison and generation.
 */
import { pteValid, S2_AF, S2_S2AP_W, S2_XN } from "../arch/descriptor.js";
import { Errno } from "../common/errno.js";
import { clearRaceDelays, RacePoint, racePoint, setRaceDelays } from "../common/race-points.js";
import { FaultKind, type FaultHandler } from "../kvm/fault.js";
import { getLeaf, LeafResult } from "../pgtable/ops/attr.js";
import { WalkFlag } from "../pgtable/walk.js";
import { Access, type VcpuMmu, violationTotal } from "../mmu/mod.js";
import { Rng } from "../common/rng.js";
import { ControlledScheduler, type SchedulerHandle } from "../sync/controlled.js";

const leaf = new LeafResult();
/**
 * Faults one access may take before it gives up with AGAIN (a livelock). The stress workloads keep
 * it short, so a deliberately broken table that makes every fault retry fails fast.
 */
export const RETRIES = 1000;
/**
 * The budget of the selftest workloads: a host that invalidates back to back (memslot_perf_test's
 * unmap loop) makes every fault in that window retry, as mmu_invalidate_retry() does in KVM.
 */
export const RETRIES_UNDER_INVALIDATION = 10_000_000;

/**
 * A guest access, the one function every workload calls for "a guest touches a page": through the
 * vCPU's MMU model when the VM has one (TLB, lockless hardware walk), else a software walk under
 * the read lock (and the RCU read side in shared mode); then whatever fault the translation calls
 * for, until the access succeeds. Returns the faults taken, or a negative Errno when the fault
 * cannot be resolved.
 */
export function touch(h: FaultHandler, ipa: number, write: boolean, retries = RETRIES): number {
  return guestAccess(h, ipa, write, false, retries);
}

/**
 * A guest instruction fetch from `ipa`: like touch(), but an execute-never leaf faults, and the
 * fault handler maps (or relaxes) the page executable, as KVM does for an exec fault.
 */
export function fetch(h: FaultHandler, ipa: number, retries = RETRIES): number {
  return guestAccess(h, ipa, false, true, retries);
}

function guestAccess(h: FaultHandler, ipa: number, write: boolean, exec: boolean, retries: number): number {
  if (h.mmu !== null) return touchMmu(h, h.mmu, ipa, write, exec, retries);
  for (let faults = 0; faults < retries; faults++) {
    const ret = translate(h, ipa);
    if (ret !== Errno.OK) return ret;
    let status: number;
    if (!pteValid(leaf.pte)) status = h.handle(ipa, FaultKind.TRANSLATION, write, -1, exec);
    else if ((write && (leaf.pte & S2_S2AP_W) === 0n) || (exec && (leaf.pte & S2_XN) !== 0n))
      status = h.handle(ipa, FaultKind.PERMISSION, write, leaf.level, exec);
    else if ((leaf.pte & S2_AF) === 0n) status = h.handle(ipa, FaultKind.ACCESS_FLAG, write, leaf.level);
    else return faults;
    if (status !== Errno.OK && status !== Errno.AGAIN) return status;
    // AGAIN: another thread holds what this fault needs (a locked entry, an invalidation).
    if (status === Errno.AGAIN) racePoint(RacePoint.WAIT_LOOP);
  }
  return Errno.AGAIN;
}

/**
 * A guest access through the vCPU's MMU model: a TLB hit or a lockless hardware walk; each fault
 * it raises goes to the fault handler, then the access is retried.
 */
function touchMmu(
  h: FaultHandler,
  mmu: VcpuMmu,
  ipa: number,
  write: boolean,
  exec: boolean,
  retries: number,
): number {
  mmu.enterGuest();
  try {
    return touchInGuest(h, mmu, ipa, write, exec, retries);
  } finally {
    mmu.leaveGuest();
  }
}

/**
 * touchMmu() for a vCPU already in the guest (`mmu.enterGuest()`), which it is again when this
 * returns, even by an exception. Each fault is handled outside the guest: the vCPU leaves first,
 * since the handler may wait for mmu_lock while a TLBI poster that holds it waits for this vCPU.
 */
function touchInGuest(
  h: FaultHandler,
  mmu: VcpuMmu,
  ipa: number,
  write: boolean,
  exec: boolean,
  retries: number,
): number {
  for (let faults = 0; faults < retries; faults++) {
    const r = mmu.guestAccess(ipa, write, exec);
    if (r === Access.OK) return faults;
    mmu.leaveGuest();
    let status: number;
    try {
      status = handleAccessFault(h, mmu, ipa, write, exec, r, faults);
    } finally {
      mmu.enterGuest();
    }
    if (status !== Errno.OK && status !== Errno.AGAIN) return status;
  }
  return Errno.AGAIN;
}

/** The fault an access raised, handled outside the guest: the handler's status. */
function handleAccessFault(
  h: FaultHandler,
  mmu: VcpuMmu,
  ipa: number,
  write: boolean,
  exec: boolean,
  r: number,
  faults: number,
): number {
  let status: number;
  if (r === Access.TRANSLATION_FAULT) status = h.handle(ipa, FaultKind.TRANSLATION, write, -1, exec);
  else if (r === Access.PERMISSION_FAULT)
    status = h.handle(ipa, FaultKind.PERMISSION, write, mmu.faultLevel, exec);
  else if (r === Access.ACCESS_FLAG_FAULT)
    status = h.handle(ipa, FaultKind.ACCESS_FLAG, write, mmu.faultLevel);
  else return Errno.INVAL;
  if (status === Errno.AGAIN) {
    racePoint(RacePoint.WAIT_LOOP);
    // A lockless retry takes well under a microsecond: while the host holds an invalidation open
    // (every fault AGAIN), pause like a guest re-entry would instead of burning the retry budget.
    if (faults >= AGAIN_BEFORE_PAUSE) Atomics.wait(pauseWord, 0, 0, PAUSE_MS);
  }
  return status;
}

const AGAIN_BEFORE_PAUSE = 64;
const PAUSE_MS = 0.05;
/** Never notified: Atomics.wait on it is a bounded pause. */
const pauseWord = new Int32Array(new SharedArrayBuffer(4));

/**
 * A software translation of `ipa` into the module's LeafResult, under the read lock like every
 * software walker (host writers free tables at once under the write lock), and in shared mode
 * also inside an RCU read-side section (other vCPUs' unlinked tables outlive a grace period).
 * Lockless RCU-only walks would race with the host's immediate frees: the stress test caught that.
 */
function translate(h: FaultHandler, ipa: number): number {
  h.lock.readLock();
  const ret = getLeaf(h.pgt, ipa, leaf, h.shared ? WalkFlag.SHARED : 0);
  h.lock.readUnlock();
  return ret;
}

/**
 * Populate: one write fault per page of [start, start+size), straight into the handler (every
 * page is known to be unmapped, as in the selftests' first touch). Returns the faults handled.
 * With the MMU model on, each page is a guest write through it, unless `direct`: then the
 * handler is called as with the model off (the faults benchmark's baseline in the same thread).
 */
export function populate(h: FaultHandler, start: number, size: number, direct = false): number {
  // Two functions, not two branches of one: each gets its own type feedback and optimized code.
  // In one function, a thread that alternates them (the faults benchmark's MMU vCPU) deoptimized
  // it at nearly every switch, on feedback the other loop had never collected.
  const mmu = direct ? null : h.mmu;
  return mmu === null ? populateDirect(h, start, size) : populateInGuest(h, mmu, start, size);
}

/** populate() through the MMU model: a first touch is a real guest write. */
function populateInGuest(h: FaultHandler, mmu: VcpuMmu, start: number, size: number): number {
  const page = h.pgt.geo.granule;
  let faults = 0;
  // A walk, a translation fault, the handler, and the retried access that fills the TLB. The
  // vCPU stays in the guest from one page's retried access to the next page's first access, as
  // a guest's store loop does.
  mmu.enterGuest();
  try {
    for (let ipa = start; ipa < start + size; ipa += page) {
      const ret = touchInGuest(h, mmu, ipa, true, false, RETRIES);
      if (ret < 0) return ret;
      faults += ret;
    }
  } finally {
    mmu.leaveGuest();
  }
  return faults;
}

/** populate() straight into the handler. */
function populateDirect(h: FaultHandler, start: number, size: number): number {
  const page = h.pgt.geo.granule;
  let faults = 0;
  for (let ipa = start; ipa < start + size; ipa += page) {
    let ret = h.handle(ipa, FaultKind.TRANSLATION, true);
    faults++;
    while (ret === Errno.AGAIN) {
      ret = touch(h, ipa, true);
      faults++;
    }
    if (ret < 0) return ret;
  }
  return faults;
}

/**
 * A collapse storm: installs a block of `blockSize` over every block-sized piece of
 * [start, start+size), unlinking whatever tables were there (khugepaged-style collapses faulted
 * in as blocks). Returns the number of collapses, or a negative Errno.
 */
export function collapseRange(h: FaultHandler, start: number, size: number, blockSize: number): number {
  let n = 0;
  for (let ipa = start; ipa < start + size; ipa += blockSize) {
    let ret = h.collapse(ipa, blockSize);
    while (ret === Errno.NOMEM) ret = h.collapse(ipa, blockSize);
    if (ret < 0 && ret !== Errno.AGAIN) return ret;
    n++;
  }
  return n;
}

/** Options of one vCPU's stress workload. */
export interface StressOptions {
  seed: number;
  iterations: number;
  regionStart: number;
  regionSize: number;
  /** Collapse sizes to choose from (block sizes). */
  collapseSizes: number[];
  /** Probabilities of each operation; the rest are translations. */
  touchRatio: number;
  collapseRatio: number;
  /** Seeded delays at labelled race points (RacePoint -> max spins), to widen race windows. */
  raceDelays?: Partial<Record<RacePoint, number>>;
  /**
   * Controlled scheduling: this vCPU is participant `id` of the scheduler and runs only when it
   * holds the token (no delays then). A violation (use-after-free seen by a walker, or a thrown
   * misuse error) stops the loop and is reported with the scheduler step it happened at.
   */
  controlled?: { handle: SchedulerHandle; id: number };
}

/** What one vCPU's stress workload did. */
export interface StressResult {
  touches: number;
  collapses: number;
  translations: number;
  errors: number;
  firstError: string | null;
  /** Controlled runs: the first violation this vCPU saw, and the scheduler step it saw it at. */
  violation?: { step: number; op: number; what: string } | null;
}

/**
 * The stress loop of one vCPU: races faults, collapses and checked walks over one region. `idle`
 * (the vCPU context's: qsbr goes offline) runs before a controlled participant leaves the run.
 */
export function stress(h: FaultHandler, o: StressOptions, idle: () => void = () => {}): StressResult {
  if (o.controlled) return stressControlled(h, o, o.controlled, idle);
  if (o.raceDelays) setRaceDelays(o.raceDelays, o.seed ^ 0x5bd1e995);
  try {
    return stressLoop(h, o, null);
  } finally {
    clearRaceDelays();
  }
}

/**
 * stress() as one participant of a controlled schedule: joins, runs, always leaves. It goes idle
 * before it leaves: a qsbr thread still online after it left would hold up the grace periods the
 * other participants wait for, for as long as timing decides.
 */
function stressControlled(
  h: FaultHandler,
  o: StressOptions,
  c: { handle: SchedulerHandle; id: number },
  idle: () => void,
): StressResult {
  const sched = ControlledScheduler.attach(c.handle, c.id);
  sched.begin();
  try {
    return stressLoop(h, o, sched);
  } finally {
    idle();
    sched.finish();
  }
}

function stressLoop(h: FaultHandler, o: StressOptions, sched: ControlledScheduler | null): StressResult {
  const rng = new Rng(o.seed);
  const page = h.pgt.geo.granule;
  const pages = Math.floor(o.regionSize / page);
  const r: StressResult = { touches: 0, collapses: 0, translations: 0, errors: 0, firstError: null };
  if (sched !== null) r.violation = null;
  for (let i = 0; i < o.iterations; i++) {
    if (sched === null) stressOp(h, o, rng, r, i, page, pages);
    else if (!stressOpControlled(h, o, rng, r, i, page, pages, sched)) break;
  }
  return r;
}

/** One controlled operation; false once a violation was seen (the loop stops there). */
function stressOpControlled(
  h: FaultHandler,
  o: StressOptions,
  rng: Rng,
  r: StressResult,
  i: number,
  page: number,
  pages: number,
  sched: ControlledScheduler,
): boolean {
  try {
    stressOp(h, o, rng, r, i, page, pages);
  } catch (e) {
    r.violation = { step: sched.step(), op: i, what: String((e as Error).message).split("\n")[0] as string };
    return false;
  }
  if (h.pgt.firstFault !== null) {
    r.violation = { step: sched.step(), op: i, what: h.pgt.firstFault };
    return false;
  }
  if (h.mmu !== null && violationTotal(h.mmu.tlb.words) > 0) {
    r.violation = { step: sched.step(), op: i, what: "MMU checker finding (see the run's MMU violations)" };
    return false;
  }
  return true;
}

function stressOp(
  h: FaultHandler,
  o: StressOptions,
  rng: Rng,
  r: StressResult,
  i: number,
  page: number,
  pages: number,
): void {
  const ipa = o.regionStart + rng.below(pages) * page;
  const dice = rng.next();
  let ret: number = Errno.OK;
  if (dice < o.touchRatio) {
    ret = touch(h, ipa, rng.next() < 0.5);
    r.touches++;
  } else if (dice < o.touchRatio + o.collapseRatio) {
    const size = o.collapseSizes[rng.below(o.collapseSizes.length)] as number;
    ret = h.collapse(ipa, size);
    if (ret === Errno.AGAIN) ret = Errno.OK;
    r.collapses++;
  } else {
    ret = translate(h, ipa);
    r.translations++;
  }
  if (ret < 0) {
    r.errors++;
    r.firstError ??= `op ${i} at 0x${ipa.toString(16)}: status ${ret}`;
  }
}
