// @ts-check
/**
 * A user-written reclaim strategy: "polled", after Linux's get_state_synchronize_rcu() and
 * poll_state_synchronize_rcu(). Each unlinked subtree is stamped with a grace-period cookie and
 * kept in this vCPU's FIFO; fault epilogues free the subtrees whose cookie has expired. No RCU
 * callback is queued at all, and when too many subtrees wait, the vCPU waits for a grace period
 * itself (after it has left mmu_lock and its read-side section).
 *
 *   npx stage2 faults --strategy ./examples/polled-strategy.mjs
 *
 * The contract it implements is `ReclaimStrategy` (stage2/kvm): the factory below runs once in every
 * vCPU worker, so fields are per thread and need no synchronization.
 */
import { countSubtreePages, freeQuiescent, RStat } from "stage2/kvm";
import { PageState } from "stage2/mem";
import { freeSubtreeNow } from "stage2/pgtable";

/** The name reports print. */
export const name = "polled";

/** Subtrees a vCPU may keep waiting before it synchronizes itself. */
const MAX_WAITING = 32;

/**
 * @typedef {import("stage2/kvm").ReclaimStrategy} ReclaimStrategy
 * @typedef {import("stage2/kvm").ReclaimStrategyEnv} ReclaimStrategyEnv
 * @typedef {import("stage2/pgtable").Stage2} Table
 */

/** @implements {ReclaimStrategy} */
class PolledStrategy {
  /** @param {ReclaimStrategyEnv} env */
  constructor(env) {
    this.name = env.name;
    this.rcu = env.rcu;
    this.stats = env.stats;
    /** @type {{ page: number, level: number, pages: number, cookie: number }[]} oldest first */
    this.waiting = [];
  }

  /**
   * Under mmu_lock; when `shared`, inside the read-side section too: never block here.
   * @param {Table} pgt
   * @param {number} page
   * @param {number} level
   * @param {boolean} shared
   */
  freeUnlinked(pgt, page, level, shared) {
    if (!shared) {
      // Exclusive walk: no other walker can be inside the subtree.
      this.stats.add(RStat.FREED_NOW, freeSubtreeNow(pgt, page, level));
      return;
    }
    pgt.pool.setState(page, PageState.UNLINKED);
    const pages = countSubtreePages(pgt, page, level);
    this.stats.add(RStat.SUBTREES);
    this.stats.add(RStat.PAGES_DEFERRED, pages);
    this.stats.addPending(RStat.PENDING_PAGES, pages);
    // startPoll() never blocks: it names a grace period that starts no earlier than now.
    this.waiting.push({ page, level, pages, cookie: this.rcu.startPoll() });
  }

  /** @returns {boolean} */
  hasEpilogueWork() {
    return this.waiting.length > 0;
  }

  /**
   * The lock and the read-side section are dropped: waiting is allowed here.
   * @param {Table} pgt
   */
  afterUnlock(pgt) {
    if (this.waiting.length > MAX_WAITING) {
      this.rcu.synchronize();
      this.stats.add(RStat.SYNC_FALLBACKS);
    }
    // Cookies only grow, so the expired subtrees are a prefix of the FIFO.
    let n = 0;
    while (n < this.waiting.length && this.rcu.pollState(this.waiting[n].cookie)) n++;
    for (const w of this.waiting.splice(0, n)) this.free(pgt, w);
  }

  /**
   * Before the thread exits: one grace period covers every cookie taken so far.
   * @param {Table} pgt
   */
  drain(pgt) {
    if (this.waiting.length === 0) return;
    this.rcu.synchronize();
    this.stats.add(RStat.SYNC_FALLBACKS);
    for (const w of this.waiting.splice(0)) this.free(pgt, w);
  }

  /**
   * @param {Table} pgt
   * @param {{ page: number, level: number, pages: number }} w
   */
  free(pgt, w) {
    this.stats.add(RStat.PAGES_RECLAIMED, freeQuiescent(pgt, w.page, w.level));
    // The same estimate that was added at unlink time, so pending pages return to zero.
    this.stats.add(RStat.PENDING_PAGES, -w.pages);
  }
}

/** @type {import("stage2/kvm").ReclaimStrategyFactory} */
export default function createStrategy(env) {
  return new PolledStrategy(env);
}
