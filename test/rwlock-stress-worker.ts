/**
 * Worker of rwlock-workers.test.ts: takes one side of a shared RwLock over and over and checks,
 * inside every critical section, that the other side is really kept out.
 *
 * Shared words (`shared`, Int32Array, every access atomic):
 *
 *     [0] STOP            set by the test or by a worker that finished its quota; all workers stop
 *     [1] PAIR_A          written only under the write lock: A first, then B, same value
 *     [2] PAIR_B          readers must always see A == B
 *     [3] READERS_INSIDE  +1/-1 by readers inside their section; writers must see 0
 *     [4] WRITERS_INSIDE  +1/-1 by writers inside; must go 0 -> 1 for a writer, be 0 for readers
 *     [5] READY           start barrier: every worker adds 1, then waits until all have arrived
 *     [8 + id]            PROGRESS: sections completed by worker `id`, for failure reports
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { Rng } from "../src/common/rng.js";
import { RwLock, type RwLockHandle } from "../src/sync/mod.js";

export const enum Shared {
  STOP = 0,
  PAIR_A = 1,
  PAIR_B = 2,
  READERS_INSIDE = 3,
  WRITERS_INSIDE = 4,
  READY = 5,
  PROGRESS = 8,
}

export interface StressWorkerData {
  handle: RwLockHandle;
  shared: SharedArrayBuffer;
  id: number;
  workers: number;
  role: "reader" | "writer";
  seed: number;
  /** Sections to run at most; the worker also stops early when STOP is set. */
  sections: number;
  /** Set STOP after finishing `sections` (the worker whose quota ends the run). */
  stopWhenDone: boolean;
  /** Start only once every other worker has completed this many sections (0: start at once). */
  startAfter: number;
  /** Work inside a section: a random count of loop iterations below this bound. */
  holdSpins: number;
  /** Work between sections, likewise. */
  pauseSpins: number;
  /** Probability of try*Lock() instead of a blocking lock, and of a yield*() inside a section. */
  tryRate: number;
  yieldRate: number;
}

export interface StressWorkerResult {
  id: number;
  role: "reader" | "writer";
  sections: number;
  failedTries: number;
  yields: number;
  /** The first few invariant violations seen, as messages. */
  violations: string[];
  violationCount: number;
}

// Set at the bottom, in a worker only: the test imports this file just for `Shared` and the types.
let data: StressWorkerData;
let lock: RwLock;
let shared: Int32Array;
const violations: string[] = [];
let violationCount = 0;
let failedTries = 0;
let yields = 0;

let rng = new Rng(0);
function random(): number {
  return rng.next();
}

function violation(section: number, what: string): void {
  violationCount++;
  if (violations.length < 5) violations.push(`${data.role} ${data.id}, section ${section}: ${what}`);
}

/** Burns time; a reader inside its section re-checks the invariants every 16 iterations. */
function hold(section: number, spins: number, inside: boolean): void {
  const check = inside && data.role === "reader";
  for (let i = 0; i < spins; i++) {
    if (check && (i & 15) === 0) checkAsReader(section);
    else Atomics.load(shared, Shared.STOP);
  }
}

function checkAsReader(section: number): void {
  const a = Atomics.load(shared, Shared.PAIR_A);
  const b = Atomics.load(shared, Shared.PAIR_B);
  if (a !== b) violation(section, `torn pair A=${a} B=${b}: a writer is inside with us`);
  if (lock.isWriteLocked()) violation(section, "isWriteLocked() is true inside a read section");
  if (Atomics.load(shared, Shared.WRITERS_INSIDE) !== 0) violation(section, "a writer is inside");
}

/** A few try-locks, then the blocking lock, so that failed tries do not eat the holder's CPU. */
const MAX_TRIES = 64;

function acquireRead(): void {
  if (random() < data.tryRate) {
    for (let i = 0; i < MAX_TRIES; i++) {
      if (lock.tryReadLock()) return;
      failedTries++;
    }
  }
  lock.readLock();
}

function acquireWrite(): void {
  if (random() < data.tryRate) {
    for (let i = 0; i < MAX_TRIES; i++) {
      if (lock.tryWriteLock()) return;
      failedTries++;
    }
  }
  lock.writeLock();
}

function readSection(section: number): void {
  acquireRead();
  lock.assertReadHeld();
  Atomics.add(shared, Shared.READERS_INSIDE, 1);
  checkAsReader(section);
  hold(section, Math.floor(random() * data.holdSpins), true);
  if (random() < data.yieldRate) {
    Atomics.sub(shared, Shared.READERS_INSIDE, 1);
    if (lock.yieldRead()) yields++;
    Atomics.add(shared, Shared.READERS_INSIDE, 1);
    checkAsReader(section);
  }
  Atomics.sub(shared, Shared.READERS_INSIDE, 1);
  lock.readUnlock();
}

/** Publishes a new pair value in two steps, with work between: a reader inside would see A != B. */
function writePair(section: number): void {
  const v = Atomics.load(shared, Shared.PAIR_A) + 1;
  Atomics.store(shared, Shared.PAIR_A, v);
  hold(section, Math.floor(random() * data.holdSpins), true);
  Atomics.store(shared, Shared.PAIR_B, v);
}

function enterAsWriter(section: number): void {
  lock.assertWriteHeld();
  const writers = Atomics.add(shared, Shared.WRITERS_INSIDE, 1);
  if (writers !== 0) violation(section, `${writers} other writer(s) inside`);
  const readers = Atomics.load(shared, Shared.READERS_INSIDE);
  if (readers !== 0) violation(section, `${readers} reader(s) inside with the writer`);
}

function writeSection(section: number): void {
  acquireWrite();
  enterAsWriter(section);
  writePair(section);
  if (random() < data.yieldRate) {
    Atomics.sub(shared, Shared.WRITERS_INSIDE, 1);
    if (lock.yieldWrite()) yields++;
    enterAsWriter(section);
    writePair(section);
  }
  Atomics.sub(shared, Shared.WRITERS_INSIDE, 1);
  lock.writeUnlock();
}

function awaitStart(): void {
  if (Atomics.add(shared, Shared.READY, 1) + 1 === data.workers) Atomics.notify(shared, Shared.READY);
  for (let n = Atomics.load(shared, Shared.READY); n < data.workers; n = Atomics.load(shared, Shared.READY)) {
    Atomics.wait(shared, Shared.READY, n, 10);
  }
  for (let id = 0; id < data.workers; id++) {
    while (id !== data.id && Atomics.load(shared, Shared.PROGRESS + id) < data.startAfter) {
      if (Atomics.load(shared, Shared.STOP) !== 0) return;
      Atomics.wait(shared, Shared.STOP, 0, 1);
    }
  }
}

function run(): number {
  awaitStart();
  let section = 0;
  while (section < data.sections && Atomics.load(shared, Shared.STOP) === 0) {
    if (data.role === "reader") readSection(section);
    else writeSection(section);
    section++;
    Atomics.store(shared, Shared.PROGRESS + data.id, section);
    hold(section, Math.floor(random() * data.pauseSpins), false);
  }
  if (data.stopWhenDone) Atomics.store(shared, Shared.STOP, 1);
  return section;
}

if (!isMainThread) {
  data = workerData as StressWorkerData;
  lock = RwLock.attach(data.handle);
  shared = new Int32Array(data.shared);
  rng = new Rng(data.seed);
  const sections = run();
  const result: StressWorkerResult = {
    id: data.id,
    role: data.role,
    sections,
    failedTries,
    yields,
    violations,
    violationCount,
  };
  parentPort!.postMessage(result);
}
