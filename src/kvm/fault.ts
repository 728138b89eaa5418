/**
 * The stage-2 fault handler of one vCPU, in the spirit of KVM's user_mem_abort().
 *
 *   0. Mark the fault in flight (FAULT_SEQ odd), so memslot changes can wait for it, and read
 *      MMU_SEQ (mmu_invalidate_seq) before anything the fault decides from.
 *   1. Find the memslot (none: an MMIO exit) and decide the mapping size from its backing
 *      (pages only while dirty logging).
 *   2. Top up the vCPU's memory cache *before* taking any lock: nothing is allocated under the
 *      lock or inside the RCU read-side section.
 *   3. Take mmu_lock for read (shared mode, parallel faults) or for write (exclusive baseline),
 *      and retry (AGAIN) if MMU_SEQ moved or an invalidation is in progress: the slot read in
 *      step 1 may be stale (dirty logging turned on: a writable block would escape the log;
 *      slot deleted or moved, range being unmapped: the mapping would outlive its memory).
 *   4. Translation fault: map a page or block. Permission fault: relax permissions when the
 *      faulting leaf has the mapping size, else map (a write to a block while logging maps a
 *      page inside it). Access-flag fault: mkyoung.
 *   5. Drop the lock, mark the page dirty if logging, leave the in-flight state, then let the
 *      reclaim strategy do deferred work that may wait for a grace period (bounded and batched
 *      strategies): never while holding the lock or the read side.
 *
 * Returns a status: OK, AGAIN (the vCPU re-enters the guest and faults again if still needed),
 * NOMEM, NOENT (no memslot: MMIO), INVAL (write to a read-only slot).
 */
import { Prot } from "../arch/descriptor.js";
import { Errno } from "../common/errno.js";
import type { MemCache } from "../mem/mod.js";
import type { VcpuMmu } from "../mmu/mod.js";
import { map, mkyoung, relaxPerms } from "../pgtable/mod.js";
import type { Stage2 } from "../pgtable/stage2.js";
import { WalkFlag } from "../pgtable/walk.js";
import { RacePoint, racePoint } from "../common/race-points.js";
import { backingMapSize, type MemslotTable, mappingSize, SlotFlag, SlotRef } from "./memslot.js";
import { mmuSeqRead, mmuSeqRetry } from "./mmu-seq.js";
import type { ReclaimStrategy } from "./reclaim/strategy.js";
import { VStat, type VcpuStats } from "./vcpu-stats.js";

/** The kind of stage-2 fault, from ESR_EL2.DFSC/IFSC: no translation, a permission, or a clear access flag. */
export const enum FaultKind {
  TRANSLATION = 0,
  PERMISSION = 1,
  ACCESS_FLAG = 2,
}

/** How faults lock: `shared` (read mmu_lock, parallel walks under RCU) or `exclusive` (write mmu_lock, the baseline). */
export type FaultMode = "shared" | "exclusive";

/** The part of mmu_lock the fault path uses. */
export interface MmuLockOps {
  readLock(): void;
  readUnlock(): void;
  writeLock(): void;
  writeUnlock(): void;
}

/**
 * One vCPU's fault handler (user_mem_abort). Built by attachVcpu in the vCPU's thread; used by that
 * thread only. Allocates nothing per fault: the memslot copy, memory cache and walkers are reused.
 */
export class FaultHandler {
  readonly vcpu: number;
  readonly pgt: Stage2;
  readonly memslots: MemslotTable;
  /** This vCPU's copy of the memslot of the current fault (reused: no allocation per fault). */
  private readonly slot = new SlotRef();
  /** Largest mapping of each backing code in this geometry. */
  private readonly backingMax: number[];
  readonly lock: MmuLockOps;
  readonly memcache: MemCache;
  readonly reclaim: ReclaimStrategy;
  readonly shared: boolean;
  private readonly stats: Int32Array;
  private readonly base: number;
  private readonly walkFlags: number;
  private readonly topupPages: number;
  /** False only in the negative control (VmOptions.testOnly.noSeqCheck). */
  private readonly checkSeq: boolean;
  /** This vCPU's MMU model (guest accesses go through it), or null with the model off. */
  mmu: VcpuMmu | null = null;
  /** Called after every fault, outside the lock and read side (qsbr reports a quiescent state). */
  onQuiescent: () => void = () => {};

  constructor(
    vcpu: number,
    pgt: Stage2,
    memslots: MemslotTable,
    lock: MmuLockOps,
    memcache: MemCache,
    reclaim: ReclaimStrategy,
    mode: FaultMode,
    stats: VcpuStats,
    checkSeq = true,
  ) {
    this.checkSeq = checkSeq;
    this.vcpu = vcpu;
    this.pgt = pgt;
    this.memslots = memslots;
    this.lock = lock;
    this.memcache = memcache;
    this.reclaim = reclaim;
    this.shared = mode === "shared";
    this.stats = stats.words;
    this.base = vcpu * VStat.STRIDE;
    this.walkFlags = this.shared ? WalkFlag.SHARED | WalkFlag.HANDLE_FAULT : WalkFlag.HANDLE_FAULT;
    // One table per level below the start level, as kvm_mmu_cache_min_pages().
    this.topupPages = pgt.geo.levels - 1;
    this.backingMax = [0, 1, 2, 3].map((c) => backingMapSize(c, pgt.geo));
  }

  private bump(stat: VStat, n = 1): void {
    (this.stats[this.base + stat] as number) += n;
  }

  /**
   * Handles one stage-2 fault at `ipa`. `leafLevel` is the level of the leaf that faulted
   * (permission and access-flag faults), or -1. `exec`: an instruction fetch faulted, so the
   * mapping is made (or relaxed to be) executable, as KVM does for an exec fault.
   */
  handle(ipa: number, kind: FaultKind, write: boolean, leafLevel = -1, exec = false): number {
    this.bump(VStat.FAULTS);
    this.memslots.faultEdge(this.vcpu);
    let ret: number;
    try {
      ret = this.userMemAbort(ipa, kind, write, leafLevel, exec);
    } finally {
      this.memslots.faultEdge(this.vcpu);
    }
    this.epilogue();
    if (ret === Errno.AGAIN) this.bump(VStat.AGAIN);
    else if (ret === Errno.NOMEM) this.bump(VStat.NOMEM);
    return ret;
  }

  private userMemAbort(
    ipa: number,
    kind: FaultKind,
    write: boolean,
    leafLevel: number,
    exec: boolean,
  ): number {
    const seq = mmuSeqRead(this.memslots.words);
    const slot = this.slot;
    if (this.memslots.lookup(ipa, slot) < 0) {
      this.bump(VStat.MMIO);
      return Errno.NOENT;
    }
    const readOnly = (slot.flags & SlotFlag.READ_ONLY) !== 0;
    if (write && readOnly) return Errno.INVAL;
    if (kind === FaultKind.ACCESS_FLAG) return this.accessFlag(ipa);
    const logging = (slot.flags & SlotFlag.LOGGING) !== 0;
    const size = mappingSize(slot, ipa, this.pgt.geo, this.backingMax);
    racePoint(RacePoint.FAULT_SLOT_READ);
    const faultGranule = leafLevel >= 0 ? (this.pgt.levelSizes[leafLevel] as number) : 0;
    const relax = kind === FaultKind.PERMISSION && size === faultGranule;
    if (!relax && this.memcache.topup(this.topupPages) !== Errno.OK) return Errno.NOMEM;
    const prot = (readOnly || (logging && !write) ? Prot.R : Prot.RW) | (exec ? Prot.X : 0);
    let ret: number;
    // try/finally: an exception inside the walk (a debug pool's misuse report, say) must not leave
    // mmu_lock held, or the host's next write lock would wait forever.
    this.lockFault();
    try {
      if (this.stale(seq)) ret = Errno.AGAIN;
      else if (relax) {
        ret = relaxPerms(this.pgt, ipa, prot, this.walkFlags);
        if (ret === Errno.OK) this.bump(VStat.RELAXED);
      } else {
        const start = Math.floor(ipa / size) * size;
        const phys = slot.hostPa + (start - slot.ipa);
        ret = map(this.pgt, start, size, phys, prot, this.memcache, this.walkFlags, logging);
        if (ret === Errno.OK)
          this.bump(size === this.pgt.geo.granule ? VStat.PAGES_MAPPED : VStat.BLOCKS_MAPPED);
      }
    } finally {
      this.unlockFault();
    }
    this.bump(kind === FaultKind.PERMISSION ? VStat.PERMISSION : VStat.TRANSLATION);
    // Still in flight: a change that frees this slot's bitmap range waits for this store.
    if (ret === Errno.OK && write && logging) {
      this.memslots.markDirty(slot, ipa);
      this.bump(VStat.DIRTIED);
    }
    return ret;
  }

  /** Under mmu_lock: whether an invalidation or memslot change raced with this fault. */
  private stale(seq: number): boolean {
    if (!this.checkSeq || !mmuSeqRetry(this.memslots.words, seq)) return false;
    this.bump(VStat.SEQ_RETRY);
    return true;
  }

  /**
   * Maps a block of `size` at `ipa` over whatever is there (a collapse: a populated table is
   * unlinked and handed to the reclaim strategy), on the fault path's locking and checks.
   */
  collapse(ipa: number, size: number): number {
    this.memslots.faultEdge(this.vcpu);
    let ret: number;
    try {
      ret = this.collapseInFlight(ipa, size);
    } finally {
      this.memslots.faultEdge(this.vcpu);
    }
    this.epilogue();
    if (ret === Errno.OK) this.bump(VStat.BLOCKS_MAPPED);
    else if (ret === Errno.AGAIN) this.bump(VStat.AGAIN);
    return ret;
  }

  private collapseInFlight(ipa: number, size: number): number {
    const seq = mmuSeqRead(this.memslots.words);
    const slot = this.slot;
    if (this.memslots.lookup(ipa, slot) < 0) return Errno.NOENT;
    const start = Math.floor(ipa / size) * size;
    if (start < slot.ipa || start + size > slot.ipa + slot.size) return Errno.RANGE;
    if (this.memcache.topup(this.topupPages) !== Errno.OK) return Errno.NOMEM;
    const phys = slot.hostPa + (start - slot.ipa);
    this.lockFault();
    try {
      if (this.stale(seq)) return Errno.AGAIN;
      return map(this.pgt, start, size, phys, Prot.RW, this.memcache, this.walkFlags);
    } finally {
      this.unlockFault();
    }
  }

  private accessFlag(ipa: number): number {
    let pte: bigint;
    this.lockFault();
    try {
      pte = mkyoung(this.pgt, ipa, this.walkFlags);
    } finally {
      this.unlockFault();
    }
    this.bump(VStat.ACCESS_FLAG);
    return pte === 0n ? Errno.AGAIN : Errno.OK;
  }

  private lockFault(): void {
    if (this.shared) this.lock.readLock();
    else this.lock.writeLock();
  }

  private unlockFault(): void {
    if (this.shared) this.lock.readUnlock();
    else this.lock.writeUnlock();
  }

  /** After the fault has left mmu_lock and the in-flight state: deferred reclaim, quiescent state. */
  private epilogue(): void {
    if (this.reclaim.hasEpilogueWork()) {
      this.bump(VStat.EPILOGUES);
      this.reclaim.afterUnlock(this.pgt);
    }
    this.onQuiescent();
  }
}
