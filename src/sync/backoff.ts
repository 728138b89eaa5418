/**
 * Spin-then-sleep waiting on Int32 words in shared memory.
 *
 * On this machine (2 cores) a thread that waits for another one should first spin a little on
 * `Atomics.load` (a round trip through a spinning thread costs ~0.3 us) and only then sleep with
 * `Atomics.wait` (a wait/notify round trip costs ~70 us). Every sleep is timed: a wakeup that a
 * buggy or terminated thread never sends costs latency, never a hang.
 *
 * Two ways of waiting are offered:
 *
 * - `waitWhile(arr, i, value)`: wait until a word stops holding a value. The thread that changes the
 *   word calls `Atomics.notify(arr, i)` if it wants sleepers to see the change before their timeout.
 *
 * - `awaitClear(arr, word, mask, seq, sleepBit)`: wait until some bits of a *busy* word are all zero,
 *   for words that change too often to sleep on directly (a lock word that readers increment). The
 *   sleeper sleeps on a separate sequence word `seq` and advertises itself with `sleepBit` in `word`:
 *
 *       sleeper                                      waker (makes the mask bits clear)
 *       s0 = load(seq)                               old = RMW(word)   (clears mask bits, maybe sleepBit)
 *       x  = load(word); if (x & mask) == 0: done    if old had sleepBit:
 *       CAS(word, x, x | sleepBit)  (x still busy)       clear sleepBit (if the RMW did not)
 *       wait(seq, s0, timeout)                           wakeSleepers: add(seq, 1); notify(seq)
 *
 *   Why no wakeup is lost: the sleeper sets `sleepBit` while the mask bits are still set, so the RMW
 *   that clears them comes later and sees the bit. Its `add(seq, 1)` then comes after the sleeper's
 *   `load(seq)`, so either the wait finds `seq != s0` and returns at once, or the notify wakes it.
 *   The rule for wakers: whoever clears `sleepBit` must afterwards call `wakeSleepers` (a clear
 *   without a wake strands the sleepers until their timeout).
 *
 * Nothing here allocates; the helpers are meant for slow paths but cheap enough for any path.
 */
import { cooperative, RacePoint, racePoint } from "../common/race-points.js";
import { Errno } from "../common/errno.js";

/** How long to spin before sleeping, and how long each sleep lasts at most. */
export interface BackoffPolicy {
  /** Atomics.load iterations before the first sleep (0 sleeps at once). */
  readonly spins: number;
  /** Upper bound of one Atomics.wait, in milliseconds (a lost wakeup costs at most this). */
  readonly sleepMs: number;
}

/** ~5-10 us of spinning, then sleeps of at most 2 ms. */
export const DEFAULT_BACKOFF: BackoffPolicy = Object.freeze({ spins: 512, sleepMs: 2 });

const MAX_SPINS = 1_000_000;
const MAX_SLEEP_MS = 1000;

/**
 * Builds a policy from optional overrides, checking them.
 * @throws TypeError if a value is not a number; RangeError if it is out of range.
 */
export function makeBackoffPolicy(opts: Partial<BackoffPolicy> = {}, what = "backoff"): BackoffPolicy {
  const spins = opts.spins ?? DEFAULT_BACKOFF.spins;
  const sleepMs = opts.sleepMs ?? DEFAULT_BACKOFF.sleepMs;
  if (typeof spins !== "number" || typeof sleepMs !== "number") {
    throw new TypeError(`Cannot configure ${what}: spins and sleepMs must be numbers`);
  }
  if (!Number.isInteger(spins) || spins < 0 || spins > MAX_SPINS) {
    throw new RangeError(`Cannot configure ${what}: spins ${spins} is not an integer in 0..${MAX_SPINS}`);
  }
  if (!(sleepMs > 0 && sleepMs <= MAX_SLEEP_MS)) {
    throw new RangeError(`Cannot configure ${what}: sleepMs ${sleepMs} is not in (0, ${MAX_SLEEP_MS}]`);
  }
  return Object.freeze({ spins, sleepMs });
}

/** Spins at most `spins` loads while `arr[index] === value`. Returns true once the word differs. */
export function spinWhile(arr: Int32Array, index: number, value: number, spins: number): boolean {
  for (let i = 0; i < spins; i++) {
    if (Atomics.load(arr, index) !== value) return true;
    racePoint(RacePoint.WAIT_LOOP);
  }
  return Atomics.load(arr, index) !== value;
}

/** Spins at most `spins` loads until `(arr[index] & mask) === 0`. Returns true once the bits are clear. */
export function spinUntilClear(arr: Int32Array, index: number, mask: number, spins: number): boolean {
  for (let i = 0; i < spins; i++) {
    if ((Atomics.load(arr, index) & mask) === 0) return true;
    racePoint(RacePoint.WAIT_LOOP);
  }
  return (Atomics.load(arr, index) & mask) === 0;
}

/**
 * Waits while `arr[index] === value`: spins, then sleeps in timed `Atomics.wait` rounds.
 * Returns `Errno.OK` once the word differs, or `Errno.TIMEDOUT` after `timeoutMs` (default: never).
 * Sleepers wake early only if the writer of the word calls `Atomics.notify(arr, index)`.
 */
export function waitWhile(
  arr: Int32Array,
  index: number,
  value: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  timeoutMs = Number.POSITIVE_INFINITY,
): number {
  if (spinWhile(arr, index, value, policy.spins)) return Errno.OK;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) return Atomics.load(arr, index) !== value ? Errno.OK : Errno.TIMEDOUT;
    racePoint(RacePoint.WAIT_LOOP);
    if (!cooperative) Atomics.wait(arr, index, value, Math.min(policy.sleepMs, left));
    if (Atomics.load(arr, index) !== value) return Errno.OK;
  }
}

/**
 * Waits until `(arr[word] & mask) === 0`, sleeping on `arr[seq]` with `sleepBit` set in `arr[word]`
 * (protocol in the file comment). `sleepBit` must not be in `mask`. Returns how many times the
 * thread slept (0 when spinning sufficed), so callers can keep statistics.
 *
 * Precondition: every thread that clears the mask bits, or clears `sleepBit`, follows the waker
 * rule (see `wakeSleepers`).
 */
export function awaitClear(
  arr: Int32Array,
  word: number,
  mask: number,
  seq: number,
  sleepBit: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
): number {
  if (spinUntilClear(arr, word, mask, policy.spins)) return 0;
  let sleeps = 0;
  for (;;) {
    // The sequence is read before the word: a wake that follows our sleepBit bumps it after this load.
    const s0 = Atomics.load(arr, seq);
    const x = Atomics.load(arr, word);
    if ((x & mask) === 0) return sleeps;
    racePoint(RacePoint.WAIT_LOOP);
    // Publish the bit on a still-busy value; pairs with the waker's RMW that clears the mask bits.
    if ((x & sleepBit) === 0 && Atomics.compareExchange(arr, word, x, x | sleepBit) !== x) continue;
    if (!cooperative) Atomics.wait(arr, seq, s0, policy.sleepMs);
    sleeps++;
    if (spinUntilClear(arr, word, mask, policy.spins)) return sleeps;
  }
}

/** Advances the sequence word `seq` and wakes up to `count` threads sleeping on it. */
export function bumpAndWake(arr: Int32Array, seq: number, count = Number.POSITIVE_INFINITY): void {
  // The add is ordered after the caller's RMW that cleared the sleep bit (both sequentially
  // consistent), and pairs with the sleeper's load of `seq` before it published that bit.
  Atomics.add(arr, seq, 1);
  Atomics.notify(arr, seq, count);
}

/** Clears `sleepBit` in `arr[word]` and wakes the sleepers of `seq`: the waker side of `awaitClear`. */
export function wakeSleepers(
  arr: Int32Array,
  word: number,
  sleepBit: number,
  seq: number,
  count = Number.POSITIVE_INFINITY,
): void {
  Atomics.and(arr, word, ~sleepBit);
  bumpAndWake(arr, seq, count);
}
