/**
 * Reader-slot registration: claiming a slot, giving it back, and reaping the slots of dead threads.
 *
 * A slot is claimed with CAS(OWNER, 0, threadId + 1), then SLOT_HWM is raised so that drivers scan
 * it. The order matters for a reader that registers while a grace period runs: its HWM update (SC)
 * comes after the driver's HWM load, so its first read-side section starts after the grace period
 * did and needs no waiting for.
 *
 * Releasing a slot returns the thread's cached free heads to the pool, clears CTR (which ends any
 * read-side section or online state the slot showed) and finally clears OWNER. The reaper does the
 * same for a thread that died, and also frees the grace-period lock if the dead thread held it.
 */
import { RcuUsageError } from "./errors.js";
import { pushFreeChunk } from "./heads.js";
import { Ctl, NIL, Slot } from "./layout.js";
import type { RcuShared } from "./shared.js";

/** Claims a free slot for `threadId`. @throws RcuUsageError if it has one already or none is free. */
export function claimSlot(sh: RcuShared, threadId: number): number {
  const slots = sh.slots;
  const n = sh.options.maxThreads;
  const owner = threadId + 1;
  for (let s = 0; s < n; s++) {
    if (Atomics.load(slots, s * Slot.STRIDE + Slot.OWNER) === owner) {
      throw new RcuUsageError(`Cannot register thread ${threadId}: it is registered already (slot ${s})`);
    }
  }
  for (let s = 0; s < n; s++) {
    const at = s * Slot.STRIDE;
    if (Atomics.load(slots, at + Slot.OWNER) !== 0) continue;
    if (Atomics.compareExchange(slots, at + Slot.OWNER, 0, owner) !== 0) continue;
    Atomics.add(slots, at + Slot.GEN, 1);
    raiseHwm(sh.ctl, s + 1);
    return s;
  }
  throw new RcuUsageError(
    `Cannot register thread ${threadId}: all ${n} reader slots are taken (raise maxThreads)`,
  );
}

function raiseHwm(ctl: Int32Array, hwm: number): void {
  for (;;) {
    const cur = Atomics.load(ctl, Ctl.SLOT_HWM);
    if (cur >= hwm || Atomics.compareExchange(ctl, Ctl.SLOT_HWM, cur, hwm) === cur) return;
  }
}

/** Gives slot `s` back: cached heads to the pool, CTR to 0 (waking a waiting driver), OWNER to 0. */
export function releaseSlot(sh: RcuShared, s: number): void {
  const at = s * Slot.STRIDE;
  const slots = sh.slots;
  const cache = slots[at + Slot.CACHE_TOP] as number;
  if (cache !== NIL) {
    slots[at + Slot.CACHE_TOP] = NIL;
    pushFreeChunk(sh.ctl64, sh.link, cache);
  }
  // Pairs with the driver's slot loads: the slot no longer holds up any grace period.
  Atomics.store(slots, at + Slot.CTR, 0);
  Atomics.store(sh.ctl, Ctl.GP_FUTEX, 0);
  Atomics.notify(sh.ctl, Ctl.GP_FUTEX);
  Atomics.store(slots, at + Slot.OWNER, 0);
}

/**
 * The callback engine died holding its role (it never ran release()): what it held is lost. Every
 * kind is undefined from now on, so call(), callHead() and callAndWait() return INVAL ("no callback
 * worker"), and every thread asleep in barrier() or callAndWait() wakes to throw
 * RcuCallbackWorkerLostError (completion.ts).
 */
export function markEngineLost(sh: RcuShared): void {
  // Pairs with the loads in waitForEngine(), checkCanWaitForEngine() and startPoll().
  Atomics.store(sh.ctl, Ctl.ENGINE_LOST, 1);
  for (let k = 0; k < sh.kinds.length; k++) Atomics.store(sh.kinds, k, 0);
  const hwm = sh.slotHwm();
  for (let s = 0; s < hwm; s++) {
    Atomics.notify(sh.slots, s * Slot.STRIDE + Slot.BARRIER_DONE);
    Atomics.notify(sh.slots, s * Slot.STRIDE + Slot.CALL_DONE);
  }
}

/**
 * OWNER while a reaper releases the slot (never a thread's threadId + 1): claimSlot() skips it,
 * and releaseSlot() ends it with 0.
 */
const REAPING = -1;

/** Roles a reaped thread held besides its slots (`reapThreadRoles().roles`, a bit set). */
export const enum ReapedRole {
  /** The grace-period lock: its half-done period is abandoned, the next driver starts afresh. */
  GP_LOCK = 1,
  /** The callback engine: the engine is lost (markEngineLost). */
  ENGINE = 2,
  /** The domain's stall-handler thread: reporters print again. */
  STALL_HANDLER = 4,
}

/** What `reapThreadRoles()` released. */
export interface Reaped {
  slots: number;
  /** ReapedRole bits. */
  roles: number;
}

/**
 * Releases every slot of `threadId`, a thread that has exited or died, plus the grace-period lock,
 * the callback-engine role (marking the engine lost: markEngineLost) and the stall-handler role if
 * it held them. Returns the number of slots reaped.
 * Call it only for a thread that no longer runs (e.g. from the Worker's "exit" event).
 */
export function reapThread(sh: RcuShared, threadId: number): number {
  return reapThreadRoles(sh, threadId).slots;
}

/**
 * True when a reap found the thread dead holding something that others wait for: a slot, the
 * grace-period lock or the engine. The stall-handler role alone is not a death: unregister()
 * keeps it, so a thread that ended cleanly still holds it.
 */
export function diedHolding(r: Reaped): boolean {
  return r.slots > 0 || (r.roles & (ReapedRole.GP_LOCK | ReapedRole.ENGINE)) !== 0;
}

/**
 * reapThread(), also saying which roles the dead thread held. Several reapers may race on one
 * death (a reaper thread and an "exit" event): each slot and role is released by exactly one of
 * them (CAS on its owner word), so only one sees it in its result.
 */
export function reapThreadRoles(sh: RcuShared, threadId: number): Reaped {
  const owner = threadId + 1;
  let slots = 0;
  let roles = 0;
  for (let s = 0; s < sh.options.maxThreads; s++) {
    const at = s * Slot.STRIDE;
    if (Atomics.load(sh.slots, at + Slot.OWNER) !== owner) continue;
    // Claims the release: a racing reaper of the same death sees OWNER change and skips the slot.
    if (Atomics.compareExchange(sh.slots, at + Slot.OWNER, owner, REAPING) !== owner) continue;
    releaseSlot(sh, s);
    slots++;
  }
  const ctl = sh.ctl;
  if (Atomics.compareExchange(ctl, Ctl.GP_LOCK, owner, 0) === owner) {
    // The dead driver's period stays half done; the next driver starts a fresh one (grace-period.ts).
    Atomics.notify(ctl, Ctl.GP_COMPLETED);
    roles |= ReapedRole.GP_LOCK;
  }
  if (Atomics.load(ctl, Ctl.ENGINE) === owner) {
    // LOST before the role is cleared (only reapers change a dead owner's ENGINE): a waiter that
    // finds no engine and then loads LOST (completion.ts) knows a death from an exit.
    Atomics.store(ctl, Ctl.ENGINE_LOST, 1);
    if (Atomics.compareExchange(ctl, Ctl.ENGINE, owner, 0) === owner) {
      markEngineLost(sh);
      roles |= ReapedRole.ENGINE;
    }
  }
  // A dead handler thread delivers nothing: reporters print again (stall.ts).
  if (Atomics.compareExchange(ctl, Ctl.STALL_HANDLER, owner, 0) === owner) roles |= ReapedRole.STALL_HANDLER;
  return { slots, roles };
}
