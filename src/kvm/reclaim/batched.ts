/**
 * The kfree_rcu-style strategy: unlinked subtree roots go into per-thread arrays; a full (or old
 * enough) array is sealed with a polled grace-period cookie, and fault epilogues free the subtrees
 * of every array whose cookie has expired, in bulk, with no callback per object.
 *
 * Arrays are pages of the page pool, used as Int32 words (never published to the page table):
 *
 *   word 0  count     entries written        word 1  cookie   startPoll() at sealing
 *   word 2  next      first entry not freed   word 3  (spare)
 *   word 4+4i .. 7+4i  entry i: root page, level of its parent entry, estimated pages, and the
 *                      root's generation when it was deferred
 *
 * Only the owning thread touches its arrays while it lives, so plain accesses suffice. Sealed
 * arrays form a FIFO linked through the pages' metadata link word. The open array, the spare page
 * and the oldest sealed array are noted in the vCPU's record (vcpu-record.ts) so that if the vCPU
 * dies a reaper queues every entry not yet freed for a grace period and frees the array pages
 * (death.ts); `next` is advanced after each entry is freed, and the generation tells the reaper
 * whether an entry's root was freed just before a death that kept `next` from moving. Array pages are allocated in the epilogue (outside
 * the lock and the read-side section); when none can be had inside a fault, the subtree falls back
 * to the synchronous epilogue path (wait for a grace period, then free).
 */
import type { Stage2 } from "../../pgtable/stage2.js";
import { Rec } from "../vcpu-record.js";
import { RStat } from "./stats.js";
import { BaseReclaimStrategy } from "./strategy.js";
import { freeQuiescentSlice } from "../../pgtable/ops/unlinked.js";

/** Words of an array's header and of one entry (layout above); exported for the reaper. */
export const BATCH_HEADER_WORDS = 4;
export const BATCH_ENTRY_WORDS = 4;
const ENTRY_WORDS = BATCH_ENTRY_WORDS;
const HEADER_WORDS = BATCH_HEADER_WORDS;
const sliceDone = { value: false };

/** The kfree_rcu-style strategy: per-thread arrays of unlinked subtrees freed in bulk once their polled grace period expired. */
export class BatchedStrategy extends BaseReclaimStrategy {
  private current = -1;
  private currentSince = 0;
  /** Fault exits since the current array was opened (batchMaxAgeExits). */
  private currentExits = 0;
  private spare = -1;
  private sealedHead = -1;
  private sealedTail = -1;

  private capacity(pgt: Stage2): number {
    return Math.floor((pgt.pool.granule / 4 - HEADER_WORDS) / ENTRY_WORDS);
  }

  private base(pgt: Stage2, array: number): number {
    return (array * pgt.pool.granule) / 4;
  }

  protected deferShared(pgt: Stage2, page: number, level: number): void {
    const pages = this.markPending(pgt, page, level);
    if (this.current < 0) {
      if (this.spare < 0) {
        this.deferToEpilogue(pgt, page, level, pages); // no array could be had: fall back
        return;
      }
      this.current = this.spare;
      this.spare = -1;
      this.note(Rec.BATCH_SPARE, -1); // first: the page is never in both words
      this.currentSince = performance.now();
      this.currentExits = 0;
      const w = this.base(pgt, this.current);
      pgt.pool.words.fill(0, w, w + HEADER_WORDS);
      this.note(Rec.BATCH_CURRENT, this.current);
    }
    const words = pgt.pool.words;
    const w = this.base(pgt, this.current);
    const n = words[w] as number;
    const e = w + HEADER_WORDS + n * ENTRY_WORDS;
    words[e] = page;
    words[e + 1] = level;
    words[e + 2] = pages;
    words[e + 3] = pgt.pool.generation(page);
    words[w] = n + 1;
    if (n + 1 >= this.capacity(pgt)) this.seal(pgt);
  }

  private seal(pgt: Stage2): void {
    const array = this.current;
    if (array < 0) return;
    const w = this.base(pgt, array);
    pgt.pool.words[w + 1] = this.rcu.startPoll();
    pgt.pool.words[w + 2] = 0;
    pgt.pool.setLink(array, -1);
    if (this.sealedTail >= 0) pgt.pool.setLink(this.sealedTail, array);
    else {
      this.sealedHead = array;
      this.note(Rec.BATCH_SEALED, array);
    }
    this.sealedTail = array;
    this.current = -1;
    this.note(Rec.BATCH_CURRENT, -1); // a reaper skips a current array already in the sealed chain
    this.stats.add(RStat.BATCH_ARRAYS);
  }

  override afterUnlock(pgt: Stage2): void {
    super.afterUnlock(pgt);
    if (this.current >= 0 && this.aged()) this.seal(pgt);
    this.reclaimExpired(pgt, this.opts.sliceBudgetPages);
    if (this.spare < 0) {
      this.spare = pgt.pool.allocPage();
      this.note(Rec.BATCH_SPARE, this.spare);
    }
  }

  /** The current array is old enough to seal (by fault exits when batchMaxAgeExits is set, else by time). */
  private aged(): boolean {
    const exits = this.opts.batchMaxAgeExits;
    if (exits > 0) return ++this.currentExits >= exits;
    return performance.now() - this.currentSince >= this.opts.batchMaxAgeMs;
  }

  /** Frees subtrees of expired arrays, oldest first, up to `budget` pages. */
  private reclaimExpired(pgt: Stage2, budget: number): void {
    const words = pgt.pool.words;
    while (this.sealedHead >= 0 && budget > 0) {
      const array = this.sealedHead;
      const w = this.base(pgt, array);
      if (!this.rcu.pollState(words[w + 1] as number)) return;
      const n = words[w] as number;
      let i = words[w + 2] as number;
      for (; i < n && budget > 0; i++) {
        const e = w + HEADER_WORDS + i * ENTRY_WORDS;
        const root = words[e] as number;
        const freed = freeQuiescentSlice(pgt, root, words[e + 1] as number, budget, sliceDone);
        budget -= freed;
        this.stats.add(RStat.PAGES_RECLAIMED, freed);
        if (!sliceDone.value) break; // resume this entry next time
        this.stats.add(RStat.PENDING_PAGES, -(words[e + 2] as number));
        words[w + 2] = i + 1;
      }
      words[w + 2] = i;
      if (i < n) return;
      this.sealedHead = pgt.pool.link(array);
      this.note(Rec.BATCH_SEALED, this.sealedHead); // before the page goes
      if (this.sealedHead < 0) this.sealedTail = -1;
      pgt.pool.freePage(array);
    }
  }

  override drain(pgt: Stage2): void {
    super.drain(pgt);
    this.seal(pgt);
    while (this.sealedHead >= 0) {
      const w = this.base(pgt, this.sealedHead);
      if (!this.rcu.pollState(pgt.pool.words[w + 1] as number)) this.rcu.synchronize();
      this.reclaimExpired(pgt, Number.MAX_SAFE_INTEGER);
    }
    const spare = this.spare;
    this.spare = -1;
    this.note(Rec.BATCH_SPARE, -1);
    if (spare >= 0) pgt.pool.freePage(spare);
  }

  override hasEpilogueWork(): boolean {
    return super.hasEpilogueWork() || this.sealedHead >= 0 || this.current >= 0 || this.spare < 0;
  }
}
