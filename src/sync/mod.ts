/**
 * Synchronization primitives in shared memory: the spin-then-sleep helpers and the reader-writer
 * lock that models KVM's `mmu_lock`, and the controlled scheduler that runs threads one at a time.
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
  ControlledScheduler,
  LOG_CAP,
  MAX_PARTICIPANTS,
  MAX_PCT_DEPTH,
  type ScheduleStrategy,
  type ScheduleSummary,
  type SchedulerHandle,
  type SchedulerOptions,
} from "./controlled.js";
export {
  Hold,
  RwLock,
  type RwLockHandle,
  type RwLockOptions,
  type RwLockSnapshot,
  RwLockUsageError,
} from "./rwlock.js";
export type { RwLockStats } from "./rwlock-stats.js";
