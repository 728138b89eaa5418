/**
 * Micro-benchmark of the reader-writer lock (src/sync/rwlock.ts): single thread, uncontended.
 *
 * readPairNs is the cost a vCPU fault pays for `mmu_lock` in shared mode (readLock + readUnlock),
 * writePairNs the cost it pays in the "exclusive" baseline (writeLock + writeUnlock). Both include
 * the per-thread statistics increment. biasedReadPairNs is the same read pair through the reader
 * bias (a shared-mode VM's mmu_lock): one store into the reader's own line and one load instead
 * of two RMWs of the shared STATE word. Best of several rounds, to shed noise from the other core.
 */
import { RwLock } from "../sync/rwlock.js";

const PAIRS = 2_000_000;
const ROUNDS = 5;

function timeReadPairs(lock: RwLock, n: number): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    lock.readLock();
    lock.readUnlock();
  }
  return ((performance.now() - t0) * 1e6) / n;
}

function timeWritePairs(lock: RwLock, n: number): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    lock.writeLock();
    lock.writeUnlock();
  }
  return ((performance.now() - t0) * 1e6) / n;
}

/** Nanoseconds per uncontended lock+unlock pair, read side and write side (best of 5 rounds). */
export function runRwlockBench(): { readPairNs: number; writePairNs: number; biasedReadPairNs: number } {
  const lock = RwLock.create({ name: "bench" });
  const biased = RwLock.create({ name: "bench", readerBias: true });
  timeReadPairs(lock, PAIRS / 10); // warm up: let the JIT optimize both loops
  timeWritePairs(lock, PAIRS / 10);
  timeReadPairs(biased, PAIRS / 10);
  let readPairNs = Number.POSITIVE_INFINITY;
  let writePairNs = Number.POSITIVE_INFINITY;
  let biasedReadPairNs = Number.POSITIVE_INFINITY;
  for (let r = 0; r < ROUNDS; r++) {
    readPairNs = Math.min(readPairNs, timeReadPairs(lock, PAIRS));
    writePairNs = Math.min(writePairNs, timeWritePairs(lock, PAIRS));
    biasedReadPairNs = Math.min(biasedReadPairNs, timeReadPairs(biased, PAIRS));
  }
  return { readPairNs, writePairNs, biasedReadPairNs };
}
