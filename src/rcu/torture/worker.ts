/**
 * A reader or the updater of the RCU torture test (see pipe.ts for the pipe, run.ts for the run).
 *
 * Reader: read-side section (nested once), look at the current element, dawdle a random while,
 * look again; record the stage seen and any sign that the element was freed meanwhile.
 * Updater: take a free element, publish it, retire the old one by `sync` (synchronize then free),
 * `call` (a callback frees it) or `poll` (free it once its startPoll cookie expired); `none` frees it
 * at once, with no grace period: the negative control, which readers must catch.
 */
import { parentPort, workerData } from "node:worker_threads";
import { RacePoint, setRaceHook, spinningRaceHook } from "../../common/race-points.js";
import { xorshift32, xorshiftSeed } from "../../common/rng.js";
import { Rcu, type RcuHandle, type RcuThread } from "../mod.js";
import { ElemState, freeElement, PIPE_LEN, Pipe, TORTURE_KIND_FREE } from "./pipe.js";

export interface TortureWorkerData {
  role: "reader" | "updater";
  mode: "sync" | "call" | "poll" | "none";
  handle: RcuHandle;
  pipe: SharedArrayBuffer;
  seed: number;
}

export interface ReaderResult {
  stages: number[];
  freedSeen: number;
  sections: number;
}

const d = workerData as TortureWorkerData;
const pipe = new Int32Array(d.pipe);
const rcu = Rcu.attach(d.handle);
const t = rcu.register();
// The one seeding rule for xorshift32 states (a zero seed maps to XORSHIFT_ZERO_SEED).
let rng = xorshiftSeed(d.seed);
function random(): number {
  rng = xorshift32(rng);
  return rng;
}
const delays = {
  [RacePoint.RCU_READER_LOCK_GAP]: 300,
  [RacePoint.RCU_GP_STARTED]: 300,
  [RacePoint.RCU_GP_BEFORE_FLIP]: 300,
  [RacePoint.RCU_CALL_BEFORE_PUSH]: 100,
  [RacePoint.RCU_QSBR_QS_GAP]: 300,
};
setRaceHook(spinningRaceHook(delays, d.seed));
parentPort?.postMessage({ type: "ready" });

function readOnce(r: ReaderResult): void {
  t.readLock();
  const e = Atomics.load(pipe, Pipe.CURRENT);
  const at = Pipe.ELEMS + e * Pipe.STRIDE;
  const gen = Atomics.load(pipe, at + Pipe.GEN);
  let bad = Atomics.load(pipe, at + Pipe.ALIVE) !== 1;
  t.readLock();
  let spin = random() % 2000;
  while (spin-- > 0) bad ||= Atomics.load(pipe, at + Pipe.ALIVE) !== 1;
  t.readUnlock();
  const stage = Atomics.load(pipe, at + Pipe.STAGE);
  bad ||= Atomics.load(pipe, at + Pipe.ALIVE) !== 1 || Atomics.load(pipe, at + Pipe.GEN) !== gen;
  t.readUnlock();
  r.stages[Math.min(stage, 2)]! += 1;
  if (bad) r.freedSeen++;
  r.sections++;
}

function reader(): void {
  const r: ReaderResult = { stages: [0, 0, 0], freedSeen: 0, sections: 0 };
  while (Atomics.load(pipe, Pipe.STOP) === 0) {
    readOnce(r);
    if ((r.sections & 3) === 0) t.quiescentState();
  }
  t.unregister();
  parentPort?.postMessage({ type: "done", result: r });
}

function allocate(): number {
  for (;;) {
    for (let e = 0; e < PIPE_LEN; e++) {
      const at = Pipe.ELEMS + e * Pipe.STRIDE;
      if (Atomics.load(pipe, at + Pipe.STATE) === ElemState.FREE) return e;
    }
    if (Atomics.load(pipe, Pipe.STOP) !== 0) return -1;
    t.offline(); // qsbr: do not hold up the grace periods we wait for
    const seen = Atomics.load(pipe, Pipe.FREE_COUNT);
    Atomics.wait(pipe, Pipe.FREE_COUNT, seen, d.mode === "poll" ? 0.05 : 1);
    t.online();
    if (d.mode === "poll") reapPolled(t);
  }
}

const polled: number[] = [];

function reapPolled(tr: RcuThread): void {
  while (polled.length > 0 && tr.pollState(polled[1]!)) {
    freeElement(pipe, polled[0]!);
    polled.splice(0, 2);
  }
}

function updater(): void {
  let updates = 0;
  while (Atomics.load(pipe, Pipe.STOP) === 0) {
    if (d.mode === "poll") reapPolled(t);
    const e = allocate();
    if (e < 0) break;
    const at = Pipe.ELEMS + e * Pipe.STRIDE;
    Atomics.store(pipe, at + Pipe.STATE, ElemState.IN_USE);
    Atomics.add(pipe, at + Pipe.GEN, 1);
    Atomics.store(pipe, at + Pipe.STAGE, 0);
    Atomics.store(pipe, at + Pipe.ALIVE, 1);
    const old = Atomics.exchange(pipe, Pipe.CURRENT, e); // rcu_assign_pointer
    Atomics.store(pipe, Pipe.ELEMS + old * Pipe.STRIDE + Pipe.STAGE, 1);
    if (d.mode === "sync") {
      t.synchronize();
      freeElement(pipe, old);
    } else if (d.mode === "call") {
      while (t.call(TORTURE_KIND_FREE, old) !== 0) t.synchronize();
    } else if (d.mode === "poll") {
      polled.push(old, t.startPoll());
    } else {
      freeElement(pipe, old); // "none": the bug the test must catch
    }
    Atomics.store(pipe, Pipe.UPDATES, ++updates);
    t.quiescentState();
  }
  t.unregister();
  parentPort?.postMessage({ type: "done", result: { updates } });
}

if (d.role === "reader") reader();
else updater();
