/**
 * Debug-mode page poisoning and the error raised when a page is misused.
 *
 * In debug mode `freePage` writes PTE_POISON over every descriptor of the page, and the allocator checks
 * that the pattern is intact when it hands the page out again: a mismatch means somebody wrote to the
 * page while it was free (a write-after-free). A walker that reads a freed page sees the poison, which
 * is an invalid descriptor, so it stops instead of descending into garbage.
 */

/**
 * Pattern written over each descriptor of a freed page in debug mode: 0x6b (the kernel's free poison)
 * in every byte except the lowest, 0x6a. Bit 0 is clear, so it is an invalid descriptor; bit 10 is
 * clear, so it is not the "locked by a walker" marker that would make walkers retry forever.
 */
export const PTE_POISON = 0x6b6b6b6b_6b6b6b6an;
/** Low and high 32-bit halves of PTE_POISON, for word-wise checks that allocate no BigInt. */
export const POISON_LO = 0x6b6b6b6a;
export const POISON_HI = 0x6b6b6b6b;

/**
 * Writes PTE_POISON over `count` descriptors from index `first`. Each store is a single 64-bit atomic,
 * so a racing (buggy) reader sees either its old value or the whole poison, never a torn mix; and it
 * pairs with that reader's Atomics.load, so a reader that saw poison also sees the generation bump that
 * freePage made before poisoning.
 */
export function poisonEntries(ptes: BigInt64Array, first: number, count: number): void {
  const end = first + count;
  for (let i = first; i < end; i++) Atomics.store(ptes, i, PTE_POISON);
}

/**
 * First word index in [start, end) of `words` that does not hold the pattern (lo, hi) in alternating
 * words, or -1. Used with (0, 0) to check fresh pages and with (POISON_LO, POISON_HI) for freed ones.
 */
export function findPatternMismatch(
  words: Int32Array,
  start: number,
  end: number,
  lo: number,
  hi: number,
): number {
  for (let i = start; i < end; i += 2) {
    if (words[i] !== lo) return i;
    if (words[i + 1] !== hi) return i + 1;
  }
  return -1;
}

/** What a PageMisuseError reports. */
export type PageMisuseKind = "double-free" | "write-after-free" | "use-after-free" | "refcount-underflow";

/**
 * A page was used against the allocator's contract; thrown in debug mode only (non-debug pools count
 * these events in their statistics instead). It reports a bug in the caller and is not meant to be
 * caught and retried.
 */
export class PageMisuseError extends Error {
  readonly kind: PageMisuseKind;
  readonly page: number;
  constructor(kind: PageMisuseKind, page: number, message: string) {
    super(message);
    this.name = "PageMisuseError";
    this.kind = kind;
    this.page = page;
  }
}
