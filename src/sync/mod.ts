/**
 * Synchronization primitives in shared memory: the spin-then-sleep helpers and the reader-writer
 * lock that models KVM's `mmu_lock`.
 */
export {
  awaitClear,
  type BackoffPolicy,
  bumpAndWake,
  DEFAULT_BACKOFF,
  makeBackoffPolicy,
  spinUntilClear,
  spinWhile,
  waitWhile,
  wakeSleepers,
} from "./backoff.js";
export {
  RwLock,
  type RwLockHandle,
  type RwLockOptions,
  type RwLockSnapshot,
  RwLockUsageError,
} from "./rwlock.js";
export type { RwLockStats } from "./rwlock-stats.js";
