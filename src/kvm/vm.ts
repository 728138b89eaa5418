/**
 * A VM: one stage-2 page table over a shared page pool, its memslots, mmu_lock, an RCU domain for
 * deferred reclaim, and per-vCPU fault handlers that run in worker threads.
 *
 * The host thread creates the Vm (Vm.create) and posts `vm.handle` to each vCPU worker, which
 * calls attachVcpu(handle, id). Host operations (unmap, write-protect, split, teardown) take the
 * write side of mmu_lock and walk exclusively, so they free tables at once; faults take the read
 * side (shared mode) and defer frees through the reclaim strategy.
 */
import { computeGeometry, type Granule } from "../arch/geometry.js";
import { Errno, Stage2Error } from "../common/errno.js";
import { MemCache, PagePool } from "../mem/mod.js";
import { split, unmap, wrprotect } from "../pgtable/mod.js";
import { freeQuiescentSlice } from "../pgtable/ops/unlinked.js";
import { Ctl, Stage2, type Stage2Handle } from "../pgtable/stage2.js";
import { RwLock, type RwLockHandle } from "../sync/mod.js";
import { FaultHandler, type FaultMode } from "./fault.js";
import { Memslots, type MemslotSpec, type MemslotsHandle } from "./memslot.js";
import { BatchedStrategy } from "./reclaim/batched.js";
import {
  attachVmRcu,
  createVmRcu,
  type RcuFlavor,
  type VmRcu,
  type VmRcuHandle,
} from "./reclaim/rcu-glue.js";
import { ReclaimStats, type ReclaimStatsSnapshot } from "./reclaim/stats.js";
import {
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
import { VcpuStats } from "./vcpu-stats.js";

export interface VmOptions {
  granule: Granule;
  iaBits: number;
  paBits?: number;
  /** Table pages in the pool. */
  poolPages: number;
  poolBasePa?: number;
  /** Poison freed pages and check every table a walk enters (use-after-free detection). */
  debug?: boolean;
  mode: FaultMode;
  vcpus: number;
  memslots: MemslotSpec[];
  reclaim?: Partial<ReclaimOptions>;
  rcuFlavor?: RcuFlavor;
  /** Test only: every reclaim callback spins this long (slow-callback injection). */
  slowCallbackUs?: number;
}

export interface VmHandle {
  options: VmOptions;
  reclaim: ReclaimOptions;
  pgt: Stage2Handle;
  memslots: MemslotsHandle;
  lock: RwLockHandle;
  rcu: VmRcuHandle;
  reclaimStats: SharedArrayBuffer;
  vcpuStats: SharedArrayBuffer;
}

export interface DestroyReport {
  tablesFreed: number;
  chunks: number;
  barrierMs: number;
  leakedPages: number[];
  /** The RCU domain over the VM's life, read after the barrier. */
  gracePeriods: number;
  gpMaxMs: number;
  floodEntries: number;
  forcedGracePeriods: number;
}

const DESTROY_CHUNK_PAGES = 256;

export class Vm {
  readonly options: VmOptions;
  readonly reclaimOptions: ReclaimOptions;
  readonly pool: PagePool;
  readonly pgt: Stage2;
  readonly memslots: Memslots;
  readonly lock: RwLock;
  readonly rcu: VmRcu;
  readonly reclaimStats: ReclaimStats;
  readonly vcpuStats: VcpuStats;
  private readonly memcache: MemCache;

  private constructor(parts: {
    options: VmOptions;
    reclaimOptions: ReclaimOptions;
    pool: PagePool;
    pgt: Stage2;
    memslots: Memslots;
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
    this.lock = RwLock.create({ name: "mmu_lock", maxThreads: parts.options.vcpus + 8 });
    this.vcpuStats = new VcpuStats(parts.options.vcpus);
    this.memcache = new MemCache(this.pool, 16);
  }

  /**
   * Creates the page pool, the stage-2 table, the memslots and the RCU domain (whose callback
   * worker gets the reclaim callbacks as a plugin). Throws RangeError for impossible options.
   */
  static async create(options: VmOptions): Promise<Vm> {
    if (!Number.isInteger(options.vcpus) || options.vcpus < 1 || options.vcpus > 64) {
      throw new RangeError(`Cannot create VM: vcpus ${options.vcpus} is not an integer in 1..64`);
    }
    const reclaimOptions = { ...DEFAULT_RECLAIM, ...options.reclaim };
    const geo = computeGeometry(options.granule, options.iaBits, options.paBits);
    const memslots = Memslots.create(options.memslots, geo);
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
    const rcu = await createVmRcu(options.rcuFlavor ?? "mb", {
      pgt: pgt.handle,
      reclaimStats: reclaimStats.handle,
      sliceBudgetPages: reclaimOptions.sliceBudgetPages,
      slowCallbackUs: options.slowCallbackUs ?? 0,
    });
    return new Vm({ options, reclaimOptions, pool, pgt, memslots, reclaimStats, rcu });
  }

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
    };
  }

  reclaimSnapshot(): ReclaimStatsSnapshot {
    return this.reclaimStats.snapshot(this.options.granule);
  }

  /** Host: unmap a range (MMU-notifier invalidation). Write lock, exclusive walk. */
  unmap(ipa: number, size: number): number {
    this.lock.writeLock();
    try {
      return unmap(this.pgt, ipa, size);
    } finally {
      this.lock.writeUnlock();
    }
  }

  /** Host: write-protect a range (dirty-log harvesting). Write lock, exclusive walk. */
  wrprotect(ipa: number, size: number): number {
    this.lock.writeLock();
    try {
      return wrprotect(this.pgt, ipa, size);
    } finally {
      this.lock.writeUnlock();
    }
  }

  /** Host: turn dirty logging on for a memslot: write-protect it, optionally split it eagerly. */
  enableDirtyLogging(slot: number, eagerSplit: boolean): number {
    const s = this.memslots.specs[slot];
    if (!s) throw new RangeError(`No memslot ${slot}`);
    this.lock.writeLock();
    try {
      this.memslots.setLogging(slot, true);
      let ret = wrprotect(this.pgt, s.ipa, s.size);
      if (ret === Errno.OK && eagerSplit) {
        do {
          this.memcache.topup(8);
          ret = split(this.pgt, s.ipa, s.size, this.memcache);
        } while (ret === Errno.NOMEM && this.memcache.count > 0);
      }
      return ret;
    } finally {
      this.lock.writeUnlock();
    }
  }

  /**
   * Teardown: under the write lock detach the tree and free it in bounded chunks (letting a
   * waiting thread in between chunks), then wait for every RCU callback already queued
   * (barrier), so that every deferred page is back, and leak-check the pool.
   * vCPU threads must have drained their own deferred work and memory caches first.
   */
  async destroy(): Promise<DestroyReport> {
    this.memcache.drain();
    const geo = this.pgt.geo;
    this.lock.writeLock();
    const root = this.pgt.rootPage;
    if (root < 0) {
      this.lock.writeUnlock();
      throw new Stage2Error(Errno.INVAL, "Cannot destroy the VM twice");
    }
    Atomics.store(this.pgt.ctl, Ctl.ROOT, -1);
    this.pgt.tlb.flushVmid(this.pgt.vmid);
    let freed = 0;
    let chunks = 0;
    const done = { value: false };
    for (let i = 0; i < geo.pgdPages; i++) {
      done.value = false;
      while (!done.value) {
        freed += freeQuiescentSlice(this.pgt, root + i, geo.startLevel - 1, DESTROY_CHUNK_PAGES, done);
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

/** Environment variable that enables the deliberately broken `unsafe-sync` strategy (tests only). */
export const UNSAFE_RECLAIM_SWITCH = "STAGE2_TEST_UNSAFE_RECLAIM";

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
      // The negative control's deliberate bug: test-only, behind an environment switch that worker
      // threads inherit from the test process.
      if (process.env[UNSAFE_RECLAIM_SWITCH] !== "1") {
        throw new Error(
          `The unsafe-sync reclaim strategy is test-only: set ${UNSAFE_RECLAIM_SWITCH}=1 to use it`,
        );
      }
      return new UnsafeSyncStrategy(name, rcu, stats, opts);
  }
}

/**
 * Builds a vCPU thread's view of the VM. A user strategy's factory must have been imported in this
 * thread first (`loadStrategyFactory(handle.reclaim.strategy)`) and is passed as `strategyFactory`.
 */
export function attachVcpu(
  handle: VmHandle,
  vcpu: number,
  strategyFactory: ReclaimStrategyFactory | null = null,
): VcpuContext {
  const o = handle.options;
  const rcu = attachVmRcu(handle.rcu);
  const stats = new ReclaimStats(handle.reclaimStats);
  const strategy = makeStrategy(handle.reclaim.strategy, rcu.port, stats, handle.reclaim, strategyFactory);
  const shared = o.mode === "shared";
  const pgt = Stage2.attach(handle.pgt, {
    guard: shared ? rcu.guard : undefined,
    reclaim: strategy,
    checkUaf: o.debug ?? false,
  });
  const memslots = Memslots.attach(handle.memslots);
  const lock = RwLock.attach(handle.lock);
  const memcache = new MemCache(pgt.pool, 16);
  const handler = new FaultHandler(
    vcpu,
    pgt,
    memslots,
    lock,
    memcache,
    strategy,
    o.mode,
    new VcpuStats(o.vcpus, handle.vcpuStats),
  );
  handler.onQuiescent = rcu.quiescent;
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
    },
  };
}
