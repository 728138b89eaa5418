/**
 * A robust mutex in one Int32 word of shared memory: spin briefly, then sleep in `Atomics.wait`. The
 * word names its holder, so that a reaper can take the lock back from a thread that died holding it.
 *
 *   word value            meaning                                  written by
 *   0                     unlocked                                 the holder, in mutexUnlock (exchange)
 *   tag(t) | LOCKED       held by thread t, nobody sleeping        a locker, by CAS 0 -> tag | LOCKED
 *   tag(t) | LOCKED|WAIT  held by t, a thread may be sleeping      a sleeper (CAS setting WAIT), or a
 *                                                                  locker acquiring after it slept
 *   tag(t) = (threadId of t + 1) << 2: never 0, so a held word is never 0 (the main thread's id is 0).
 *
 * The holder is recorded by the acquiring compare-and-swap itself: there is no instant at which the
 * lock is held and the word does not name the holder. That matters because V8 delivers
 * `worker.terminate()` only at function entries and loop back edges (see sync/rwlock.ts): a thread
 * terminated anywhere inside a critical section leaves its tag in the word, and `mutexHolder()` reads
 * it. What the dead holder was protecting is for the owner of the lock to repair (`PagePool
 * .reapDeadHolder`); `mutexForceUnlock()` then releases the word on the dead thread's behalf.
 *
 * The protocol is the classic futex mutex: the uncontended path costs one CAS to lock and one atomic
 * exchange to unlock (the three-state version's subtract, same price), and `Atomics.notify` (about
 * 70 us round trip on this machine) is only paid when a waiter announced itself by setting WAIT.
 * Critical sections guarded by this lock must stay short (the page allocator only moves a batch of
 * list links under it), so spinning usually wins before sleeping.
 *
 * Every operation here is an `Atomics` read-modify-write, which in JavaScript is sequentially consistent:
 * the CAS that acquires the word pairs with the exchange that released it, so plain reads and writes
 * made inside one critical section are visible to the next holder (and to a reaper's repair: its
 * mutexHolder load pairs with the dead holder's acquiring CAS; its writes reach the next holder
 * through mutexForceUnlock's exchange, as a holder's own would).
 */
import { threadId } from "node:worker_threads";

/** Spins of `Atomics.load` (about 10 ns each) before a contending thread goes to sleep. */
const SPIN_LIMIT = 128;
/** Sleep bound in milliseconds; a safety net only, a releasing holder always notifies a sleeper. */
const WAIT_TIMEOUT_MS = 2;

const enum MutexBit {
  LOCKED = 1,
  WAIT = 2,
  TAG_SHIFT = 2,
}

/** This thread's tag in a held word. */
const SELF = (threadId + 1) << MutexBit.TAG_SHIFT;
if (!(threadId >= 0 && threadId < 2 ** 29))
  throw new RangeError(`thread id ${threadId} does not fit a mutex tag`);

/**
 * Acquires the mutex at `words[slot]`. Returns true when the lock was contended (the first CAS failed),
 * so callers can count contention in their statistics.
 */
export function mutexLock(words: Int32Array, slot: number): boolean {
  // Pairs with the exchange in mutexUnlock/mutexForceUnlock: acquiring from 0 makes the previous
  // holder's writes visible, and names this thread in the same step.
  let seen = Atomics.compareExchange(words, slot, 0, SELF | MutexBit.LOCKED);
  if (seen === 0) return false;
  for (let i = 0; i < SPIN_LIMIT && seen !== 0; i++) {
    seen = Atomics.load(words, slot);
    if (seen === 0) {
      seen = Atomics.compareExchange(words, slot, 0, SELF | MutexBit.LOCKED);
      if (seen === 0) return true;
    }
  }
  for (;;) {
    if (seen === 0) {
      // Acquire with WAIT set: others may still sleep, so our unlock must notify (it may wake
      // nobody, which costs one useless notify and is harmless).
      seen = Atomics.compareExchange(words, slot, 0, SELF | MutexBit.LOCKED | MutexBit.WAIT);
      if (seen === 0) return true;
      continue;
    }
    if ((seen & MutexBit.WAIT) === 0) {
      // Announce a sleeper; pairs with the exchange in mutexUnlock, which sees WAIT and notifies.
      const was = Atomics.compareExchange(words, slot, seen, seen | MutexBit.WAIT);
      if (was !== seen) {
        seen = was;
        continue;
      }
      seen |= MutexBit.WAIT;
    }
    Atomics.wait(words, slot, seen, WAIT_TIMEOUT_MS);
    seen = Atomics.load(words, slot);
  }
}

/** Releases the mutex at `words[slot]`; the caller must hold it. */
export function mutexUnlock(words: Int32Array, slot: number): void {
  // Pairs with the CAS in mutexLock: publishes the critical section's writes to the next holder.
  if ((Atomics.exchange(words, slot, 0) & MutexBit.WAIT) !== 0) Atomics.notify(words, slot, 1);
}

/** The thread id of the holder of the mutex at `words[slot]`, or -1 when it is free. */
export function mutexHolder(words: Int32Array, slot: number): number {
  // Pairs with the acquiring CAS in mutexLock (the tag is written by that CAS).
  const w = Atomics.load(words, slot);
  return w === 0 ? -1 : (w >>> MutexBit.TAG_SHIFT) - 1;
}

/**
 * Releases the mutex at `words[slot]` on behalf of thread `deadThreadId`, which must be dead (it can
 * never release it itself) and is checked to be the holder. Wakes every sleeper. Returns false, doing
 * nothing, when that thread does not hold the mutex. Repair what the lock protects first.
 */
export function mutexForceUnlock(words: Int32Array, slot: number, deadThreadId: number): boolean {
  if (mutexHolder(words, slot) !== deadThreadId) return false;
  // A dead holder's word changes only by sleepers setting WAIT: the exchange releases it either way,
  // and pairs with the next locker's CAS as mutexUnlock's does.
  Atomics.exchange(words, slot, 0);
  Atomics.notify(words, slot);
  return true;
}
