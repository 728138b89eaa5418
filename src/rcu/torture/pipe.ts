/**
 * The pipe of the RCU torture test (liburcu's rcutorture, adapted), and the RCU plugin that the
 * callback worker loads to retire its elements.
 *
 * Pipe memory (Int32Array, written with Atomics):
 *
 *   word 0           CURRENT: index of the published element (updater writes, readers read)
 *   word 1           FREE_COUNT: elements freed so far (freeing thread adds, updater waits on it)
 *   word 2           UPDATES: updates done (updater)
 *   word 3           STOP: 1 = everybody stops (main thread)
 *   word 16 + 4e + 0 STAGE of element e: 0 current, 1 retired (grace period pending), 2 freed
 *   word 16 + 4e + 1 ALIVE: 1 while not freed (liburcu's mbtest)
 *   word 16 + 4e + 2 GEN: incremented each time e is reused
 *   word 16 + 4e + 3 STATE: FREE / IN_USE (updater allocates, freeing thread releases)
 *
 * A reader that sees STAGE 2, ALIVE 0 or a GEN change during its section has seen a freed element.
 */
import type { RcuCallbackRegistry } from "../mod.js";
import { RacePoint, setRaceHook, spinningRaceHook } from "../../common/race-points.js";

export const PIPE_LEN = 10;
export const enum Pipe {
  CURRENT = 0,
  FREE_COUNT = 1,
  UPDATES = 2,
  STOP = 3,
  ELEMS = 16,
  STAGE = 0,
  ALIVE = 1,
  GEN = 2,
  STATE = 3,
  STRIDE = 4,
  WORDS = 16 + 4 * 10,
}
export const enum ElemState {
  FREE = 0,
  IN_USE = 1,
}
export const TORTURE_KIND_FREE = 3;

/** Frees element `e` after its grace period: poison it, then hand it back to the updater. */
export function freeElement(pipe: Int32Array, e: number): void {
  const at = Pipe.ELEMS + e * Pipe.STRIDE;
  Atomics.store(pipe, at + Pipe.STAGE, 2);
  Atomics.store(pipe, at + Pipe.ALIVE, 0);
  Atomics.store(pipe, at + Pipe.STATE, ElemState.FREE);
  Atomics.add(pipe, Pipe.FREE_COUNT, 1);
  Atomics.notify(pipe, Pipe.FREE_COUNT);
}

export function registerRcuCallbacks(registry: RcuCallbackRegistry, data: unknown): void {
  const { pipe, seed } = data as { pipe: SharedArrayBuffer; seed: number };
  const words = new Int32Array(pipe);
  registry.define(TORTURE_KIND_FREE, (e) => freeElement(words, e));
  const delays = {
    [RacePoint.RCU_GP_BEFORE_COMPLETE]: 200,
    [RacePoint.RCU_ENGINE_AFTER_SPLICE]: 500,
    [RacePoint.RCU_ENGINE_BEFORE_CALLBACK]: 100,
  };
  setRaceHook(spinningRaceHook(delays, seed ^ 0x5bd1e995));
}
