/**
 * The vCPU side of `stage2 torture`: a seeded mix of guest reads, writes, instruction fetches,
 * collapses and software walks (translations under the read lock and the RCU read side, checking
 * every table page they enter) over
 * IPA windows the host keeps changing (memslots moving, logging on and off, unmaps), with injected
 * allocation failures, seeded delays at the walk and break-before-make windows, and the RCU age
 * check (`rcu-age.ts`) installed as this thread's race hook.
 *
 * What a vCPU may legitimately get back, and is counted, not flagged: ENOMEM (an injected or real
 * allocation failure: the access is reported, the next one retries), NOENT (MMIO: no memslot there
 * right now), ERANGE (a collapse that would cross a memslot's end), AGAIN after the retry budget
 * (the host kept invalidating). Anything else, and any exception (a debug pool's misuse report),
 * is unexpected: the loop stops there and reports the operation.
 *
 * A death on purpose (`death`, the torture's --deaths): the vCPU parks at the `hit`th pass of a race
 * point (inside a read-side section and holding mmu_lock for read at walk.table-entered and
 * pte.before-cas, between break and make at bbm.locked, inside a fault before mmu_lock at
 * fault.slot-read) until the host takes the death; then the host terminates it (TERMINATE), or it
 * calls process.exit() there (EXIT: a crash that unwinds nothing). The host takes a death only
 * between its own operations, so none of them is blocked behind the parked vCPU when it dies. A
 * park the host does not take within PARK_MS is given up (the host may be waiting for this very
 * vCPU's read hold): the vCPU goes on and parks again at the next pass.
 *
 *   death words (Int32Array over VcpuDeathPlan.ctl)
 *   [0] STATE   vCPU: ARMED -> PARKED (CAS, then notify), PARKED -> ARMED after PARK_MS (CAS)
 *               host: PARKED -> TAKEN (CAS); EXIT: then GO (store, notify); when its operations
 *               end, ARMED or PARKED -> OFF (CAS, notify): the vCPU parks no more
 *   [1] PARKS   vCPU: parks so far (plain add; the host reads it after the death, for the log)
 */
import { Errno, errnoName } from "../common/errno.js";
import {
  FAILURE_POINTS,
  RacePoint,
  raceHook,
  setRaceHook,
  clearFailures,
  clearRaceDelays,
  injectedCounts,
  resetInjectedCounts,
  setFailureRates,
  setRaceDelays,
} from "../common/race-points.js";
import { Rng } from "../common/rng.js";
import { ControlledScheduler, type SchedulerHandle } from "../sync/controlled.js";
import type { VcpuContext } from "../kvm/vm.js";
import { getLeaf, LeafResult } from "../pgtable/ops/attr.js";
import { WalkFlag } from "../pgtable/walk.js";
import { type AgeHandle, type AgeReport, installAgeCheck, takeAgeReport } from "./rcu-age.js";
import { fetch, touch } from "./workloads.js";

/** An IPA window the vCPU touches (a memslot, or a place a moving memslot may be). */
export interface IpaWindow {
  start: number;
  size: number;
}

/** Options of one vCPU's torture operations. */
export interface TortureVcpuOptions {
  seed: number;
  iterations: number;
  windows: IpaWindow[];
  /** Shares of guest writes, instruction fetches, collapses and software walks; the rest are reads. */
  writeRatio: number;
  execRatio: number;
  collapseRatio: number;
  walkRatio: number;
  /** Block sizes of collapses, drawn uniformly (repeat a size to weight it). */
  collapseSizes: number[];
  /** Most delay spins at walk.table-entered and bbm.locked (0: none). */
  raceSpins: number;
  /** Failure rate at alloc.page and memcache.topup (0: none). */
  allocFail: number;
  /** The RCU age check (debug pools), or null. */
  age: AgeHandle | null;
  /** Controlled rounds: this vCPU is participant `id` of the scheduler (sync/controlled.ts). */
  controlled?: { handle: SchedulerHandle; id: number };
  /** Die on purpose at a race point (see the file comment), or null. */
  death?: VcpuDeathPlan | null;
}

/** Words of a death plan's shared control block (see the file comment). */
export const enum DeathWord {
  STATE = 0,
  PARKS = 1,
  WORDS = 2,
}

/** DeathWord.STATE values. */
export const enum DeathState {
  OFF = 0,
  ARMED = 1,
  PARKED = 2,
  TAKEN = 3,
  GO = 4,
}

/** How a vCPU that dies on purpose ends. */
export const enum DeathKind {
  /** The host calls worker.terminate() while it is parked. */
  TERMINATE = 0,
  /** It calls process.exit(1) where it is parked once the host says GO. */
  EXIT = 1,
}

/** Where and how one vCPU dies on purpose. */
export interface VcpuDeathPlan {
  /** DeathWord.WORDS Int32 words, STATE set to ARMED by the host. */
  ctl: SharedArrayBuffer;
  point: RacePoint;
  /** Park at this pass of `point` (1 = the first). */
  hit: number;
  kind: DeathKind;
}

/** How long a parked vCPU waits for the host to take its death before it goes on. */
const PARK_MS = 50;

/** The kinds of operation in the op log. */
export const enum TortureOp {
  READ = 0,
  WRITE = 1,
  COLLAPSE = 2,
  WALK = 3,
  /** An instruction fetch: faults on an execute-never leaf, mapped or relaxed executable. */
  EXEC = 4,
}
const OP_NAMES = ["read", "write", "collapse", "walk", "exec"];
/** Operations kept in a vCPU's op log (the last ones before the loop ended). */
const LOG_OPS = 32;

/** What one vCPU did and saw. */
export interface TortureVcpuResult {
  ops: number;
  reads: number;
  writes: number;
  fetches: number;
  collapses: number;
  walks: number;
  /** Faults taken by guest accesses (each retried access counts its faults). */
  faults: number;
  nomem: number;
  mmio: number;
  range: number;
  gaveUp: number;
  /** First unexpected status or exception (the loop stopped there), or null. */
  unexpected: string | null;
  /** Injected delays and failures by point name. */
  injected: { delays: Record<string, number>; failures: Record<string, number> };
  age: AgeReport | null;
  /** The last operations, oldest first: "op#i read 0x... -> status". */
  lastOps: string[];
}

/** Runs the operations; never throws for what the operations do (it reports it). */
export function tortureVcpu(ctx: VcpuContext, o: TortureVcpuOptions): TortureVcpuResult {
  const r: TortureVcpuResult = {
    ops: 0,
    reads: 0,
    writes: 0,
    fetches: 0,
    collapses: 0,
    walks: 0,
    faults: 0,
    nomem: 0,
    mmio: 0,
    range: 0,
    gaveUp: 0,
    unexpected: null,
    injected: { delays: {}, failures: {} },
    age: null,
    lastOps: [],
  };
  const log = new Float64Array(LOG_OPS * 3);
  resetInjectedCounts();
  if (o.age !== null) installAgeCheck(o.age, ctx.pgt);
  if (o.death) installDeath(o.death);
  if (o.raceSpins > 0)
    setRaceDelays(
      { [RacePoint.WALK_TABLE_ENTERED]: o.raceSpins, [RacePoint.BBM_LOCKED]: o.raceSpins },
      o.seed ^ 0x5bd1e995,
    );
  if (o.allocFail > 0)
    setFailureRates(Object.fromEntries(FAILURE_POINTS.map((p) => [p, o.allocFail])), o.seed ^ 0x2545f491);
  const sched = o.controlled ? ControlledScheduler.attach(o.controlled.handle, o.controlled.id) : null;
  sched?.begin();
  try {
    loop(ctx, o, r, log);
  } finally {
    if (sched !== null) {
      // Offline (qsbr) before leaving the run: else the others' grace periods wait on timing.
      ctx.idle();
      sched.finish();
    }
    clearRaceDelays();
    clearFailures();
    r.injected = injectedCounts();
    if (o.age !== null) r.age = takeAgeReport();
  }
  r.lastOps = formatLog(log, r.ops);
  return r;
}

/** Chains the death hook after whatever hook this thread has (the RCU age check). */
function installDeath(plan: VcpuDeathPlan): void {
  const words = new Int32Array(plan.ctl);
  const prev = raceHook();
  let passes = 0;
  setRaceHook((point) => {
    prev?.(point);
    if (point !== plan.point || ++passes < plan.hit) return;
    park(words, plan.kind);
  });
}

/** Parks here until the host takes the death (never returns then), or gives up after PARK_MS. */
function park(words: Int32Array, kind: DeathKind): void {
  // Pairs with the host's CAS PARKED -> TAKEN.
  if (
    Atomics.compareExchange(words, DeathWord.STATE, DeathState.ARMED, DeathState.PARKED) !== DeathState.ARMED
  )
    return;
  words[DeathWord.PARKS] = (words[DeathWord.PARKS] as number) + 1;
  Atomics.notify(words, DeathWord.STATE);
  Atomics.wait(words, DeathWord.STATE, DeathState.PARKED, PARK_MS);
  // Not taken in time: back to ARMED, unless the host's CAS came first. OFF: the host disarmed
  // the death (it does no more operations), go on.
  const st = Atomics.compareExchange(words, DeathWord.STATE, DeathState.PARKED, DeathState.ARMED);
  if (st === DeathState.PARKED || st === DeathState.OFF) return;
  // Taken: EXIT waits for GO (the host has marked the death expected) and crashes here; TERMINATE
  // waits to be terminated.
  for (;;) {
    if (kind === DeathKind.EXIT && Atomics.load(words, DeathWord.STATE) === DeathState.GO) process.exit(1);
    Atomics.wait(words, DeathWord.STATE, DeathState.TAKEN, 100);
  }
}

function loop(ctx: VcpuContext, o: TortureVcpuOptions, r: TortureVcpuResult, log: Float64Array): void {
  const rng = new Rng(o.seed);
  const h = ctx.handler;
  const page = ctx.pgt.geo.granule;
  for (let i = 0; i < o.iterations; i++) {
    const win = o.windows[rng.below(o.windows.length)] as IpaWindow;
    const ipa = win.start + rng.below(win.size / page) * page;
    const dice = rng.next();
    const op = pickOp(o, dice);
    const slot = (i % LOG_OPS) * 3;
    log[slot] = op;
    log[slot + 1] = ipa;
    log[slot + 2] = Number.NaN;
    r.ops++;
    let ret: number;
    try {
      ret = runOp(h, op, ipa, o.collapseSizes[rng.below(o.collapseSizes.length)] as number, r);
    } catch (e) {
      r.unexpected = `op ${i} (${OP_NAMES[op]} 0x${ipa.toString(16)}) threw: ${String((e as Error).message).split("\n")[0]}`;
      return;
    }
    log[slot + 2] = ret;
    if (ctx.pgt.firstFault !== null) {
      r.unexpected = `op ${i} (${OP_NAMES[op]} 0x${ipa.toString(16)}): ${ctx.pgt.firstFault}`;
      return;
    }
    if (ret >= 0) continue;
    if (ret === Errno.NOMEM) r.nomem++;
    else if (ret === Errno.NOENT) r.mmio++;
    else if (ret === Errno.RANGE && op === TortureOp.COLLAPSE) r.range++;
    else if (ret === Errno.AGAIN) r.gaveUp++;
    else {
      r.unexpected = `op ${i} (${OP_NAMES[op]} 0x${ipa.toString(16)}) returned ${errnoName(ret)}`;
      return;
    }
  }
}

function pickOp(o: TortureVcpuOptions, dice: number): TortureOp {
  if (dice < o.collapseRatio) return TortureOp.COLLAPSE;
  if (dice < o.collapseRatio + o.walkRatio) return TortureOp.WALK;
  if (dice < o.collapseRatio + o.walkRatio + o.writeRatio) return TortureOp.WRITE;
  if (dice < o.collapseRatio + o.walkRatio + o.writeRatio + o.execRatio) return TortureOp.EXEC;
  return TortureOp.READ;
}

const leaf = new LeafResult();

/** A software translation, as every software walker does it: read lock, RCU read side (SHARED). */
function softwareWalk(h: VcpuContext["handler"], ipa: number): number {
  h.lock.readLock();
  try {
    const ret = getLeaf(h.pgt, ipa, leaf, h.shared ? WalkFlag.SHARED : 0);
    return ret === Errno.NOENT ? Errno.OK : ret;
  } finally {
    h.lock.readUnlock();
  }
}

function runOp(
  h: VcpuContext["handler"],
  op: TortureOp,
  ipa: number,
  collapseSize: number,
  r: TortureVcpuResult,
): number {
  if (op === TortureOp.COLLAPSE) {
    r.collapses++;
    const ret = h.collapse(ipa, collapseSize);
    return ret === Errno.AGAIN ? Errno.OK : ret; // a lost race: the next collapse tries again
  }
  if (op === TortureOp.WALK) {
    r.walks++;
    return softwareWalk(h, ipa);
  }
  if (op === TortureOp.EXEC) {
    r.fetches++;
    const ret = fetch(h, ipa);
    if (ret > 0) r.faults += ret;
    return ret;
  }
  const write = op === TortureOp.WRITE;
  if (write) r.writes++;
  else r.reads++;
  const ret = touch(h, ipa, write);
  if (ret > 0) r.faults += ret;
  return ret;
}

function formatLog(log: Float64Array, ops: number): string[] {
  const out: string[] = [];
  for (let i = Math.max(0, ops - LOG_OPS); i < ops; i++) {
    const s = (i % LOG_OPS) * 3;
    const ret = log[s + 2] as number;
    const status = Number.isNaN(ret) ? "(did not return)" : ret >= 0 ? "ok" : errnoName(ret);
    out.push(`op ${i} ${OP_NAMES[log[s] as number]} 0x${(log[s + 1] as number).toString(16)} -> ${status}`);
  }
  return out;
}
