/**
 * A three-state mutex in one Int32 word of shared memory: spin briefly, then sleep in `Atomics.wait`.
 *
 *   word value   meaning                           written by
 *   0            unlocked                          the holder, in mutexUnlock
 *   1            locked, nobody sleeping           a locker, by CAS 0 -> 1
 *   2            locked, a thread may be sleeping  a contending locker, by exchange
 *
 * The protocol is the classic futex mutex: the uncontended path costs one CAS to lock and one atomic
 * subtract to unlock, and `Atomics.notify` (about 70 us round trip on this machine) is only paid when a
 * waiter announced itself by storing 2. Critical sections guarded by this lock must stay short (the
 * page allocator only moves a batch of list links under it), so spinning usually wins before sleeping.
 *
 * Every operation here is an `Atomics` read-modify-write, which in JavaScript is sequentially consistent:
 * the CAS/exchange that acquires the word pairs with the subtract/store that released it, so plain reads
 * and writes made inside one critical section are visible to the next holder.
 */

/** Spins of `Atomics.load` (about 10 ns each) before a contending thread goes to sleep. */
const SPIN_LIMIT = 128;
/** Sleep bound in milliseconds; a safety net only, a releasing holder always notifies a sleeper. */
const WAIT_TIMEOUT_MS = 2;

const enum MutexWord {
  UNLOCKED = 0,
  LOCKED = 1,
  CONTENDED = 2,
}

/**
 * Acquires the mutex at `words[slot]`. Returns true when the lock was contended (the first CAS failed),
 * so callers can count contention in their statistics.
 */
export function mutexLock(words: Int32Array, slot: number): boolean {
  // Pairs with the release in mutexUnlock: acquiring 0 -> 1 makes the previous holder's writes visible.
  let seen = Atomics.compareExchange(words, slot, MutexWord.UNLOCKED, MutexWord.LOCKED);
  if (seen === MutexWord.UNLOCKED) return false;
  for (let i = 0; i < SPIN_LIMIT && seen !== MutexWord.UNLOCKED; i++) {
    seen = Atomics.load(words, slot);
    if (seen === MutexWord.UNLOCKED) {
      seen = Atomics.compareExchange(words, slot, MutexWord.UNLOCKED, MutexWord.LOCKED);
      if (seen === MutexWord.UNLOCKED) return true;
    }
  }
  // Announce a sleeper: from now on we hold the lock in state 2, so our unlock will notify; that may
  // wake nobody, which costs one useless notify and is harmless.
  while (Atomics.exchange(words, slot, MutexWord.CONTENDED) !== MutexWord.UNLOCKED) {
    Atomics.wait(words, slot, MutexWord.CONTENDED, WAIT_TIMEOUT_MS);
  }
  return true;
}

/** Releases the mutex at `words[slot]`; the caller must hold it. */
export function mutexUnlock(words: Int32Array, slot: number): void {
  // Pairs with the CAS/exchange in mutexLock: publishes the critical section's writes to the next holder.
  if (Atomics.sub(words, slot, 1) !== MutexWord.LOCKED) {
    Atomics.store(words, slot, MutexWord.UNLOCKED);
    Atomics.notify(words, slot, 1);
  }
}
