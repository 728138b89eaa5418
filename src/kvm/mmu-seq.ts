/**
 * mmu_invalidate_seq and mmu_invalidate_in_progress in one word (MMU_SEQ of the memslot table),
 * so that a fault checks both with a single load under the lock.
 *
 *   MMU_SEQ:  31..8 sequence (+1 per invalidation end and per memslot change)  7..0 in progress
 *
 * Writers: host threads, always under the write mmu_lock. Readers: faults, once before they read
 * their memslot (`mmuSeqRead`, an SC load that orders the slot reads after it) and once under
 * mmu_lock (`mmuSeqRetry`, a plain read that the lock orders against the host's bumps).
 *
 * The protocol (Linux's mmu_invalidate_retry): a fault that read the slot before a change and
 * takes mmu_lock after it sees a different word and retries; a fault that takes mmu_lock between
 * invalidate start and end sees a non-zero count and retries, so it cannot map a page the host
 * is about to take away.
 */
import { SlotWord } from "./memslot.js";

/** Bits of the MMU_SEQ word. */
export const enum MmuSeq {
  IN_PROGRESS_MASK = 0xff,
  SEQ_ONE = 0x100,
}

/** Fault: the word before reading the memslot. */
export function mmuSeqRead(words: Int32Array): number {
  // Pairs with the host's Atomics.add below: a slot read after this load is at least as new as
  // any change whose bump this load missed.
  return Atomics.load(words, SlotWord.MMU_SEQ);
}

/** Fault, under mmu_lock: whether the fault must retry (an invalidation ran or is running). */
export function mmuSeqRetry(words: Int32Array, seen: number): boolean {
  // A plain read, race-free: every write of the word is made under the write lock, and the caller
  // holds mmu_lock (for read or write), so the lock orders each write before or after this read
  // (the writer's unlock pairs with our lock; our unlock with the next writer's lock). An
  // Atomics.load would add a builtin call (~4.5 ns here) and no ordering.
  const now = words[SlotWord.MMU_SEQ] as number;
  return now !== seen || (now & MmuSeq.IN_PROGRESS_MASK) !== 0;
}

/** Host, write lock held: a memslot changed. */
export function mmuSeqBumpSlots(words: Int32Array): void {
  Atomics.add(words, SlotWord.MMU_SEQ, MmuSeq.SEQ_ONE);
}

/** Host, write lock held: invalidate_range_start. */
export function mmuSeqInvalidateStart(words: Int32Array): void {
  if ((Atomics.load(words, SlotWord.MMU_SEQ) & MmuSeq.IN_PROGRESS_MASK) === MmuSeq.IN_PROGRESS_MASK)
    throw new RangeError("Cannot start an invalidation: 255 are already in progress");
  Atomics.add(words, SlotWord.MMU_SEQ, 1);
}

/** Host, write lock held: invalidate_range_end (sequence +1, in progress -1). */
export function mmuSeqInvalidateEnd(words: Int32Array): void {
  if ((Atomics.load(words, SlotWord.MMU_SEQ) & MmuSeq.IN_PROGRESS_MASK) === 0)
    throw new RangeError("Cannot end an invalidation: none is in progress");
  Atomics.add(words, SlotWord.MMU_SEQ, MmuSeq.SEQ_ONE - 1);
}
