/**
 * A VM: one stage-2 page table over a shared page pool, its memslot table, mmu_lock, an RCU domain
 * for deferred reclaim, and per-vCPU fault handlers that run in worker threads.
 *
 * The host thread creates the Vm (Vm.create) and posts `vm.handle` to each vCPU worker, which
 * calls attachVcpu(handle, id); other host threads call attachHost(handle). Host operations
 * (memslot changes, unmap, dirty logging, access tracking, teardown) take the write side of
 * mmu_lock and walk exclusively, so they free tables at once; faults take the read side (shared
 * mode) and defer frees through the reclaim strategy.
 */
import { threadId } from "node:worker_threads";
import type { TraceBufferHandle } from "../common/trace.js";
import { computeGeometry, type Granule } from "../arch/geometry.js";
import { lockOwner } from "../arch/descriptor.js";
import { Errno, Stage2Error } from "../common/errno.js";
import { raiseInliningBudget } from "../common/v8-budget.js";
import { MemCache, PagePool } from "../mem/mod.js";
import { Mmu, type MmuHandle, MmuTlbi, VcpuMmu } from "../mmu/mod.js";
import { freeQuiescentSlice } from "../pgtable/ops/unlinked.js";
import { setRoot } from "../pgtable/pte-update.js";
import { Stage2, type Stage2Handle } from "../pgtable/stage2.js";
import { RwLock, type RwLockHandle } from "../sync/mod.js";
import { deathReport, repairLockedEntries, unreachablePages, type VcpuDeathReport } from "./death.js";
import { DeathWatch } from "./death-watch.js";
import { FaultHandler, type FaultMode } from "./fault.js";
import { type DirtyLogEnableResult, type DirtyLogOptions, type MemslotInfo, VmHost } from "./host.js";
import { type MemslotSpec, MemslotTable, type MemslotTableHandle } from "./memslot.js";
import { BatchedStrategy } from "./reclaim/batched.js";
import {
  attachVmRcu,
  createVmRcu,
  type RcuFlavor,
  type VmRcu,
  type VmRcuExtra,
  type VmRcuHandle,
} from "./reclaim/rcu-glue.js";
import { ReclaimStats, type ReclaimStatsSnapshot } from "./reclaim/stats.js";
import {
  BaseReclaimStrategy,
  BoundedStrategy,
  DEFAULT_RECLAIM,
  PerSubtreeStrategy,
  PerTableStrategy,
  type ReclaimOptions,
  type ReclaimRcu,
  type ReclaimStrategy,
  type ReclaimStrategyFactory,
  type StrategyName,
  type StrategySpec,
  UnsafeSyncStrategy,
} from "./reclaim/strategy.js";
import { checkStrategy } from "./reclaim/user-strategy.js";
import { Rec, VcpuMemCache, VcpuRecords, VcpuState } from "./vcpu-record.js";
import { VcpuStats } from "./vcpu-stats.js";

/**
 * Switches that break the VM on purpose, for negative controls in tests. No CLI exposes them;
 * they travel in the handle, so every thread of the VM sees the same ones.
 */
export interface VmTestOnly {
  /** Allow the `unsafe-sync` reclaim strategy (frees inside shared walks: use-after-free). */
  unsafeReclaim?: boolean;
  /** Memslot changes do not wait for the faults in flight. */
  noFaultWait?: boolean;
  /** Faults do not re-check MMU_SEQ under mmu_lock. */
  noSeqCheck?: boolean;
  /** Deliberately broken page-table variants (TestBug bits) for the MMU checkers' mutation tests. */
  bugs?: number;
  /** The death watch claims and reports a dead vCPU but recovers nothing of it (death.ts). */
  noDeathRecovery?: boolean;
}

/** How to build a VM (`Vm.create`). */
export interface VmOptions {
  /** Translation granule in bytes (4K, 16K, 64K). */
  granule: Granule;
  /** IPA size in bits (VTCR_EL2.T0SZ). */
  iaBits: number;
  /** PA size in bits (default 48). */
  paBits?: number;
  /** Table pages in the pool. */
  poolPages: number;
  poolBasePa?: number;
  /** Poison freed pages and check every table a walk enters (use-after-free detection). */
  debug?: boolean;
  /** Faults under the read lock in parallel ("shared") or under the write lock ("exclusive"). */
  mode: FaultMode;
  /** vCPU threads that will attach (1..64). */
  vcpus: number;
  /** Memslots created with the VM, with ids 0, 1, ... in this order (default none). */
  memslots?: MemslotSpec[];
  /** Capacity of the memslot table (default: 32, or more if `memslots` needs it). */
  maxMemslots?: number;
  /** Capacity of the dirty bitmap shared by all logging slots, in pages (default: 2^18, or all initial slots' pages if more). */
  dirtyBitmapPages?: number;
  reclaim?: Partial<ReclaimOptions>;
  rcuFlavor?: RcuFlavor;
  /**
   * More for the VM's RCU domain: plugins loaded in its callback worker after the reclaim one, and
   * engine tuning (a controlled run takes the clock out with `sim/controlled-rcu.ts`).
   */
  rcuExtra?: VmRcuExtra;
  /** Test only: every reclaim callback spins this long (slow-callback injection). */
  slowCallbackUs?: number;
  /** Trace rings (`--trace`): the RCU callback worker records its grace periods and callbacks in `slot`. */
  trace?: { handle: TraceBufferHandle; slot: number } | null;
  /**
   * Model the vCPUs' MMUs (src/mmu): guest accesses go through per-vCPU TLBs and a lockless
   * hardware walker, and every invalidation is broadcast and completed. Off: guest accesses are
   * software walks under mmu_lock (the old path, for comparison). Default off in the library.
   */
  mmu?: boolean;
  /** Run the MMU checkers on every guest access (default: `debug`). Needs `mmu`. */
  mmuCheck?: boolean;
  /** Test only: deliberate bugs for negative controls. */
  testOnly?: VmTestOnly;
}

/** Structured-cloneable description of a VM, posted to vCPU and host threads. */
export interface VmHandle {
  options: VmOptions;
  reclaim: ReclaimOptions;
  pgt: Stage2Handle;
  memslots: MemslotTableHandle;
  lock: RwLockHandle;
  rcu: VmRcuHandle;
  reclaimStats: SharedArrayBuffer;
  vcpuStats: SharedArrayBuffer;
  /** The vCPUs' records: what each holds, for the death watch (vcpu-record.ts). */
  records: SharedArrayBuffer;
  /** The MMU model's shared memory, or null with `mmu` off. */
  mmu: MmuHandle | null;
}

/** What teardown found (`Vm.destroy`). */
export interface DestroyReport {
  tablesFreed: number;
  chunks: number;
  /** Time spent freeing the tree (every chunk, yields to waiting threads excluded), ms. */
  freeMs: number;
  /** The longest chunk (one hold of the write lock without a resched point), ms. */
  maxChunkMs: number;
  barrierMs: number;
  leakedPages: number[];
  /** The RCU domain over the VM's life, read after the barrier. */
  gracePeriods: number;
  gpMaxMs: number;
  floodEntries: number;
  forcedGracePeriods: number;
}

const DESTROY_CHUNK_PAGES = 256;

/**
 * The VM as the thread that created it sees it: every host operation (through `host`, also
 * offered as methods here), the statistics, and teardown.
 */
export class Vm {
  readonly options: VmOptions;
  readonly reclaimOptions: ReclaimOptions;
  readonly pool: PagePool;
  readonly pgt: Stage2;
  readonly memslots: MemslotTable;
  readonly lock: RwLock;
  readonly rcu: VmRcu;
  readonly reclaimStats: ReclaimStats;
  readonly vcpuStats: VcpuStats;
  /** What each vCPU holds, and what its death left (vcpu-record.ts). */
  readonly records: VcpuRecords;
  /** This thread's host view (memslots, dirty logging, unmaps, access tracking). */
  readonly host: VmHost;
  /** The MMU model (null with `mmu` off). */
  readonly mmu: Mmu | null;
  private readonly memcache: MemCache;

  private constructor(parts: {
    options: VmOptions;
    reclaimOptions: ReclaimOptions;
    pool: PagePool;
    pgt: Stage2;
    memslots: MemslotTable;
    reclaimStats: ReclaimStats;
    rcu: VmRcu;
  }) {
    this.options = parts.options;
    this.reclaimOptions = parts.reclaimOptions;
    this.pool = parts.pool;
    this.pgt = parts.pgt;
    this.memslots = parts.memslots;
    this.reclaimStats = parts.reclaimStats;
    this.rcu = parts.rcu;
    // Shared mode: faults take mmu_lock for read on every fault, host writes are rare; with the
    // reader bias no two vCPUs write a common line to get in (sync/rwlock.ts).
    this.lock = RwLock.create({
      name: "mmu_lock",
      maxThreads: parts.options.vcpus + 8,
      readerBias: parts.options.mode === "shared",
    });
    this.vcpuStats = new VcpuStats(parts.options.vcpus);
    this.records = new VcpuRecords(parts.options.vcpus);
    installRepair(this.lock, this.pgt, this.records);
    this.memcache = new MemCache(this.pool, 16);
    this.pgt.bugs = parts.options.testOnly?.bugs ?? 0;
    this.mmu = parts.options.mmu
      ? Mmu.create({
          vcpus: parts.options.vcpus,
          check: parts.options.mmuCheck ?? parts.options.debug ?? false,
        })
      : null;
    if (this.mmu) this.pgt.tlb = new MmuTlbi(this.mmu, this.pgt, this.pgt.maint, -1);
    this.host = new VmHost(this.memslots, this.pgt, this.lock, parts.options.testOnly);
  }

  /**
   * Creates the page pool, the stage-2 table, the memslots and the RCU domain (whose callback
   * worker gets the reclaim callbacks as a plugin). Throws RangeError for impossible options.
   * Raises V8's inlining budget for the process first (common/v8-budget.ts), before any vCPU
   * worker compiles the fault path.
   */
  static async create(options: VmOptions): Promise<Vm> {
    raiseInliningBudget();
    if (!Number.isInteger(options.vcpus) || options.vcpus < 1 || options.vcpus > 64) {
      throw new RangeError(`Cannot create VM: vcpus ${options.vcpus} is not an integer in 1..64`);
    }
    const reclaimOptions = { ...DEFAULT_RECLAIM, ...options.reclaim };
    const geo = computeGeometry(options.granule, options.iaBits, options.paBits);
    const initial = options.memslots ?? [];
    let initialPages = 0;
    for (const m of initial) initialPages += Math.ceil(m.size / geo.granule);
    const memslots = MemslotTable.create(
      options.maxMemslots ?? Math.max(32, initial.length),
      options.vcpus,
      options.dirtyBitmapPages ?? Math.max(2 ** 18, initialPages),
      geo.granule,
    );
    const debug = options.debug ?? false;
    const pool = PagePool.create({
      granule: options.granule,
      pages: options.poolPages,
      basePa: options.poolBasePa,
      debug,
    });
    const pgt = Stage2.create(pool, {
      granule: options.granule,
      iaBits: options.iaBits,
      paBits: options.paBits ?? 48,
    });
    const reclaimStats = new ReclaimStats();
    const rcu = await createVmRcu(
      options.rcuFlavor ?? "mb",
      {
        pgt: pgt.handle,
        reclaimStats: reclaimStats.handle,
        sliceBudgetPages: reclaimOptions.sliceBudgetPages,
        slowCallbackUs: options.slowCallbackUs ?? 0,
        trace: options.trace ?? null,
      },
      options.vcpus,
      options.rcuExtra,
    );
    const vm = new Vm({ options, reclaimOptions, pool, pgt, memslots, reclaimStats, rcu });
    try {
      for (const m of initial) vm.createMemslot(m);
    } catch (e) {
      await rcu.close();
      throw e;
    }
    return vm;
  }

  /** The handle to post to vCPU threads (attachVcpu) and host threads (attachHost). */
  get handle(): VmHandle {
    return {
      options: this.options,
      reclaim: this.reclaimOptions,
      pgt: this.pgt.handle,
      memslots: this.memslots.handle,
      lock: this.lock.handle,
      rcu: this.rcu.handle,
      reclaimStats: this.reclaimStats.handle,
      vcpuStats: this.vcpuStats.handle,
      records: this.records.handle,
      mmu: this.mmu?.handle ?? null,
    };
  }

  /**
   * Starts a death watch for this VM's vCPUs (death-watch.ts): give each vCPU worker
   * `watch.portFor(v)`, and `await watch.close()` before `destroy()`.
   */
  watchDeaths(): DeathWatch {
    return new DeathWatch(this.handle);
  }

  /** The vCPUs reaped so far, from shared memory (any thread may have reaped them). */
  deaths(): VcpuDeathReport[] {
    const out: VcpuDeathReport[] = [];
    for (let v = 0; v < this.options.vcpus; v++)
      if (this.records.state(v) === VcpuState.REAPED) out.push(deathReport(this.records, v));
    return out;
  }

  /**
   * After vCPU deaths, before `destroy()`: frees the pages dead vCPUs held in their hands and
   * listed nowhere (a split's new table, a subtree their break unlinked, a cache batch not yet
   * counted), found as allocated pages that no table and no list reaches. Waits for every queued
   * RCU callback first. Call it with the VM quiescent: every vCPU closed or reaped, no other host
   * thread attached. With no death reaped it frees nothing (an unreachable page is then a leak for
   * `destroy()` to report). Returns the pages freed. Throws Error while a vCPU is still attached.
   */
  recoverLostPages(): number[] {
    for (let v = 0; v < this.options.vcpus; v++) {
      const st = this.records.state(v);
      if (st === VcpuState.ALIVE || st === VcpuState.DEAD)
        throw new Error(
          `Cannot recover lost pages: vCPU ${v} is still attached (close it or let it be reaped)`,
        );
    }
    if (this.records.header(Rec.DEATHS) === 0) return [];
    this.rcu.barrier();
    this.memcache.drain();
    this.host.memcache.drain();
    this.lock.writeLock();
    let lost: number[];
    try {
      // FREE pages a dead thread left off the free list (taken off and not yet prepared, or
      // retired and not yet pushed): the same quiescence tells them from a live thread's.
      this.pool.relistStrayFree();
      lost = unreachablePages(this.pgt);
    } finally {
      this.lock.writeUnlock();
    }
    for (const p of lost) this.pool.freePage(p);
    Atomics.add(this.records.words, Rec.LOST_RECOVERED, lost.length);
    return lost;
  }

  /** The reclaim statistics so far. */
  reclaimSnapshot(): ReclaimStatsSnapshot {
    return this.reclaimStats.snapshot(this.options.granule);
  }

  /** See VmHost.createMemslot. */
  createMemslot(spec: MemslotSpec): number {
    return this.host.createMemslot(spec);
  }

  /** See VmHost.deleteMemslot. */
  deleteMemslot(id: number): void {
    this.host.deleteMemslot(id);
  }

  /** See VmHost.moveMemslot. */
  moveMemslot(id: number, newIpa: number): void {
    this.host.moveMemslot(id, newIpa);
  }

  /** See VmHost.memslot. */
  memslot(id: number): MemslotInfo | undefined {
    return this.host.memslot(id);
  }

  /** Host: an MMU-notifier unmap (invalidate start + end) under the write lock. */
  unmap(ipa: number, size: number): void {
    this.host.unmap(ipa, size);
  }

  /** See VmHost.invalidateRangeStart. */
  invalidateRangeStart(ipa: number, size: number): void {
    this.host.invalidateRangeStart(ipa, size);
  }

  /** See VmHost.invalidateRangeEnd. */
  invalidateRangeEnd(ipa: number, size: number): void {
    this.host.invalidateRangeEnd(ipa, size);
  }

  /** Host: write-protect a range under the write lock (with its TLB invalidation). */
  wrprotect(ipa: number, size: number): number {
    return this.host.wrprotect(ipa, size);
  }

  /** See VmHost.enableDirtyLogging. */
  enableDirtyLogging(id: number, opts: DirtyLogOptions = {}): DirtyLogEnableResult {
    return this.host.enableDirtyLogging(id, opts);
  }

  /** See VmHost.disableDirtyLogging. */
  disableDirtyLogging(id: number): void {
    this.host.disableDirtyLogging(id);
  }

  /** See VmHost.getDirtyLog. */
  getDirtyLog(id: number): Uint32Array {
    return this.host.getDirtyLog(id);
  }

  /** See VmHost.clearDirtyLog. */
  clearDirtyLog(id: number, firstPage: number, numPages: number, mask?: Uint32Array): number {
    return this.host.clearDirtyLog(id, firstPage, numPages, mask);
  }

  /** See VmHost.testClearYoung. */
  testClearYoung(ipa: number, size: number): number {
    return this.host.testClearYoung(ipa, size);
  }

  /** See VmHost.countIdle. */
  countIdle(ipa: number, size: number): number {
    return this.host.countIdle(ipa, size);
  }

  /**
   * Teardown: under the write lock detach the tree and free it in bounded chunks (letting a
   * waiting thread in between chunks), then wait for every RCU callback already queued
   * (barrier), so that every deferred page is back, and leak-check the pool.
   * vCPU threads must have drained their own deferred work and memory caches first.
   */
  async destroy(): Promise<DestroyReport> {
    this.memcache.drain();
    this.host.memcache.drain();
    const geo = this.pgt.geo;
    this.lock.writeLock();
    const root = this.pgt.rootPage;
    if (root < 0) {
      this.lock.writeUnlock();
      throw new Stage2Error(Errno.INVAL, "Cannot destroy the VM twice");
    }
    setRoot(this.pgt, -1);
    this.pgt.tlb.flushVmid(this.pgt.vmid);
    let freed = 0;
    let chunks = 0;
    let freeMs = 0;
    let maxChunkMs = 0;
    const done = { value: false };
    for (let i = 0; i < geo.pgdPages; i++) {
      done.value = false;
      while (!done.value) {
        const c0 = performance.now();
        freed += freeQuiescentSlice(this.pgt, root + i, geo.startLevel - 1, DESTROY_CHUNK_PAGES, done);
        const ms = performance.now() - c0;
        freeMs += ms;
        if (ms > maxChunkMs) maxChunkMs = ms;
        chunks++;
        if (this.lock.needsResched()) this.lock.yieldWrite();
      }
    }
    this.lock.writeUnlock();
    const t0 = performance.now();
    this.rcu.barrier();
    const barrierMs = performance.now() - t0;
    this.pgt.flushStats();
    const leakedPages = this.pool.allocatedPages();
    const rcu = this.rcu.stats();
    await this.rcu.close();
    return {
      tablesFreed: freed,
      chunks,
      freeMs,
      maxChunkMs,
      barrierMs,
      leakedPages,
      gracePeriods: rcu.gracePeriods,
      gpMaxMs: rcu.gpMaxMs,
      floodEntries: rcu.floodEntries,
      forcedGracePeriods: rcu.forcedGracePeriods,
    };
  }
}

/** Everything a vCPU thread uses, built from the VM handle in that thread. */
export interface VcpuContext {
  readonly vcpu: number;
  readonly handler: FaultHandler;
  readonly pgt: Stage2;
  readonly strategy: ReclaimStrategy;
  /** Around waits for the host: qsbr threads go offline so grace periods are not held up. */
  idle(): void;
  resume(): void;
  /** Drain deferred work and caches, unregister from RCU. Call before the thread exits. */
  close(): void;
}

function makeStrategy(
  spec: StrategySpec,
  rcu: ReclaimRcu,
  stats: ReclaimStats,
  opts: ReclaimOptions,
  factory: ReclaimStrategyFactory | null,
): ReclaimStrategy {
  if (typeof spec !== "string") {
    if (factory === null) {
      throw new TypeError(`Reclaim strategy "${spec.name}": import its module first (loadStrategyFactory)`);
    }
    return checkStrategy(spec, factory({ name: spec.name, rcu, stats, options: opts }));
  }
  const name: StrategyName = spec;
  switch (name) {
    case "per-table":
      return new PerTableStrategy(name, rcu, stats, opts);
    case "per-subtree":
      return new PerSubtreeStrategy(name, rcu, stats, opts);
    case "bounded":
      return new BoundedStrategy(name, rcu, stats, opts);
    case "batched":
      return new BatchedStrategy(name, rcu, stats, opts);
    case "unsafe-sync":
      // The negative control's deliberate bug: attachVcpu allows it only with testOnly.unsafeReclaim.
      return new UnsafeSyncStrategy(name, rcu, stats, opts);
  }
}

/**
 * Builds vCPU `vcpu`'s context in the calling thread (a vCPU worker) from the VM's handle: RCU
 * registration, reclaim strategy, table, memslot and lock views, memory cache, fault handler.
 * Each vCPU id must be attached by one thread only; call `close()` before that thread exits.
 * A user strategy's factory must have been imported in this thread first
 * (`loadStrategyFactory(handle.reclaim.strategy)`) and is passed as `strategyFactory`.
 * Throws RangeError for an id outside 0..vcpus-1, and Error for the test-only strategy without
 * `testOnly.unsafeReclaim`.
 */
export function attachVcpu(
  handle: VmHandle,
  vcpu: number,
  strategyFactory: ReclaimStrategyFactory | null = null,
): VcpuContext {
  const o = handle.options;
  if (!Number.isInteger(vcpu) || vcpu < 0 || vcpu >= o.vcpus)
    throw new RangeError(`Cannot attach vCPU ${vcpu}: ids are 0..${o.vcpus - 1}`);
  if (handle.reclaim.strategy === "unsafe-sync" && o.testOnly?.unsafeReclaim !== true)
    throw new Error("The unsafe-sync reclaim strategy is test-only: set VmOptions.testOnly.unsafeReclaim");
  const rcu = attachVmRcu(handle.rcu);
  const stats = new ReclaimStats(handle.reclaimStats);
  const strategy = makeStrategy(handle.reclaim.strategy, rcu.port, stats, handle.reclaim, strategyFactory);
  const shared = o.mode === "shared";
  const pgt = Stage2.attach(handle.pgt, {
    guard: shared ? rcu.guard : undefined,
    reclaim: strategy,
    checkUaf: o.debug ?? false,
    bugs: o.testOnly?.bugs ?? 0,
  });
  const memslots = MemslotTable.attach(handle.memslots);
  const lock = RwLock.attach(handle.lock);
  const records = new VcpuRecords(o.vcpus, undefined, handle.records);
  installRepair(lock, pgt, records);
  // Breaks by this vCPU write a marker that names it (a freeze can then tell when it died).
  pgt.setLockOwner(vcpu);
  const memcache = new VcpuMemCache(pgt.pool, records, vcpu);
  if (strategy instanceof BaseReclaimStrategy) strategy.publishTo(records.words, records.base(vcpu));
  records.markAlive(vcpu, threadId, lock.slot);
  const handler = new FaultHandler(
    vcpu,
    pgt,
    memslots,
    lock,
    memcache,
    strategy,
    o.mode,
    new VcpuStats(o.vcpus, handle.vcpuStats),
    o.testOnly?.noSeqCheck !== true,
  );
  handler.onQuiescent = rcu.quiescent;
  if (handle.mmu) {
    const mmu = Mmu.attach(handle.mmu);
    pgt.tlb = new MmuTlbi(mmu, pgt, pgt.maint, vcpu);
    handler.mmu = new VcpuMmu(mmu, pgt, vcpu);
  }
  return {
    vcpu,
    handler,
    pgt,
    strategy,
    idle: rcu.idle,
    resume: rcu.resume,
    close() {
      strategy.drain(pgt);
      memcache.drain();
      pgt.flushStats();
      rcu.close();
      records.markClosed(vcpu);
    },
  };
}

/** Every view of the VM's mmu_lock repairs what a dead vCPU left locked (death.ts). */
function installRepair(lock: RwLock, pgt: Stage2, records: VcpuRecords): void {
  lock.onOwnerDead = () => {
    repairLockedEntries(pgt, records);
  };
  // A locked entry whose breaking vCPU died gets no make: a freeze stops waiting for it.
  pgt.lockOwnerDead = (pte) => {
    const v = lockOwner(pte);
    if (v < 0 || v >= records.vcpus) return false;
    const st = records.state(v);
    return st === VcpuState.DEAD || st === VcpuState.REAPED;
  };
}

/**
 * A host view of the VM in the calling thread (any thread other than the vCPUs': an MMU-notifier
 * thread, a dirty-log harvester): memslot changes, unmaps, dirty logging, access tracking.
 * Host views walk exclusively under the write lock and never need RCU.
 */
export function attachHost(handle: VmHandle): VmHost {
  const pgt = Stage2.attach(handle.pgt, {
    checkUaf: handle.options.debug ?? false,
    bugs: handle.options.testOnly?.bugs ?? 0,
  });
  if (handle.mmu) pgt.tlb = new MmuTlbi(Mmu.attach(handle.mmu), pgt, pgt.maint, -1);
  const lock = RwLock.attach(handle.lock);
  installRepair(lock, pgt, new VcpuRecords(handle.options.vcpus, undefined, handle.records));
  return new VmHost(MemslotTable.attach(handle.memslots), pgt, lock, handle.options.testOnly);
}
