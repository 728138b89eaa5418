/**
 * A stage-2 page table: its geometry, its root, the hooks it calls, and a thread-local view of the
 * shared page pool.
 *
 * One table is shared by many threads. `Stage2.create()` allocates the root (the concatenated
 * start-level tables) in the page pool; `stage2.handle` is posted to workers, which call
 * `Stage2.attach(handle, env)` with their own thread-local hooks (RCU guard, reclaim strategy,
 * TLB model). Each view owns its walk state, so one view must only be used by one thread.
 *
 * Shared control words (Int32Array `ctl`, in its own SharedArrayBuffer):
 *
 *   index  0      1        2       3        4       5         6          7        8      9
 *        +------+--------+-------+--------+-------+---------+----------+--------+------+---------+
 *        | root | breaks | makes | AGAIN  | tables| tables  | unlinked | UAF    | corr-| cmpxchg |
 *        | page |        |       | (lost  | alloc | freed   | subtrees | detec- | upt  | failures|
 *        |      |        |       |  races)|       | (now)   |          | tions  |      |         |
 *        +------+--------+-------+--------+-------+---------+----------+--------+------+---------+
 *   ROOT is written by create (before the handle is posted) and by destroy (-1, under the write
 *   lock); walkers read it once per walk. The rest are statistics. Each view counts into a
 *   thread-local array (a shared counter bumped by every fault would bounce its cache line
 *   between cores) and `flushStats()` adds the deltas with Atomics.add; readers use Atomics.load.
 *   They order nothing.
 */
import { Errno } from "../common/errno.js";
import { lockedMarker, type Pte, PTE_LOCKED } from "../arch/descriptor.js";
import { blockAllowedAt, computeGeometry, type Geometry, type Granule } from "../arch/geometry.js";
import { CountingMaintenance, type CacheMaintenance, type TlbMaintenance } from "../arch/maintenance.js";
import { PagePool, type PagePoolHandle, PageState } from "../mem/mod.js";
import { WalkState } from "./walk.js";

/** Slots of a Stage2's shared control words (`ctl`): ROOT, then statistics (see above). */
export const enum Ctl {
  ROOT = 0,
  BREAKS = 1,
  MAKES = 2,
  AGAIN = 3,
  TABLES_ALLOCATED = 4,
  TABLES_FREED = 5,
  UNLINKED_SUBTREES = 6,
  UAF = 7,
  CORRUPT = 8,
  CAS_FAILURES = 9,
  COUNT = 10,
}

/** Enter/leave the read side for SHARED walks (an RCU read-side section). */
export interface WalkGuard {
  begin(): void;
  end(): void;
}

/**
 * Where unlinked subtrees go (the seed's `free_table`, Linux's `free_unlinked_table`).
 * `page` is the unlinked table, `level` the level of the entry that pointed to it. In an exclusive
 * walk the hook may free at once; in a shared walk another walker may still be reading the subtree,
 * so the pages must outlive a grace period.
 */
export interface ReclaimHook {
  freeUnlinked(pgt: Stage2, page: number, level: number, shared: boolean): void;
}

/** A thread's hooks for its Stage2 view: read-side guard, reclaim, TLB and cache maintenance. */
export interface Stage2Env {
  guard?: WalkGuard;
  reclaim?: ReclaimHook;
  tlb?: TlbMaintenance;
  cmo?: CacheMaintenance;
  /** Check every table page a walk enters against the pool's poison/generation (debug pools). */
  checkUaf?: boolean;
  /** Test only: deliberately broken variants (TestBug bits), for the checkers' mutation tests. */
  bugs?: number;
}

/**
 * Deliberately broken variants, one bit each, selected only by tests (VmOptions.testOnly.bugs)
 * to prove that the checkers catch them. No CLI flag reaches these.
 */
export const enum TestBug {
  /** Break without invalidating the old entry. */
  SKIP_BREAK_TLBI = 1,
  /** A shared walk frees the subtree it unlinked at once, instead of after a grace period. */
  SYNC_FREE_SHARED = 2,
  /** Replace a valid entry by another without breaking it first. */
  NO_BREAK = 4,
  /** Shared walks run outside the RCU read side. */
  NO_RCU = 8,
  /** The walker does not re-read an entry after TABLE_PRE / LEAF before descending. */
  NO_REREAD = 16,
  /** A zapped table entry is invalidated by IPA with a level hint (walk caches survive). */
  HINTED_TABLE_TLBI = 32,
  /** Write-protection (dirty logging) issues no invalidation. */
  WRPROTECT_NO_TLBI = 64,
}

/** The translation regime: granule, IPA and PA sizes, VMID. */
export interface Stage2Options {
  granule: Granule;
  iaBits: number;
  paBits?: number;
  vmid?: number;
}

/** Everything another thread needs to attach to the table; post it to workers as is. */
export interface Stage2Handle {
  pool: PagePoolHandle;
  options: Required<Stage2Options>;
  ctl: SharedArrayBuffer;
  maint: SharedArrayBuffer;
}

const NO_GUARD: WalkGuard = { begin() {}, end() {} };

/** Totals of the shared statistics (after every thread flushed its local counters). */
export interface Stage2Stats {
  breaks: number;
  makes: number;
  again: number;
  tablesAllocated: number;
  tablesFreed: number;
  unlinkedSubtrees: number;
  uafDetected: number;
  corrupt: number;
  casFailures: number;
}

/**
 * A stage-2 page table: geometry, root, hooks. `Stage2.create(pool, options, env)` builds
 * the root; `Stage2.attach(handle, env)` gives another thread its view, with its own hooks.
 */
export class Stage2 {
  readonly pool: PagePool;
  readonly geo: Geometry;
  readonly options: Required<Stage2Options>;
  readonly ptes: BigInt64Array;
  /** The same memory as 32-bit halves (low half of entry e at 2e): see walk.ts loadPte. */
  readonly words: Int32Array;
  readonly entriesPerPage: number;
  /** 1 / entriesPerPage (a power of two: see levelInv). */
  private readonly eppInv: number;
  /** 2^paBits: output addresses must stay below it. */
  readonly paLimit: number;
  /** Bytes mapped by one entry at each level 0..3. */
  readonly levelSizes: readonly number[];
  /**
   * 1 / levelSizes[level]: a power of two, so `x * levelInv[l]` is exactly `x / levelSizes[l]`
   * for the integers below 2^53 the walker divides, at the cost of a multiplication.
   */
  readonly levelInv: readonly number[];
  /** Whether a leaf (block or page) may sit at each level 0..3. */
  readonly leafAllowed: readonly boolean[];
  /** The smallest block this geometry allows above the last level (a map smaller never needs one). */
  readonly minBlockSize: number;
  /**
   * Whether every page of the pool lies below 4 GiB, so that every table descriptor pointing into
   * it has a zero upper half: the walker then reads table entries as their low 32-bit half alone
   * (walk.ts loadTableLo).
   */
  readonly tablesLow: boolean;
  readonly vmid: number;
  readonly ctl: Int32Array;
  readonly maint: CountingMaintenance;
  tlb: TlbMaintenance;
  cmo: CacheMaintenance;
  guard: WalkGuard;
  reclaim: ReclaimHook | null;
  checkUaf: boolean;
  /** TestBug bits: zero except in the checkers' mutation tests. */
  bugs: number;
  readonly walkState = new WalkState();
  readonly subtreeWalkState = new WalkState();
  /**
   * (page, generation) of the tables the current walk is inside, for use-after-free checks (debug
   * pools); read-only for debug race hooks at walk.table-entered (torture's RCU age check).
   */
  readonly uafPages: number[] = [];
  readonly uafGens: number[] = [];
  /**
   * Descriptor writes (and compare-and-swap attempts) made through this view's pte-update.ts
   * helpers: thread-local, only ever compared with itself (walk.ts skips a re-read when a visitor
   * wrote nothing).
   */
  pteWrites = 0;
  /** First use-after-free or corruption seen by this view, for error reports. */
  firstFault: string | null = null;
  /** The locked marker this view's breaks write: `lockedMarker(vcpu)` in a vCPU's view (setLockOwner). */
  lockMarker: Pte = PTE_LOCKED;
  /**
   * Its low 32-bit half, as a number: the marker's upper half is zero (its bits are 10 and 12-19),
   * so a break of an empty entry writes just this half (pte-update.ts, tryLockEmpty).
   */
  lockMarkerLo: number = Number(PTE_LOCKED);
  /**
   * Whether the vCPU that wrote locked marker `pte` is dead (its make will never come): set by the
   * VM in every view; a freeze waiting on a locked entry asks it (ops/unlinked.ts).
   */
  lockOwnerDead: ((pte: Pte) => boolean) | null = null;

  private constructor(
    pool: PagePool,
    options: Required<Stage2Options>,
    ctl: Int32Array,
    maint: CountingMaintenance,
    env: Stage2Env,
  ) {
    this.pool = pool;
    this.options = options;
    this.geo = computeGeometry(options.granule, options.iaBits, options.paBits);
    if (pool.granule !== this.geo.granule) {
      throw new RangeError(
        `Page pool granule ${pool.granule} does not match the stage-2 granule ${this.geo.granule}`,
      );
    }
    this.ptes = pool.ptes;
    this.words = pool.words;
    this.entriesPerPage = pool.entriesPerPage;
    this.paLimit = 2 ** this.geo.paBits;
    this.levelSizes = this.geo.shifts.map((s) => 2 ** s);
    this.levelInv = this.geo.shifts.map((s) => 2 ** -s);
    this.eppInv = 1 / pool.entriesPerPage;
    this.leafAllowed = [0, 1, 2, 3].map((l) => blockAllowedAt(this.geo, l));
    this.minBlockSize = Math.min(
      ...[0, 1, 2].filter((l) => this.leafAllowed[l]).map((l) => this.levelSizes[l] as number),
    );
    this.tablesLow = pool.pageToPa(pool.pageCount) <= 2 ** 32;
    this.vmid = options.vmid;
    this.ctl = ctl;
    this.maint = maint;
    this.tlb = env.tlb ?? maint;
    this.cmo = env.cmo ?? maint;
    this.guard = env.guard ?? NO_GUARD;
    this.reclaim = env.reclaim ?? null;
    this.checkUaf = env.checkUaf ?? false;
    this.bugs = env.bugs ?? 0;
  }

  /** Allocates the start-level tables in `pool` and returns the first view. Throws on ENOMEM. */
  static create(pool: PagePool, options: Stage2Options, env: Stage2Env = {}): Stage2 {
    const full: Required<Stage2Options> = { paBits: 48, vmid: 1, ...options };
    const ctl = new Int32Array(new SharedArrayBuffer(Ctl.COUNT * 4));
    const pgt = new Stage2(pool, full, ctl, new CountingMaintenance(), env);
    const root = pool.allocContiguous(pgt.geo.pgdPages);
    if (root < 0)
      throw new RangeError(
        `Cannot allocate ${pgt.geo.pgdPages} start-level table page(s): page pool exhausted`,
      );
    for (let i = 0; i < pgt.geo.pgdPages; i++) pool.setLevel(root + i, pgt.geo.startLevel);
    pgt.count(Ctl.TABLES_ALLOCATED, pgt.geo.pgdPages);
    // Published to other threads by postMessage of the handle (which happens after this store).
    Atomics.store(ctl, Ctl.ROOT, root);
    return pgt;
  }

  static attach(handle: Stage2Handle, env: Stage2Env = {}, pool?: PagePool): Stage2 {
    return new Stage2(
      pool ?? PagePool.attach(handle.pool),
      handle.options,
      new Int32Array(handle.ctl),
      CountingMaintenance.attach(handle.maint),
      env,
    );
  }

  get handle(): Stage2Handle {
    return {
      pool: this.pool.handle,
      options: this.options,
      ctl: this.ctl.buffer as SharedArrayBuffer,
      maint: this.maint.handle,
    };
  }

  /** First page of the start-level tables, or -1 once destroyed. */
  get rootPage(): number {
    return Atomics.load(this.ctl, Ctl.ROOT);
  }

  /** Physical address of the start-level table (VTTBR_EL2.BADDR), or -1 once destroyed. */
  get rootPa(): number {
    const root = this.rootPage;
    return root < 0 ? -1 : this.pool.pageToPa(root);
  }

  /** Breaks by this view write the locked marker of vCPU `vcpu` (-1: of no vCPU). */
  setLockOwner(vcpu: number): void {
    const marker = lockedMarker(vcpu);
    if (marker >> 32n !== 0n) throw new Error(`locked marker 0x${marker.toString(16)} has upper bits`);
    this.lockMarker = marker;
    this.lockMarkerLo = Number(marker) | 0;
  }

  /** Page index holding descriptor `ptep`. */
  pageOf(ptep: number): number {
    return Math.floor(ptep * this.eppInv);
  }

  /** Thread-local statistics not yet added to the shared counters. */
  private readonly pending = new Int32Array(Ctl.COUNT);

  count(slot: Ctl, n = 1): void {
    (this.pending[slot] as number) += n;
  }

  /** Adds this view's counts to the shared counters (call at phase ends and before reading). */
  flushStats(): void {
    this.maint.flush();
    for (let i = 1; i < Ctl.COUNT; i++) {
      const n = this.pending[i] as number;
      if (n !== 0) {
        Atomics.add(this.ctl, i, n);
        this.pending[i] = 0;
      }
    }
  }

  /** Shared statistics, after flushing this view's own counts. */
  stats(): Stage2Stats {
    this.flushStats();
    const c = this.ctl;
    return {
      breaks: Atomics.load(c, Ctl.BREAKS),
      makes: Atomics.load(c, Ctl.MAKES),
      again: Atomics.load(c, Ctl.AGAIN),
      tablesAllocated: Atomics.load(c, Ctl.TABLES_ALLOCATED),
      tablesFreed: Atomics.load(c, Ctl.TABLES_FREED),
      unlinkedSubtrees: Atomics.load(c, Ctl.UNLINKED_SUBTREES),
      uafDetected: Atomics.load(c, Ctl.UAF),
      corrupt: Atomics.load(c, Ctl.CORRUPT),
      casFailures: Atomics.load(c, Ctl.CAS_FAILURES),
    };
  }

  /** A table descriptor points outside the pool: count it and stop the walk. */
  corrupt(ptep: number, pte: Pte, level: number): number {
    this.count(Ctl.CORRUPT);
    this.firstFault ??= `corrupt table descriptor 0x${BigInt.asUintN(64, pte).toString(16)} at level ${level} (entry ${ptep})`;
    return Errno.INVAL;
  }

  noteTableEnter(page: number, level: number): void {
    const gen = this.pool.generation(page);
    this.uafPages.push(page);
    this.uafGens.push(gen);
    if (this.pool.state(page) === PageState.FREE)
      this.useAfterFree(page, level, "entered a freed table page");
  }

  noteTableLeave(page: number): void {
    this.uafPages.pop();
    const gen = this.uafGens.pop() as number;
    if (!this.pool.isLive(page, gen))
      this.useAfterFree(page, this.pool.level(page), "table page freed while a walker was inside");
  }

  private useAfterFree(page: number, level: number, what: string): void {
    this.count(Ctl.UAF);
    this.firstFault ??= `use-after-free: ${what} (page ${page}, PA 0x${this.pool.pageToPa(page).toString(16)}, level ${level})`;
  }
}
