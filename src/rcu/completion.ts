/**
 * Waiting for the callback engine: barrier() and callAndWait() queue a head of their own slot
 * (a barrier marker, a waited-call head), then wait here until the engine publishes the head's
 * sequence number in a slot word (Slot.BARRIER_DONE, Slot.CALL_DONE).
 *
 *   caller                                   engine (reachMarker / finishWaited)
 *   wait until KIND(head) == IDLE            ...run the head...
 *   target = load(DONE) + 1                  store(DONE, target); notify(DONE)
 *   fill the head, URGENT += 1, push         store(KIND(head), IDLE); URGENT -= 1
 *   wait until load(DONE) == target
 *
 * The engine publishes DONE before IDLE, so a caller that found the head IDLE reads the DONE of
 * every earlier use, even one queued by a thread that died while it waited: its target is new.
 * URGENT makes the engine skip its batching delay while anybody waits (engine.ts).
 */
import { callbackWorkerLost, RcuUsageError } from "./errors.js";
import { Head, HeadKind } from "./heads.js";
import { Ctl, Slot, StallWhat } from "./layout.js";
import { cooperative, RacePoint, racePoint } from "../common/race-points.js";
import type { RcuShared } from "./shared.js";
import { deliverStalls, reportStall } from "./stall.js";

/** A word nobody changes: Atomics.wait on it is a plain timed sleep. */
const nap = new Int32Array(new SharedArrayBuffer(4));

/**
 * Waits until `head` (a slot's own marker or waited-call head) is idle, i.e. no earlier use of it
 * is still queued, and returns the value its next completion will publish in `slots[doneIndex]`.
 * The earlier use may be a dead thread's, left queued when its slot was freed: if the engine dies
 * or exits before it runs, nobody ever will, and this fails as waitForEngine() does.
 * @throws RcuCallbackWorkerLostError, RcuUsageError (`what` names the caller)
 */
export function claimOwnHead(sh: RcuShared, head: number, doneIndex: number, what: string): number {
  const { link, ctl } = sh;
  // Pairs with the engine's Atomics.store of IDLE after it published DONE.
  while (Atomics.load(link, head * Head.STRIDE + Head.KIND) !== HeadKind.IDLE) {
    racePoint(RacePoint.WAIT_LOOP);
    if (!cooperative) Atomics.wait(nap, 0, 0, 0.1);
    // Loaded after KIND: an engine that idled the head and then exited is not taken for lost work.
    if (
      Atomics.load(ctl, Ctl.ENGINE) === 0 &&
      Atomics.load(link, head * Head.STRIDE + Head.KIND) !== HeadKind.IDLE
    ) {
      engineGone(ctl, "call", what);
    }
  }
  return (Atomics.load(sh.slots, doneIndex) + 1) | 0;
}

/**
 * The engine is gone with work of the caller's still queued: RcuCallbackWorkerLostError if it
 * died, RcuUsageError if it exited (close()). `verb` and `what` name the caller's step.
 */
function engineGone(ctl: Int32Array, verb: "call" | "finish", what: string): never {
  // Pairs with the reaper's store of LOST before it clears ENGINE (registry.ts), and with
  // markEngineLost()'s store (SC) before its notify.
  if (Atomics.load(ctl, Ctl.ENGINE_LOST) !== 0) throw callbackWorkerLost(`${verb} ${what}`);
  throw new RcuUsageError(`Cannot ${verb} ${what}: the callback worker has exited`);
}

/**
 * Waits until the engine stores `target` in `slots[doneIndex]`. Reports a CALLBACKS stall at
 * doubling intervals from `stallTimeoutMs`.
 * @throws RcuCallbackWorkerLostError if the callback worker dies first, RcuUsageError if it exits
 *   (close()) first (`what` names the caller).
 */
export function waitForEngine(sh: RcuShared, doneIndex: number, target: number, what: string): void {
  const { ctl, slots, options } = sh;
  const start = performance.now();
  let nextStall = options.stallTimeoutMs;
  for (let spins = 0; ; spins++) {
    // Pairs with the engine's SC store + notify of the DONE word.
    const done = Atomics.load(slots, doneIndex);
    if (done === target) return;
    racePoint(RacePoint.WAIT_LOOP);
    if (spins < options.spinLimit) continue;
    if (!cooperative) Atomics.wait(slots, doneIndex, done, options.maxSleepMs);
    const engine = Atomics.load(ctl, Ctl.ENGINE) - 1;
    if (engine < 0 && Atomics.load(slots, doneIndex) !== target) engineGone(ctl, "finish", what);
    const ms = performance.now() - start;
    if (ms >= nextStall) {
      reportStall(ctl, StallWhat.CALLBACKS, engine, Atomics.load(ctl, Ctl.RUNNING_KIND), ms, 0);
      nextStall *= 2;
    }
    deliverStalls(ctl); // reports other threads made meanwhile, if this thread holds the handler
  }
}

/** Engine side: publishes `target` in slot word `doneIndex`, then marks `head` idle for reuse. */
export function completeOwnHead(sh: RcuShared, head: number, doneIndex: number, target: number): void {
  // SC store: pairs with waitForEngine()'s load and wait.
  Atomics.store(sh.slots, doneIndex, target);
  Atomics.notify(sh.slots, doneIndex);
  racePoint(RacePoint.RCU_ENGINE_OWN_HEAD_GAP);
  // After DONE: pairs with claimOwnHead()'s load (see the diagram above).
  Atomics.store(sh.link, head * Head.STRIDE + Head.KIND, HeadKind.IDLE);
  // Pairs with the caller's Atomics.add before its push; read by the engine's urgent().
  Atomics.sub(sh.ctl, Ctl.URGENT, 1);
}

/** The DONE word of `slot` for its barrier marker or waited-call head. */
export function doneIndex(slot: number, word: Slot.BARRIER_DONE | Slot.CALL_DONE): number {
  return slot * Slot.STRIDE + word;
}
