/**
 * Recovering from a vCPU worker that died mid-fault (terminated, or killed by an uncaught error),
 * so that the VM goes on with nothing lost.
 *
 * A vCPU can die holding:
 *   - the page pool's mutex (terminated inside an allocation or a free): taken back first, with
 *     `PagePool.reapDeadHolder()`, which rebuilds the free list from the pages' states, since every
 *     later allocation and free (the host's, the other vCPUs', this reaper's own below) waits on it;
 *   - its place in mmu_lock (read hold, or waiting): taken back with `RwLock.reapHolder()`, so the
 *     next writer is not blocked forever;
 *   - its RCU reader slot: released with the domain's `reapThread()`, so grace periods go on;
 *   - a fault in flight (FAULT_SEQ odd): closed, so memslot changes stop waiting for it;
 *   - entries left locked between break and make: the break already invalidated the TLBs for the
 *     old entry and dropped its reference, and nobody else may make a locked entry, so the next
 *     writer (under the write lock, no shared walker inside) zaps each locked entry reachable from
 *     the root to 0. The guest faults the address in again. This is the robust-lock repair
 *     (`RwLock.onOwnerDead`): the reaper sets OWNER_DEAD before it releases the dead hold;
 *   - its memory cache: the pages listed in its record go back to the pool;
 *   - its deferred reclaim (the epilogue list, the batched strategy's arrays): every subtree not
 *     freed yet is queued as a FREE_SUBTREE RCU callback (run after a grace period that began after
 *     the death), and the array pages themselves are freed at once (no walker reads them).
 *
 * What a death can lose for good: pages in the dead thread's hands between two notes (the new
 * table of a split, the subtree a table-to-block break unlinked, a memory-cache batch not yet
 * counted). They are unreachable and listed nowhere; `recoverLostPages()` finds and frees them
 * once the VM is quiescent (every vCPU closed or reaped), before teardown.
 *
 * Who reaps: the death watch (death-worker.ts), a thread of its own that holds the other end of a
 * MessagePort each vCPU worker holds. `reapVcpu()` never waits; `finishReap()` reports the death
 * once a writer has repaired, and the watch polls it with `tryWriteLock()`, because a blocking
 * writeLock() there could wait for the hold of another dead vCPU whose reap is queued behind. Node closes that port when the worker ends however it ends,
 * and the watch's event loop sees it even when the VM's creator is blocked in a synchronous wait
 * (a writeLock() behind the dead reader, an RCU synchronize()).
 */
import { decodeOa, pteIsCounted, pteIsLocked, pteIsTable } from "../arch/descriptor.js";
import { Errno } from "../common/errno.js";
import { PageState } from "../mem/mod.js";
import { zapLockedPte } from "../pgtable/pte-update.js";
import type { Stage2 } from "../pgtable/stage2.js";
import { type VisitCtx, type Visitor, type Walker, type Visit, walk, WalkFlag } from "../pgtable/walk.js";
import { Hold, type RwLock } from "../sync/mod.js";
import type { MemslotTable } from "./memslot.js";
import { BATCH_ENTRY_WORDS, BATCH_HEADER_WORDS } from "./reclaim/batched.js";
import { RStat, type ReclaimStats } from "./reclaim/stats.js";
import { freeQuiescent, ReclaimKind, type ReclaimRcu } from "./reclaim/strategy.js";
import { Rec, type VcpuRecords, VcpuState } from "./vcpu-record.js";

/** What the death of one vCPU left, and what the reaper did about it. */
export interface VcpuDeathReport {
  vcpu: number;
  /** mmu_lock at death: "read", "write", "waiting to read", "waiting to write" or "none". */
  lock: string;
  /** The fault had not left (FAULT_SEQ odd): the worker was terminated inside it. */
  inFault: boolean;
  /** RCU reader slots released (0 when the worker released its own on an uncaught error). */
  rcuSlots: number;
  /** Memory-cache pages given back to the pool. */
  memcachePages: number;
  /** Deferred subtrees queued for a grace period (epilogue list and batched arrays). */
  subtreesQueued: number;
  /** Batched-strategy array pages (and the spare) freed. */
  arrayPages: number;
  /** Entries left locked between break and make that the repair zapped (with any other death repaired at once). */
  lockedEntries: number;
  /** IPA of the first of them, or null. */
  firstLockedIpa: number | null;
  /** It died holding the page pool's mutex, which the reaper took back (free list rebuilt). */
  poolLock: boolean;
}

/** Everything a reaper needs, as views in its own thread. */
export interface ReaperEnv {
  readonly records: VcpuRecords;
  readonly lock: RwLock;
  readonly pgt: Stage2;
  readonly memslots: MemslotTable;
  readonly stats: ReclaimStats;
  /** The reaper's own registered RCU port (call, synchronize). */
  readonly rcu: ReclaimRcu;
  /** Releases a dead thread's RCU slots (the domain's reapThread). */
  reapRcuThread(threadId: number): number;
  /** Reports the death through the RCU domain's stall detector (its stall handler hears of it). */
  reportDeath(threadId: number, slotsReleased: number): void;
  /**
   * With the MMU model: sets a dead vCPU's access state back to IDLE, and the state of every vCPU
   * whose ring it was draining as a TLBI poster (Mmu.releaseDeadVcpu), so that TLB invalidations
   * stop waiting for its acknowledgement and no vCPU is locked out of the guest. Null without the
   * model.
   */
  readonly releaseMmu: ((vcpu: number) => number) | null;
  /** Test only (VmTestOnly.noDeathRecovery): claim and report the death, recover nothing. */
  readonly disabled: boolean;
}

const HOLD_NAMES: [number, string][] = [
  [Hold.ACTIVE, "write"],
  // A reader in through the reader bias (FAST) or counted in STATE (R): the same read hold.
  [Hold.R | Hold.FAST, "read"],
  [Hold.OWNED | Hold.WAITING, "waiting to write"],
  [Hold.RW, "waiting to read"],
];

function holdName(held: number): string {
  for (const [bits, name] of HOLD_NAMES) if ((held & bits) !== 0) return name;
  return "none";
}

/**
 * Reaps vCPU `v`, whose worker is dead (never call it for a live one: it takes back what the
 * vCPU is using): everything but the repair of its locked entries, which needs the write lock and
 * is left to the next writer (OWNER_DEAD). Never waits, so one thread can reap several deaths
 * whose holds block each other. Returns false when there is nothing to reap: the vCPU closed
 * cleanly, never attached, or another reaper claimed the death first. Then call `finishReap()`
 * until it returns a report.
 */
export function reapVcpu(env: ReaperEnv, v: number): boolean {
  const r = env.records;
  const w = r.words;
  const b = r.base(v);
  // Pairs with markAlive's store: TID and LOCK_SLOT below are the dead thread's.
  if (Atomics.compareExchange(w, b + Rec.STATE, VcpuState.ALIVE, VcpuState.DEAD) !== VcpuState.ALIVE)
    return false;
  if (env.disabled) return true;
  try {
    // Killed inside a guest access: TLBI posters drain its ring for it from now on; killed while
    // draining another vCPU's ring: that vCPU may enter again. CASes that cannot wait, done
    // first: a host that saw the death claimed may already be waiting for it.
    env.releaseMmu?.(v);
    // Then the pool lock: everything below that frees pages, and every other thread's allocation,
    // waits on it.
    if (env.pgt.pool.reapDeadHolder(r.get(v, Rec.TID))) Atomics.store(w, b + Rec.R_POOL_LOCK, 1);
    Atomics.store(w, b + Rec.NEEDS_REPAIR, 1);
    // Before the hold goes: whoever writes next sees OWNER_DEAD (an exception may already have
    // unwound the hold while an entry stayed locked, so this does not depend on what it held).
    env.lock.markOwnerDead();
    Atomics.store(w, b + Rec.R_HELD, env.lock.reapHolder(r.get(v, Rec.LOCK_SLOT), false));
    Atomics.store(w, b + Rec.R_IN_FAULT, env.memslots.abandonFault(v) ? 1 : 0);
    const slots = env.reapRcuThread(r.get(v, Rec.TID));
    Atomics.store(w, b + Rec.R_RCU_SLOTS, slots);
    env.reportDeath(r.get(v, Rec.TID), slots);
    Atomics.store(w, b + Rec.R_MC_PAGES, giveBackMemcache(env, v));
    requeueDeferred(env, v);
  } catch (e) {
    // Corrupt memory, say: the death stays reported and counted, never awaited for ever.
    Atomics.store(w, b + Rec.NEEDS_REPAIR, 0);
    settle(r, v);
    throw e;
  }
  return true;
}

/**
 * After `reapVcpu()`: once the repair has run (by any writer; this tries the write lock without
 * waiting, and its view's hook repairs), marks the vCPU REAPED and returns its report; null while
 * the lock is busy or the vCPU is not awaiting a repair (call again later while `state` is DEAD).
 */
export function finishReap(env: ReaperEnv, v: number): VcpuDeathReport | null {
  const r = env.records;
  if (r.get(v, Rec.STATE) !== VcpuState.DEAD) return null;
  if (r.get(v, Rec.NEEDS_REPAIR) !== 0) {
    if (!env.lock.tryWriteLock()) return null;
    try {
      // Our hook may have run inside tryWriteLock(); if another writer's repair cleared
      // OWNER_DEAD just before this death was marked, repair here (its scan may have been early).
      if (r.get(v, Rec.NEEDS_REPAIR) !== 0) repairLockedEntries(env.pgt, r);
    } finally {
      env.lock.writeUnlock();
    }
  }
  settle(r, v);
  return deathReport(r, v);
}

/** A reap that threw: the death stays counted and REAPED (awaited by nobody for ever). */
export function settleAfterError(env: ReaperEnv, v: number): void {
  if (env.records.get(v, Rec.STATE) === VcpuState.DEAD) settle(env.records, v);
}

function settle(r: VcpuRecords, v: number): void {
  Atomics.store(r.words, r.base(v) + Rec.STATE, VcpuState.REAPED);
  Atomics.add(r.words, Rec.DEATHS, 1);
}

/** The report of a reaped vCPU, read from its record (any thread). */
export function deathReport(r: VcpuRecords, v: number): VcpuDeathReport {
  const locked = r.get(v, Rec.R_LOCKED);
  return {
    vcpu: v,
    lock: holdName(r.get(v, Rec.R_HELD)),
    inFault: r.get(v, Rec.R_IN_FAULT) !== 0,
    rcuSlots: r.get(v, Rec.R_RCU_SLOTS),
    memcachePages: r.get(v, Rec.R_MC_PAGES),
    subtreesQueued: r.get(v, Rec.R_SUBTREES),
    arrayPages: r.get(v, Rec.R_ARRAYS),
    lockedEntries: locked,
    firstLockedIpa:
      locked > 0
        ? (r.get(v, Rec.R_LOCKED_IPA_HI) >>> 0) * 2 ** 32 + (r.get(v, Rec.R_LOCKED_IPA_LO) >>> 0)
        : null,
    poolLock: r.get(v, Rec.R_POOL_LOCK) !== 0,
  };
}

function giveBackMemcache(env: ReaperEnv, v: number): number {
  const r = env.records;
  const at = r.base(v);
  const n = Math.min(Math.max(r.get(v, Rec.MC_COUNT), 0), r.mcCapacity);
  Atomics.store(r.words, at + Rec.MC_COUNT, 0);
  env.pgt.pool.freeBatch(r.words.subarray(at + Rec.STRIDE, at + Rec.STRIDE + n), n);
  return n;
}

/** Queues every subtree the dead vCPU deferred to itself, and frees its array pages. */
function requeueDeferred(env: ReaperEnv, v: number): void {
  const r = env.records;
  const pool = env.pgt.pool;
  let subtrees = 0;
  let arrays = 0;
  for (let page = r.get(v, Rec.EPI_HEAD); page >= 0; ) {
    const next = pool.link(page);
    const aux = pool.aux(page);
    queueSubtree(env, page, Math.floor(aux / 0x10000), aux % 0x10000);
    subtrees++;
    page = next;
  }
  const sealed: number[] = [];
  for (let a = r.get(v, Rec.BATCH_SEALED); a >= 0; a = pool.link(a)) sealed.push(a);
  const current = r.get(v, Rec.BATCH_CURRENT);
  // Sealing links the array before it clears `current`: a death in between lists it twice.
  if (current >= 0 && !sealed.includes(current)) sealed.push(current);
  for (const a of sealed) {
    subtrees += requeueArray(env, a);
    pool.freePage(a);
    arrays++;
  }
  const spare = r.get(v, Rec.BATCH_SPARE);
  if (spare >= 0 && !sealed.includes(spare)) {
    pool.freePage(spare);
    arrays++;
  }
  const b = r.base(v);
  for (const f of [Rec.EPI_HEAD, Rec.BATCH_CURRENT, Rec.BATCH_SPARE, Rec.BATCH_SEALED])
    Atomics.store(r.words, b + f, -1);
  Atomics.store(r.words, b + Rec.R_SUBTREES, subtrees);
  Atomics.store(r.words, b + Rec.R_ARRAYS, arrays);
}

/** The entries of one batched array not freed yet (batched.ts layout). Returns how many were queued. */
function requeueArray(env: ReaperEnv, array: number): number {
  const pool = env.pgt.pool;
  const words = pool.words;
  const w = (array * pool.granule) / 4;
  const n = words[w] as number;
  let queued = 0;
  for (let i = words[w + 2] as number; i < n; i++) {
    const e = w + BATCH_HEADER_WORDS + i * BATCH_ENTRY_WORDS;
    const root = words[e] as number;
    // A root freed just before the death (its entry not yet passed) is gone, or someone else's now.
    if (pool.generation(root) !== words[e + 3] || pool.state(root) === PageState.FREE) continue;
    queueSubtree(env, root, words[e + 1] as number, words[e + 2] as number);
    queued++;
  }
  return queued;
}

/** As BaseReclaimStrategy.queue(): one FREE_SUBTREE callback, or on NOMEM wait and free here. */
function queueSubtree(env: ReaperEnv, page: number, level: number, estimate: number): void {
  if (env.rcu.call(ReclaimKind.FREE_SUBTREE, page, level, estimate) === Errno.OK) {
    env.stats.add(RStat.CALLBACKS_QUEUED);
    env.stats.addPending(RStat.PENDING_CALLBACKS, 1);
    return;
  }
  env.stats.add(RStat.CALL_NOMEM);
  env.rcu.synchronize();
  env.stats.add(RStat.SYNC_FALLBACKS);
  env.stats.add(RStat.PAGES_RECLAIMED, freeQuiescent(env.pgt, page, level));
  env.stats.add(RStat.PENDING_PAGES, -estimate);
}

// ---- the repair under the write lock -------------------------------------------------------------

class ZapLockedVisitor implements Visitor {
  found = 0;
  firstIpa = -1;
  visit(pgt: Stage2, ctx: VisitCtx, _visit: Visit): number {
    if (!pteIsLocked(ctx.old)) return Errno.OK;
    // Exclusive (write lock held): no walker can be between break and make, so this entry's owner
    // is dead. Where it died decides what it left: before its break's invalidation (a stale
    // translation may be cached: zapLockedPte invalidates the range), before its break dropped
    // the old entry's reference, or after its make took the new one (the page's count is one too
    // high either way: recountTree fixes it). The locked marker itself is neither valid nor counted.
    zapLockedPte(pgt, ctx.ptep, ctx.addr, ctx.level);
    if (this.found++ === 0) {
      const size = pgt.levelSizes[ctx.level] as number;
      this.firstIpa = Math.floor(ctx.addr / size) * size;
    }
    return Errno.OK;
  }
}

/**
 * Sets every reachable table page's reference count to what the audit expects, 1 + its counted
 * entries. Exact under the write lock: counts change only under mmu_lock, so the only walkers that
 * can have left one off are dead ones. Besides the locked entries above, a walker that died
 * between taking a reference and publishing the entry it was for (an install over an empty entry
 * takes the reference before its compare-and-swap, so the count never lags a visible entry)
 * leaves a count one too high with nothing locked. Returns the pages corrected.
 */
function recountTree(pgt: Stage2): number {
  const root = pgt.rootPage;
  let fixed = 0;
  if (root >= 0)
    for (let i = 0; i < pgt.geo.pgdPages; i++) fixed += recountPage(pgt, root + i, pgt.geo.startLevel);
  return fixed;
}

function recountPage(pgt: Stage2, page: number, level: number): number {
  const base = page * pgt.entriesPerPage;
  let counted = 0;
  let fixed = 0;
  for (let i = 0; i < pgt.entriesPerPage; i++) {
    const pte = Atomics.load(pgt.ptes, base + i);
    if (pte === 0n) continue;
    if (pteIsCounted(pte)) counted++;
    if (pteIsTable(pte, level)) {
      const child = pgt.pool.paToPage(decodeOa(pte, pgt.geo.granule));
      if (child >= 0) fixed += recountPage(pgt, child, level + 1);
    }
  }
  const delta = 1 + counted - pgt.pool.refcount(page);
  for (let d = delta; d > 0; d--) pgt.pool.getPage(page);
  for (let d = delta; d < 0; d++) pgt.pool.putPage(page);
  return fixed + (delta === 0 ? 0 : 1);
}

const zapVisitor = new ZapLockedVisitor();
const zapWalker: Walker = { visitor: zapVisitor, arg: null, flags: WalkFlag.LEAF };

/**
 * The OWNER_DEAD repair (install it as `RwLock.onOwnerDead` on every view of the VM's mmu_lock):
 * under the write lock, zaps every locked entry reachable from the root, sets every reachable
 * table page's reference count back to 1 + its counted entries, and notes the count of zapped
 * entries in the records of the vCPUs whose deaths await a repair, whose open table updates it
 * then closes for the MMU model's checkers (`TlbMaintenance.abandonUpdates`). Returns the
 * entries zapped.
 */
export function repairLockedEntries(pgt: Stage2, records: VcpuRecords): number {
  zapVisitor.found = 0;
  zapVisitor.firstIpa = -1;
  if (pgt.rootPage >= 0) walk(pgt, 0, pgt.geo.ipaSize, zapWalker);
  recountTree(pgt);
  const found = zapVisitor.found;
  const w = records.words;
  Atomics.add(w, Rec.REPAIRS, 1);
  Atomics.add(w, Rec.LOCKED_REPAIRED, found);
  for (let v = 0; v < records.vcpus; v++) {
    const b = records.base(v);
    if (Atomics.exchange(w, b + Rec.NEEDS_REPAIR, 0) !== 1) continue;
    // What the dead vCPU left locked is zapped and invalidated (the walk above waited for each
    // TLBI): its own updates, begun and never ended, are over.
    pgt.tlb.abandonUpdates(v);
    Atomics.store(w, b + Rec.R_LOCKED, found);
    if (found > 0) {
      Atomics.store(w, b + Rec.R_LOCKED_IPA_LO, (zapVisitor.firstIpa % 2 ** 32) | 0);
      Atomics.store(w, b + Rec.R_LOCKED_IPA_HI, Math.floor(zapVisitor.firstIpa / 2 ** 32));
    }
  }
  return found;
}

// ---- the last resort, at a quiescent point --------------------------------------------------------

class ReachableVisitor implements Visitor {
  marks: Uint8Array = new Uint8Array(0);
  visit(pgt: Stage2, ctx: VisitCtx, _visit: Visit): number {
    if (pteIsTable(ctx.old, ctx.level)) {
      const child = pgt.pool.paToPage(decodeOa(ctx.old, pgt.geo.granule));
      if (child >= 0) this.marks[child] = 1;
    }
    return Errno.OK;
  }
}

const reachVisitor = new ReachableVisitor();
const reachWalker: Walker = { visitor: reachVisitor, arg: null, flags: WalkFlag.TABLE_PRE };

/**
 * Allocated pages that nothing reaches: not a table of the tree, and not listed anywhere. Call it
 * holding the write lock, with every vCPU closed or reaped, every RCU callback run (barrier) and
 * every host memory cache drained; otherwise pages in use elsewhere are listed too. A pure query:
 * `Vm.recoverLostPages()` first puts back on the free list the FREE pages a dead thread left off it.
 */
export function unreachablePages(pgt: Stage2): number[] {
  const pool = pgt.pool;
  reachVisitor.marks = new Uint8Array(pool.pageCount);
  const root = pgt.rootPage;
  if (root >= 0) {
    for (let i = 0; i < pgt.geo.pgdPages; i++) reachVisitor.marks[root + i] = 1;
    walk(pgt, 0, pgt.geo.ipaSize, reachWalker);
  }
  const out = pool.allocatedPages().filter((p) => reachVisitor.marks[p] !== 1);
  reachVisitor.marks = new Uint8Array(0);
  return out;
}
