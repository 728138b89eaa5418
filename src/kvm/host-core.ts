/**
 * What every host operation shares: the thread's views (memslot table, table, lock, memory cache),
 * SLOTS_LOCK, the publish protocol of a memslot change, and input checks. Used by host.ts and
 * dirty-log.ts only; users go through VmHost.
 *
 * A memslot change (`publish`) closes the stale-slot window twice, as Linux does:
 *   1. it writes the slot inside GEN (the seqlock) and waits for the faults already in flight
 *      (`waitForFaults`, synchronize_srcu in kvm_swap_active_memslots);
 *   2. it bumps MMU_SEQ under the write mmu_lock, so a fault that read the slot before the change
 *      and takes mmu_lock after it retries (mmu_invalidate_seq / mmu_invalidate_retry).
 */
import type { Geometry } from "../arch/geometry.js";
import { Errno, Stage2Error } from "../common/errno.js";
import { MemCache } from "../mem/mod.js";
import { mutexLock, mutexUnlock } from "../mem/spin-mutex.js";
import { unmap, wrprotect } from "../pgtable/mod.js";
import { type Stage2, TestBug } from "../pgtable/stage2.js";
import type { RwLock } from "../sync/mod.js";
import { backingMapSize, type MemslotTable, SlotField, SlotFlag, SlotRef, SlotWord } from "./memslot.js";
import { mmuSeqBumpSlots } from "./mmu-seq.js";

/** Test-only switches that disable parts of the dirty-page race fix (never exposed by a CLI). */
export interface HostTestOnly {
  /** Memslot changes do not wait for faults in flight. */
  noFaultWait?: boolean;
}

/** Shared state and helpers of one thread's host view. */
export class HostCore {
  readonly slots: MemslotTable;
  readonly pgt: Stage2;
  readonly lock: RwLock;
  readonly geo: Geometry;
  /** Tables for eager splitting; drained after each split. */
  readonly memcache: MemCache;
  private readonly testOnly: HostTestOnly;
  private readonly ref = new SlotRef();

  constructor(slots: MemslotTable, pgt: Stage2, lock: RwLock, testOnly: HostTestOnly = {}) {
    this.slots = slots;
    this.pgt = pgt;
    this.lock = lock;
    this.geo = pgt.geo;
    this.testOnly = testOnly;
    this.memcache = new MemCache(pgt.pool, 64);
  }

  /**
   * Publishes slot `id` anew (GEN), waits for faults in flight, then under the write lock bumps
   * MMU_SEQ and runs `underLock` (unmap, write-protect). Hold SLOTS_LOCK.
   */
  publish(
    id: number,
    ipa: number,
    size: number,
    hostPa: number,
    flags: number,
    bitmap: number,
    words: number,
    underLock?: () => void,
  ): void {
    this.slots.beginChange();
    this.slots.write(id, ipa, size, hostPa, flags, bitmap, words);
    this.slots.endChange();
    if (!this.testOnly.noFaultWait) this.slots.waitForFaults();
    this.lock.writeLock();
    try {
      mmuSeqBumpSlots(this.slots.words);
      underLock?.();
    } finally {
      this.lock.writeUnlock();
    }
  }

  /** Unmaps [ipa, ipa+size); hold the write lock. Throws Stage2Error if the walk fails. */
  unmapRange(ipa: number, size: number): void {
    const ret = unmap(this.pgt, ipa, size);
    if (ret !== Errno.OK)
      throw new Stage2Error(ret, `Cannot unmap [0x${ipa.toString(16)}, +0x${size.toString(16)})`);
  }

  /** Write-protects [ipa, ipa+size) then invalidates its TLB entries; hold the write lock. */
  wrprotectRange(ipa: number, size: number): number {
    this.protectBegin();
    const ret = wrprotect(this.pgt, ipa, size);
    // As kvm_mmu_wp_memory_region: the walk changes no TLB itself; one range invalidation after.
    this.protectEnd(ipa, size, true);
    return ret;
  }

  /** Before write-protect walks: their invalidation is in flight until protectEnd. */
  protectBegin(): void {
    this.pgt.tlb.updateBegin();
  }

  /**
   * After write-protect walks: invalidate [ipa, ipa+size) if anything was protected, and wait for
   * completion; without it vCPUs keep writing through stale writable TLB entries and those
   * writes escape the dirty log.
   */
  protectEnd(ipa: number, size: number, flush: boolean): void {
    if (flush && (this.pgt.bugs & TestBug.WRPROTECT_NO_TLBI) === 0)
      this.pgt.tlb.flushRange(this.pgt.vmid, ipa, size);
    this.pgt.tlb.updateEnd();
  }

  /** Runs `fn` holding SLOTS_LOCK (kvm->slots_lock), released even if it throws. */
  withSlotsLock<T>(fn: () => T): T {
    mutexLock(this.slots.words, SlotWord.SLOTS_LOCK);
    try {
      return fn();
    } finally {
      mutexUnlock(this.slots.words, SlotWord.SLOTS_LOCK);
    }
  }

  /** A stable copy of slot `id` (under SLOTS_LOCK, or retried against GEN). */
  readStable(id: number): SlotRef {
    const w = this.slots.words;
    for (;;) {
      const gen = Atomics.load(w, SlotWord.GEN);
      this.slots.read(id, this.ref);
      if ((gen & 1) === 0 && Atomics.load(w, SlotWord.GEN) === gen) return this.ref;
    }
  }

  /** Slot `id` (this view's scratch copy) if live; else RangeError saying it cannot `what`. */
  live(id: number, what: string): SlotRef {
    if (!Number.isInteger(id) || id < 0 || id >= this.slots.capacity)
      throw new RangeError(`Cannot ${what} memslot ${id}: ids are 0..${this.slots.capacity - 1}`);
    const s = this.slots.read(id, this.ref);
    if ((s.flags & SlotFlag.LIVE) === 0)
      throw new RangeError(`Cannot ${what} memslot ${id}: no such memslot`);
    return s;
  }

  /** Slot `id` if live and logging; else RangeError or Stage2Error(EINVAL). */
  logging(id: number, what: string): SlotRef {
    const s = this.live(id, what);
    if ((s.flags & SlotFlag.LOGGING) === 0)
      throw new Stage2Error(Errno.INVAL, `Cannot ${what} memslot ${id}: dirty logging is off`);
    return s;
  }

  /** The lowest free slot id; RangeError when all maxMemslots are live. Hold SLOTS_LOCK. */
  freeEntry(): number {
    for (let id = 0; id < this.slots.capacity; id++) {
      if ((Atomics.load(this.slots.words, this.slots.at(id, SlotField.FLAGS)) & SlotFlag.LIVE) === 0)
        return id;
    }
    throw new RangeError(
      `Cannot create a memslot: all ${this.slots.capacity} slots are in use (maxMemslots)`,
    );
  }

  /** RangeError unless [ipa, ipa+size) is granule aligned, non-empty and inside the IPA space. */
  checkIpaRange(what: string, ipa: number, size: number): void {
    const page = this.geo.granule;
    const where = `[0x${hex(ipa)}, +0x${hex(size)})`;
    if (
      !Number.isSafeInteger(ipa) ||
      !Number.isSafeInteger(size) ||
      ipa < 0 ||
      size <= 0 ||
      ipa % page ||
      size % page
    )
      throw new RangeError(`Cannot ${what} ${where}: address and size must be positive multiples of ${page}`);
    if (ipa + size > this.geo.ipaSize)
      throw new RangeError(`Cannot ${what} ${where}: exceeds the ${this.geo.iaBits}-bit IPA space`);
  }

  /** RangeError unless a slot may sit at [ipa, ipa+size) -> hostPa (alignment, PA space, no overlap except `self`). */
  checkSlotRange(ipa: number, size: number, hostPa: number, code: number, self: number): void {
    const where = `memslot [0x${hex(ipa)}, +0x${hex(size)})`;
    this.checkIpaRange("create", ipa, size);
    const huge = code >= 2 ? backingMapSize(code, this.geo) : this.geo.granule;
    if (!Number.isSafeInteger(hostPa) || hostPa < 0 || hostPa % huge !== 0 || size % huge !== 0)
      throw new RangeError(
        `Cannot create ${where}: host PA 0x${hex(hostPa)} and size must be multiples of ${huge}`,
      );
    if (hostPa + size > 2 ** this.geo.paBits)
      throw new RangeError(
        `Cannot create ${where}: host PA range exceeds the ${this.geo.paBits}-bit PA space`,
      );
    const r = new SlotRef();
    const n = Atomics.load(this.slots.words, SlotWord.USED);
    for (let id = 0; id < n; id++) {
      if (id === self) continue;
      this.slots.read(id, r);
      if ((r.flags & SlotFlag.LIVE) !== 0 && ipa < r.ipa + r.size && r.ipa < ipa + size)
        throw new RangeError(
          `Cannot create ${where}: overlaps memslot ${id} [0x${hex(r.ipa)}, +0x${hex(r.size)})`,
        );
    }
  }
}

/** `n` in hexadecimal, for messages. */
export function hex(n: number): string {
  return n.toString(16);
}
