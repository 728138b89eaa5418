/**
 * The physical page pool and its allocator, usable from any worker thread.
 *
 * Pages live in one SharedArrayBuffer placed at a configurable base physical address, so descriptors
 * hold real output addresses and any thread turns an address back into its page (`paToPage`). Per-page
 * metadata (refcount, state, level, link, generation) lives in a second SharedArrayBuffer; layout.ts
 * draws both and says who writes each word.
 *
 * Allocation: pages never handed out come from a bump pointer (lock-free CAS); freed pages go on a free
 * list guarded by a spin-then-sleep mutex. Both paths move whole batches, so a memory-cache topup or a
 * batch free costs one lock trip. The free list is used first (warm pages), the bump region next.
 *
 * Zeroing: a page is zeroed when it is handed out, with plain writes. That is safe because the page is
 * private to the allocating thread until it is published by an atomic store of a table descriptor
 * (Atomics are sequentially consistent, so that store orders the plain zeroing before any walker's
 * Atomics.load of the descriptor). Pages from the bump region are still zero from SharedArrayBuffer
 * creation and are not filled again (debug mode checks it).
 *
 * Thread safety: all methods may be called from any thread on its own view (`PagePool.attach`).
 * The views themselves hold thread-local scratch space and must not be shared between threads.
 */
import {
  auditFreeList,
  findFreeRun,
  freeListPop,
  freeListPush,
  freeListUnlink,
  isListed,
} from "./free-list.js";
import {
  HEADER_WORDS,
  initMeta,
  NOT_LISTED,
  metaIndex,
  metaWords,
  PAGE_META_STRIDE,
  PageMeta,
  PageState,
  PoolHeader,
} from "./layout.js";
import { findPatternMismatch, PageMisuseError, POISON_HI, POISON_LO, poisonEntries } from "./poison.js";
import {
  allocShared,
  checkPoolHandle,
  type Granule,
  type PagePoolHandle,
  type PagePoolOptions,
  resolvePoolOptions,
} from "./pool-options.js";
import { formatPages, type PageInfo, type PoolStats, pageInfo, readStats } from "./pool-stats.js";
import { mutexForceUnlock, mutexHolder, mutexLock, mutexUnlock } from "./spin-mutex.js";
import { RacePoint, shouldFail } from "../common/race-points.js";

export { PageState } from "./layout.js";
export { PTE_POISON } from "./poison.js";
export type { Granule, PagePoolHandle, PagePoolOptions } from "./pool-options.js";
export type { PageInfo, PoolStats } from "./pool-stats.js";

/** Most pages `allocContiguous` hands out: stage 2 concatenates at most 16 entry-level tables. */
export const MAX_CONTIGUOUS_PAGES = 16;

/** Alignment, in pages, of a contiguous run of n pages: the next power of two (n is 1..16). */
function alignRun(n: number): number {
  return 2 ** Math.ceil(Math.log2(n));
}

/**
 * A thread's view of a shared page pool. `PagePool.create(opts)` allocates the memory;
 * `pool.handle` goes to workers; `PagePool.attach(handle)` builds another thread's view.
 * Every method may be called from any thread on its own view; views are not shared.
 */
export class PagePool {
  readonly handle: PagePoolHandle;
  readonly granule: Granule;
  readonly pageShift: number;
  readonly entriesPerPage: number;
  readonly pageCount: number;
  readonly basePa: number;
  readonly debug: boolean;
  /** Descriptor view of the whole pool: entry e of page p is ptes[p * entriesPerPage + e]. */
  readonly ptes: BigInt64Array;
  /** The same memory as 32-bit words: entry e of page p is words[2*(p*entriesPerPage + e)] (low half) and +1. */
  readonly words: Int32Array;
  private readonly meta: Int32Array;
  private readonly wordsPerPage: number;
  /** Thread-local scratch: allocPage's one-page batch and freeBatch's list of pages to push. */
  private readonly one = new Int32Array(1);
  private scratch = new Int32Array(MAX_CONTIGUOUS_PAGES);

  /** Makes a new pool (zeroed pages, all free) and returns this thread's view of it. */
  static create(opts: PagePoolOptions): PagePool {
    const o = resolvePoolOptions(opts);
    const memory = allocShared(o.pages * o.granule, "page memory");
    const meta = allocShared(metaWords(o.pages) * 4, "page metadata");
    initMeta(new Int32Array(meta), o.pages);
    return new PagePool({ memory, meta, ...o });
  }

  /** Builds a view of an existing pool from its handle (e.g. received through workerData). */
  static attach(handle: PagePoolHandle): PagePool {
    checkPoolHandle(handle, (pages) => metaWords(pages) * 4);
    return new PagePool(handle);
  }

  private constructor(handle: PagePoolHandle) {
    const { memory, meta, granule, pages, basePa, debug } = handle;
    this.handle = { memory, meta, granule, pages, basePa, debug };
    this.granule = granule;
    this.pageShift = Math.log2(granule);
    this.entriesPerPage = granule / 8;
    this.wordsPerPage = granule / 4;
    this.pageCount = pages;
    this.basePa = basePa;
    this.debug = debug;
    this.ptes = new BigInt64Array(memory);
    this.words = new Int32Array(memory);
    this.meta = new Int32Array(meta);
  }

  // --- Addresses --------------------------------------------------------------------------------

  /** Physical address of `page` (no check: the caller holds a page index from this pool). */
  pageToPa(page: number): number {
    return this.basePa + page * this.granule;
  }

  /** Page holding physical address `pa`; -1 if `pa` is outside the pool or not page aligned. */
  paToPage(pa: number): number {
    const offset = pa - this.basePa;
    if (!(offset >= 0 && offset < this.pageCount * this.granule)) return -1;
    // Whole pages only; floor and compare instead of `%` (a runtime call for doubles in V8).
    const page = Math.floor(offset / this.granule);
    return page * this.granule === offset ? page : -1;
  }

  // --- Allocation -------------------------------------------------------------------------------

  /** A zeroed page with refcount 1, state TABLE and level -1; -1 when the pool is exhausted. */
  allocPage(): number {
    return this.allocBatch(this.one, 1) === 1 ? this.one[0]! : -1;
  }

  /**
   * Allocates up to `n` pages into out[offset..offset+n), each as from allocPage, and returns how many it
   * got (fewer only when the pool is exhausted; that counts as one allocation failure). At most one
   * free-list lock trip when the free list can satisfy the batch.
   */
  allocBatch(out: Int32Array, n: number, offset = 0): number {
    if (!((n | 0) === n && n >= 0 && offset >= 0 && offset + n <= out.length)) {
      throw new RangeError(`Cannot allocate ${n} pages at offset ${offset} into an array of ${out.length}`);
    }
    // Injected ENOMEM (torture): before any lock, so a scheduler hook here never runs under the mutex.
    if (shouldFail(RacePoint.ALLOC_PAGE)) {
      this.countAllocs(0, n);
      return 0;
    }
    let got = 0;
    // Unlocked hint; pairs with the Atomics.store of FREE_COUNT under the lock in free-list.ts.
    if (Atomics.load(this.meta, PoolHeader.FREE_COUNT) > 0) got = this.takeFromFreeList(out, offset, n);
    if (got < n) got += this.takeFromBump(out, offset + got, n - got);
    if (got < n && Atomics.load(this.meta, PoolHeader.FREE_COUNT) > 0) {
      got += this.takeFromFreeList(out, offset + got, n - got);
    }
    this.countAllocs(got, n);
    return got;
  }

  /**
   * First of `n` (1..16) adjacent zeroed pages, each with refcount 1 and state TABLE, for concatenated
   * entry-level tables; -1 if no such run exists. Takes the run from the bump region, or else searches
   * the free list for one (a linear scan under the lock: fine for the rare entry-level allocation).
   * The run's physical address is aligned to `n` pages rounded up to a power of two (as VTTBR_EL2.BADDR requires of concatenated
   * tables); pages skipped in the bump region to reach that alignment go to the free list.
   */
  allocContiguous(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > MAX_CONTIGUOUS_PAGES) {
      throw new RangeError(
        `Cannot allocate ${n} contiguous pages: the count must be 1..${MAX_CONTIGUOUS_PAGES}`,
      );
    }
    let first = this.reserveAlignedBump(n);
    const recycled = first < 0;
    if (recycled) first = this.takeRunFromFreeList(n);
    if (first >= 0) for (let p = first; p < first + n; p++) this.prepare(p, recycled);
    this.countAllocs(first >= 0 ? n : 0, n);
    return first;
  }

  /**
   * Returns `page` to the allocator whatever its refcount. Freeing a FREE page is counted as a double
   * free and ignored; in debug mode it throws PageMisuseError.
   */
  freePage(page: number): void {
    this.checkPage(page, "free");
    if (!this.retire(page)) {
      if (this.debug) this.doubleFree(page);
      return;
    }
    this.countFrees(1);
    this.lock();
    freeListPush(this.meta, page);
    this.unlock();
  }

  /** Frees pages[offset..offset+n) like freePage, with one lock trip for the whole batch. */
  freeBatch(pages: Int32Array, n: number, offset = 0): void {
    if (!((n | 0) === n && n >= 0 && offset >= 0 && offset + n <= pages.length)) {
      throw new RangeError(`Cannot free ${n} pages at offset ${offset} from an array of ${pages.length}`);
    }
    if (this.scratch.length < n) this.scratch = new Int32Array(Math.max(n, 2 * this.scratch.length));
    for (let i = offset; i < offset + n; i++) this.checkPage(pages[i]!, "free");
    const ready = this.scratch;
    let k = 0;
    let doubleFreed = -1;
    for (let i = offset; i < offset + n; i++) {
      const page = pages[i]!;
      if (this.retire(page)) ready[k++] = page;
      else doubleFreed = page;
    }
    if (k > 0) {
      this.countFrees(k);
      this.lock();
      for (let i = 0; i < k; i++) freeListPush(this.meta, ready[i]!);
      this.unlock();
    }
    // Thrown only after the rest of the batch is safely back on the list.
    if (doubleFreed >= 0 && this.debug) this.doubleFree(doubleFreed);
  }

  // --- Reference counts (single atomic operations) ---------------------------------------------

  /** refcount++; returns the new count. */
  getPage(page: number): number {
    const count = Atomics.add(this.meta, this.base(page, "get") + PageMeta.REFCOUNT, 1) + 1;
    if (this.debug) this.assertNotFree(page, "getPage");
    return count;
  }

  /** refcount--; frees the page when the count reaches 0; returns the new count. */
  putPage(page: number): number {
    const count = Atomics.sub(this.meta, this.base(page, "put") + PageMeta.REFCOUNT, 1) - 1;
    if (count === 0) this.freePage(page);
    else if (count < 0) this.refcountUnderflow(page, count);
    return count;
  }

  refcount(page: number): number {
    return Atomics.load(this.meta, this.base(page, "read") + PageMeta.REFCOUNT);
  }

  // --- Per-page metadata ------------------------------------------------------------------------

  state(page: number): PageState {
    return Atomics.load(this.meta, this.base(page, "read") + PageMeta.STATE);
  }

  /** Sets TABLE or UNLINKED; only the allocator makes a page FREE (freePage). */
  setState(page: number, s: PageState): void {
    const base = this.base(page, "set the state of");
    if (s !== PageState.TABLE && s !== PageState.UNLINKED) {
      throw new RangeError(`Cannot set page ${page} to state ${s}: use freePage to free a page`);
    }
    if (this.debug) this.assertNotFree(page, "setState");
    Atomics.store(this.meta, base + PageMeta.STATE, s);
  }

  level(page: number): number {
    return Atomics.load(this.meta, this.base(page, "read") + PageMeta.LEVEL);
  }

  setLevel(page: number, level: number): void {
    Atomics.store(this.meta, this.base(page, "set the level of") + PageMeta.LEVEL, level);
  }

  /** Deferred-free list link (-1 = none), free for the page-table and RCU code to use. */
  link(page: number): number {
    return Atomics.load(this.meta, this.base(page, "read") + PageMeta.LINK);
  }

  setLink(page: number, next: number): void {
    Atomics.store(this.meta, this.base(page, "set the link of") + PageMeta.LINK, next);
  }

  /** Spare metadata word for upper layers (e.g. a grace-period cookie); 0 after allocation. */
  aux(page: number): number {
    return Atomics.load(this.meta, this.base(page, "read") + PageMeta.AUX);
  }

  setAux(page: number, value: number): void {
    Atomics.store(this.meta, this.base(page, "set the aux word of") + PageMeta.AUX, value);
  }

  /** Bumped at every free. A walker records it on entering a table and checks isLive afterwards. */
  generation(page: number): number {
    return Atomics.load(this.meta, this.base(page, "read") + PageMeta.GENERATION);
  }

  /**
   * True when `page` is not FREE and still carries generation `gen`, i.e. it was not freed since the
   * caller read `gen`. Reads the state first: freePage sets FREE before it bumps the generation, so a
   * free that completed before this call is always caught by one of the two loads.
   */
  isLive(page: number, gen: number): boolean {
    const base = this.base(page, "check");
    return (
      Atomics.load(this.meta, base + PageMeta.STATE) !== PageState.FREE &&
      Atomics.load(this.meta, base + PageMeta.GENERATION) === gen
    );
  }

  /** Zeroes every entry of `page` (plain writes: only for pages no other thread can read yet). */
  zeroPage(page: number): void {
    this.checkPage(page, "zero");
    this.zeroEntries(page);
  }

  // --- Leak check, statistics, audit ------------------------------------------------------------

  /** Every page that is not FREE (caches included). Exact only when no thread allocates or frees. */
  allocatedPages(): number[] {
    const pages: number[] = [];
    const bump = Math.min(Atomics.load(this.meta, PoolHeader.BUMP), this.pageCount);
    for (let p = 0; p < bump; p++) {
      if (Atomics.load(this.meta, metaIndex(p, PageMeta.STATE)) !== PageState.FREE) pages.push(p);
    }
    return pages;
  }

  stats(): PoolStats {
    return readStats(this.meta, this.pageCount);
  }

  /** Snapshot of one page's metadata, for leak reports and error messages. */
  describePage(page: number): PageInfo {
    return pageInfo(this.meta, this.base(page, "describe"), page, this.pageToPa(page));
  }

  /** Leak report: one line per page still allocated (see formatPages), "" when none. */
  leakReport(): string {
    return formatPages(this.allocatedPages().map((p) => this.describePage(p)));
  }

  /**
   * Checks the allocator's invariants (free list shape, states, the ALLOCATED counter) and returns one
   * line per problem. Call it only while no thread allocates or frees.
   */
  audit(): string[] {
    this.lock();
    const bump = Atomics.load(this.meta, PoolHeader.BUMP);
    const problems = auditFreeList(this.meta, this.pageCount, bump);
    this.unlock();
    const inUse = this.allocatedPages().length;
    const allocated = Atomics.load(this.meta, PoolHeader.ALLOCATED);
    if (inUse !== allocated)
      problems.push(`${inUse} pages are in use but the ALLOCATED counter says ${allocated}`);
    return problems;
  }

  // --- Dead threads ---------------------------------------------------------------------------------

  /** Thread id of the free-list mutex's holder, -1 when it is free (for reapers and tests). */
  lockHolder(): number {
    return mutexHolder(this.meta, PoolHeader.LOCK);
  }

  /**
   * Takes the free-list mutex back from thread `deadThreadId`, which must be dead (its worker ended),
   * if it died holding it: rebuilds the free list, then releases the mutex and wakes its sleepers.
   * Returns false, touching nothing, when that thread does not hold the mutex.
   *
   * The dead holder may have left the list's links half updated (a push, pop or unlink torn between
   * two plain stores), so the list is rebuilt from the pages, not repaired along its links. A page
   * belongs on it when its state is FREE and its FREE_PREV does not say NOT_LISTED: push writes
   * FREE_PREV before it publishes the page and unlink writes NOT_LISTED last, so a page the dead thread
   * was moving lands on one side or the other, and either is sound (it is free, and its mover is
   * dead). Live threads' pages in flight are not listed and stay out: those retired and waiting for the
   * lock to be pushed, those popped and being prepared. A FREE page the dead thread held unlisted is
   * lost until `relistStrayFree()` at a quiescent point. Counters are left alone: they move outside the
   * lock. Safe while other threads run: they cannot take the lock until the release below.
   */
  reapDeadHolder(deadThreadId: number): boolean {
    if (this.lockHolder() !== deadThreadId) return false;
    // Plain reads and writes: the mutex is held (by the dead thread: nobody else can enter), and its
    // acquiring CAS, read by lockHolder's load, ordered the dead thread's writes before ours.
    const bump = Math.min(Atomics.load(this.meta, PoolHeader.BUMP), this.pageCount);
    let head = -1;
    let count = 0;
    for (let p = bump - 1; p >= 0; p--) {
      const base = metaIndex(p, PageMeta.REFCOUNT);
      if (this.meta[base + PageMeta.FREE_PREV] === NOT_LISTED) continue;
      if (Atomics.load(this.meta, base + PageMeta.STATE) !== PageState.FREE) {
        // Listed but in use cannot come from a torn list operation (the state moves outside the
        // lock, after unlink); do not hand it out again, whatever wrote it.
        this.meta[base + PageMeta.FREE_PREV] = NOT_LISTED;
        this.meta[base + PageMeta.FREE_NEXT] = -1;
        continue;
      }
      this.meta[base + PageMeta.FREE_NEXT] = head;
      this.meta[base + PageMeta.FREE_PREV] = -1;
      if (head >= 0) this.meta[metaIndex(head, PageMeta.FREE_PREV)] = p;
      head = p;
      count++;
    }
    this.meta[PoolHeader.FREE_HEAD] = head;
    // Pairs with the unlocked FREE_COUNT hint loads, as in free-list.ts.
    Atomics.store(this.meta, PoolHeader.FREE_COUNT, count);
    Atomics.add(this.meta, PoolHeader.LOCK_REAPED, 1);
    // Publishes the rebuilt list to the next holder (pairs with its acquiring CAS).
    return mutexForceUnlock(this.meta, PoolHeader.LOCK, deadThreadId);
  }

  /**
   * Puts every FREE page below the bump pointer that is not on the free list back on it: pages a dead
   * thread held between taking them off the list and preparing them, or between retiring them and
   * pushing them. Only at a quiescent point (no thread allocates or frees): a live thread's pages in
   * flight look the same. Returns the pages relisted.
   */
  relistStrayFree(): number {
    const bump = Math.min(Atomics.load(this.meta, PoolHeader.BUMP), this.pageCount);
    let n = 0;
    this.lock();
    for (let p = 0; p < bump; p++) {
      if (Atomics.load(this.meta, metaIndex(p, PageMeta.STATE)) !== PageState.FREE) continue;
      if (isListed(this.meta, p)) continue;
      freeListPush(this.meta, p);
      n++;
    }
    this.unlock();
    return n;
  }

  // --- Internals --------------------------------------------------------------------------------

  /** Pops up to `n` pages under one lock trip, then prepares them outside the lock. */
  private takeFromFreeList(out: Int32Array, at: number, n: number): number {
    let got = 0;
    this.lock();
    while (got < n) {
      const page = freeListPop(this.meta);
      if (page < 0) break;
      out[at + got++] = page;
    }
    this.unlock();
    for (let i = at; i < at + got; i++) this.prepare(out[i]!, true);
    return got;
  }

  private takeFromBump(out: Int32Array, at: number, n: number): number {
    const first = this.reserveBump(n, false);
    if (first < 0) return 0;
    const got = Math.min(n, this.pageCount - first);
    for (let i = 0; i < got; i++) {
      out[at + i] = first + i;
      this.prepare(first + i, false);
    }
    return got;
  }

  /**
   * Claims pages [first, first+k) from the bump region and returns first, or -1 when it is empty. With
   * `exact`, k = n or nothing; otherwise k = min(n, what is left). The CAS orders nothing else: bump
   * pages were zeroed at creation, before the pool was shared.
   */
  private reserveBump(n: number, exact: boolean): number {
    let first = Atomics.load(this.meta, PoolHeader.BUMP);
    for (;;) {
      const left = this.pageCount - first;
      if (left <= 0 || (exact && left < n)) return -1;
      const seen = Atomics.compareExchange(this.meta, PoolHeader.BUMP, first, first + Math.min(n, left));
      if (seen === first) return first;
      first = seen;
    }
  }

  /** Physical frame number of page 0 (basePa is granule aligned). */
  private get basePage(): number {
    return this.basePa / this.granule;
  }

  /** Like reserveBump(n, true), with the run aligned to alignRun(n) frames; the padding is freed. */
  private reserveAlignedBump(n: number): number {
    const align = alignRun(n);
    let first = Atomics.load(this.meta, PoolHeader.BUMP);
    for (;;) {
      const pad = (align - ((this.basePage + first) % align)) % align;
      if (this.pageCount - first < pad + n) return -1;
      const seen = Atomics.compareExchange(this.meta, PoolHeader.BUMP, first, first + pad + n);
      if (seen === first) break;
      first = seen;
    }
    const pad = (align - ((this.basePage + first) % align)) % align;
    if (pad > 0) {
      // Never-used pages (state FREE, zero) skipped for alignment: they join the free list as if
      // freed, poisoned in debug mode, without counting as allocations or frees.
      if (this.debug)
        for (let p = first; p < first + pad; p++)
          poisonEntries(this.ptes, p * this.entriesPerPage, this.entriesPerPage);
      this.lock();
      for (let p = first; p < first + pad; p++) freeListPush(this.meta, p);
      this.unlock();
    }
    return first + pad;
  }

  private takeRunFromFreeList(n: number): number {
    this.lock();
    const first = findFreeRun(
      this.meta,
      Atomics.load(this.meta, PoolHeader.BUMP),
      n,
      alignRun(n),
      this.basePage,
    );
    if (first >= 0) for (let p = first; p < first + n; p++) freeListUnlink(this.meta, p);
    this.unlock();
    return first;
  }

  /** Makes a page the allocator just took ready for its new owner (zero, metadata, state TABLE). */
  private prepare(page: number, recycled: boolean): void {
    const start = page * this.wordsPerPage;
    const end = start + this.wordsPerPage;
    if (this.debug) {
      const bad = recycled
        ? findPatternMismatch(this.words, start, end, POISON_LO, POISON_HI)
        : findPatternMismatch(this.words, start, end, 0, 0);
      if (bad >= 0) this.poisonViolation(page, (bad - start) >> 1, recycled);
    }
    if (recycled) this.zeroEntries(page);
    const base = metaIndex(page, PageMeta.REFCOUNT);
    // Plain writes: nobody reads a page's metadata before the page is handed out; the STATE store
    // below (and later the descriptor store that publishes the page) orders them for other threads.
    this.meta[base + PageMeta.REFCOUNT] = 1;
    this.meta[base + PageMeta.LEVEL] = -1;
    this.meta[base + PageMeta.LINK] = -1;
    this.meta[base + PageMeta.AUX] = 0;
    // Pairs with the STATE loads in isLive, allocatedPages and the debug use-after-free checks.
    Atomics.store(this.meta, base + PageMeta.STATE, PageState.TABLE);
  }

  /**
   * Plain fill of the page's descriptors. Filling the 64-bit view is 1.5-5x faster than the 32-bit one
   * on a shared buffer (measured on Node 20), and 0n is a constant, so nothing is allocated.
   */
  private zeroEntries(page: number): void {
    const first = page * this.entriesPerPage;
    this.ptes.fill(0n, first, first + this.entriesPerPage);
  }

  /**
   * First half of a free, before the page goes on the list: marks it FREE, bumps its generation and, in
   * debug mode, poisons it. Returns false for a double free (counted here; the caller throws in debug mode).
   */
  private retire(page: number): boolean {
    const base = metaIndex(page, PageMeta.REFCOUNT);
    // The exchange makes concurrent double frees race-free: exactly one caller sees the old state.
    // Pairs with the STATE loads in isLive: FREE is visible before the generation moves.
    if (Atomics.exchange(this.meta, base + PageMeta.STATE, PageState.FREE) === PageState.FREE) {
      Atomics.add(this.meta, PoolHeader.DOUBLE_FREES, 1);
      return false;
    }
    Atomics.store(this.meta, base + PageMeta.REFCOUNT, 0);
    // Before poisoning: a reader whose Atomics.load saw poison also sees the new generation.
    Atomics.add(this.meta, base + PageMeta.GENERATION, 1);
    if (this.debug) poisonEntries(this.ptes, page * this.entriesPerPage, this.entriesPerPage);
    return true;
  }

  private countAllocs(got: number, wanted: number): void {
    if (got < wanted) Atomics.add(this.meta, PoolHeader.ALLOC_FAILURES, 1);
    if (got === 0) return;
    Atomics.add(this.meta, PoolHeader.ALLOCS, got);
    const now = Atomics.add(this.meta, PoolHeader.ALLOCATED, got) + got;
    let peak = Atomics.load(this.meta, PoolHeader.PEAK);
    while (now > peak) {
      const seen = Atomics.compareExchange(this.meta, PoolHeader.PEAK, peak, now);
      if (seen === peak) break;
      peak = seen;
    }
  }

  /**
   * Called before the pages go back on the list, as countAllocs is called after pages came off it: so
   * ALLOCATED never exceeds the pages really out of the allocator, and PEAK never exceeds pageCount.
   */
  private countFrees(n: number): void {
    Atomics.add(this.meta, PoolHeader.FREES, n);
    Atomics.sub(this.meta, PoolHeader.ALLOCATED, n);
  }

  private lock(): void {
    if (mutexLock(this.meta, PoolHeader.LOCK)) Atomics.add(this.meta, PoolHeader.LOCK_CONTENDED, 1);
  }

  private unlock(): void {
    mutexUnlock(this.meta, PoolHeader.LOCK);
  }

  /** Metadata base index of `page`, or a RangeError naming the operation. */
  private base(page: number, what: string): number {
    this.checkPage(page, what);
    return HEADER_WORDS + page * PAGE_META_STRIDE;
  }

  private checkPage(page: number, what: string): void {
    if (page >>> 0 !== page || page >= this.pageCount) {
      throw new RangeError(`Cannot ${what} page ${page}: not a page of this pool (0..${this.pageCount - 1})`);
    }
  }

  private doubleFree(page: number): never {
    throw new PageMisuseError("double-free", page, `Cannot free page ${page}: it is already free`);
  }

  private assertNotFree(page: number, what: string): void {
    if (Atomics.load(this.meta, metaIndex(page, PageMeta.STATE)) === PageState.FREE) {
      throw new PageMisuseError("use-after-free", page, `Cannot ${what} on page ${page}: the page is free`);
    }
  }

  private refcountUnderflow(page: number, count: number): void {
    Atomics.add(this.meta, PoolHeader.REFCOUNT_UNDERFLOWS, 1);
    if (this.debug) {
      throw new PageMisuseError(
        "refcount-underflow",
        page,
        `Cannot put page ${page}: refcount fell to ${count}`,
      );
    }
  }

  private poisonViolation(page: number, entry: number, recycled: boolean): never {
    Atomics.add(this.meta, PoolHeader.POISON_VIOLATIONS, 1);
    const what = recycled ? "written after it was freed" : "written before it was ever allocated";
    throw new PageMisuseError("write-after-free", page, `Page ${page} was ${what} (entry ${entry} changed)`);
  }
}
