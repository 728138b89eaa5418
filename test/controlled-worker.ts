/**
 * Worker of controlled-schedule.test.ts: one participant of a controlled schedule running a small
 * racy program over shared words, so that the test can see what the scheduler decides.
 *
 * Shared words (Int32Array `words`), written only by participants:
 *   0 COUNTER   a counter every participant increments with a plain load, a race point, and a
 *               plain store: increments are lost exactly when the schedule switches threads
 *               inside that window.
 *   1 RUNNING   participants between two points (Atomics.add after a point, Atomics.sub before
 *               one): more than 1 means two threads ran at once.
 *   2 OVERLAPS  times a participant saw RUNNING above 1 (Atomics.add).
 *   3 FLAG      set by participant 1 half way; participant 0 waits for it in a WAIT_LOOP (the
 *               scheduler must then run the other participant, or the run never ends).
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { RacePoint, racePoint } from "../src/common/race-points.js";
import { ControlledScheduler, type SchedulerHandle } from "../src/sync/controlled.js";

export interface ControlledWorkerData {
  handle: SchedulerHandle;
  id: number;
  words: SharedArrayBuffer;
  rounds: number;
}

export const enum Word {
  COUNTER = 0,
  RUNNING = 1,
  OVERLAPS = 2,
  FLAG = 3,
  COUNT = 4,
}

function point(w: Int32Array, p: RacePoint): void {
  Atomics.sub(w, Word.RUNNING, 1);
  racePoint(p);
  if (Atomics.add(w, Word.RUNNING, 1) !== 0) Atomics.add(w, Word.OVERLAPS, 1);
}

if (!isMainThread) {
  const d = workerData as ControlledWorkerData;
  const w = new Int32Array(d.words);
  const sched = ControlledScheduler.attach(d.handle, d.id);
  sched.begin();
  if (Atomics.add(w, Word.RUNNING, 1) !== 0) Atomics.add(w, Word.OVERLAPS, 1);
  try {
    for (let i = 0; i < d.rounds; i++) {
      const v = w[Word.COUNTER] as number;
      point(w, RacePoint.BEFORE_CAS);
      w[Word.COUNTER] = v + 1;
      point(w, RacePoint.WALK_TABLE_ENTERED);
      if (d.id === 1 && i === d.rounds >> 1) Atomics.store(w, Word.FLAG, 1);
      // Participant 0 cannot finish before participant 1 got half way.
      if (d.id === 0 && i === d.rounds - 1)
        while (Atomics.load(w, Word.FLAG) === 0) point(w, RacePoint.WAIT_LOOP);
    }
  } finally {
    Atomics.sub(w, Word.RUNNING, 1);
    sched.finish();
  }
  parentPort?.postMessage("done");
}
