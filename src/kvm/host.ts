/**
 * The host side of a VM: memslot changes, MMU-notifier invalidations, dirty logging and access
 * tracking, usable from the thread that created the VM or from any thread that attached a host
 * view (`attachHost`).
 *
 * Memslot changes are serialized by SLOTS_LOCK (kvm->slots_lock). Every change that can leave a
 * fault acting on stale slot data closes the window twice, as Linux does:
 *   1. it publishes the new slot (GEN seqlock) and waits for the faults already in flight
 *      (`waitForFaults`, synchronize_srcu in kvm_swap_active_memslots);
 *   2. it bumps MMU_SEQ under the write mmu_lock, so a fault that read the slot before the change
 *      and takes mmu_lock after it retries (mmu_invalidate_seq / mmu_invalidate_retry).
 * Table operations (unmap, write-protect, split, test-and-clear-young) walk exclusively under the
 * write lock, so they free tables at once and need no RCU.
 */
import type { Geometry } from "../arch/geometry.js";
import { Errno, Stage2Error } from "../common/errno.js";
import { mutexLock, mutexUnlock } from "../mem/spin-mutex.js";
import { MemCache } from "../mem/mod.js";
import { unmap, wrprotect } from "../pgtable/mod.js";
import type { Stage2 } from "../pgtable/stage2.js";
import type { RwLock } from "../sync/mod.js";
import { countYoung } from "./access.js";
import {
  BACKINGS,
  backingCode,
  backingMapSize,
  type MemslotSpec,
  type MemslotTable,
  SlotField,
  SlotFlag,
  SlotRef,
  SlotWord,
} from "./memslot.js";
import { mmuSeqBumpSlots, mmuSeqInvalidateEnd, mmuSeqInvalidateStart } from "./mmu-seq.js";
import { splitInChunks } from "./split-chunks.js";

/** Options of `enableDirtyLogging` (KVM_MEM_LOG_DIRTY_PAGES and the dirty-log capabilities). */
export interface DirtyLogOptions {
  /** KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE: get does not clear; clear re-protects (default false, `-g`). */
  manualProtect?: boolean;
  /** KVM_DIRTY_LOG_INITIALLY_SET: the log starts all ones and nothing is write-protected up front (default: manualProtect). */
  initiallySet?: boolean;
  /** KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE in bytes: split blocks eagerly, dropping the write lock between chunks (0 = lazily). */
  eagerSplitChunk?: number;
}

/** What enabling dirty logging did. */
export interface DirtyLogEnableResult {
  /** Chunks eagerly split (the write lock was dropped and retaken between them). */
  splitChunks: number;
}

/** Test-only switches that disable parts of the dirty-page race fix (never exposed by a CLI). */
export interface HostTestOnly {
  /** Memslot changes do not wait for faults in flight. */
  noFaultWait?: boolean;
}

/** Descriptive copy of a live memslot. */
export interface MemslotInfo {
  id: number;
  ipa: number;
  size: number;
  hostPa: number;
  backing: MemslotSpec["backing"];
  readOnly: boolean;
  logging: boolean;
  manualProtect: boolean;
}

/**
 * A host view of a VM in one thread: memslot changes, MMU-notifier unmaps, dirty logging and access
 * tracking. Build it with attachHost (or use `vm.host`); use each view from one thread only. Bad
 * input throws RangeError naming the value; operations on a slot in the wrong state throw
 * Stage2Error (EINVAL, EEXIST).
 */
export class VmHost {
  readonly slots: MemslotTable;
  readonly pgt: Stage2;
  readonly lock: RwLock;
  readonly geo: Geometry;
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

  // --- memslots -------------------------------------------------------------------------------

  /**
   * Creates a memslot (KVM_SET_USER_MEMORY_REGION) and returns its id. Throws RangeError for a
   * misaligned, overlapping or out-of-space range, an unknown backing, or a full table.
   */
  createMemslot(spec: MemslotSpec): number {
    const code = backingCode(spec.backing);
    if (code < 0) throw new RangeError(`Unknown memslot backing "${spec.backing}": use ${backingNames()}`);
    const hostPa = spec.hostPa ?? spec.ipa;
    this.checkSlotRange(spec.ipa, spec.size, hostPa, code, -1);
    return this.withSlotsLock(() => {
      const id = this.freeEntry();
      const flags =
        SlotFlag.LIVE | (spec.readOnly ? SlotFlag.READ_ONLY : 0) | (code << SlotFlag.BACKING_SHIFT);
      this.slots.beginChange();
      this.slots.write(id, spec.ipa, spec.size, hostPa, flags, -1, 0);
      this.slots.endChange();
      return id;
    });
  }

  /** Deletes a memslot: unpublishes it, waits for faults in flight, unmaps its range under the write lock. */
  deleteMemslot(id: number): void {
    this.withSlotsLock(() => {
      const s = this.live(id, "delete");
      Atomics.store(this.slots.words, this.slots.at(id, SlotField.SPLIT_PAGES), 0);
      this.publish(id, s.ipa, s.size, s.hostPa, 0, -1, 0, () => this.unmapRange(s.ipa, s.size));
    });
  }

  /** Moves a memslot to `newIpa` (KVM_MR_MOVE): its old range is unmapped; the host memory and dirty log stay. */
  moveMemslot(id: number, newIpa: number): void {
    this.withSlotsLock(() => {
      const s = this.live(id, "move");
      const code = (s.flags & SlotFlag.BACKING_MASK) >>> SlotFlag.BACKING_SHIFT;
      this.checkSlotRange(newIpa, s.size, s.hostPa, code, id);
      const words = Atomics.load(this.slots.words, this.slots.at(id, SlotField.BITMAP_WORDS));
      // As KVM_MR_MOVE: the slot disappears (faults in flight drained, old range unmapped), then
      // reappears at its new address.
      this.publish(id, s.ipa, s.size, s.hostPa, 0, s.bitmapBase, words, () => this.unmapRange(s.ipa, s.size));
      this.publish(id, newIpa, s.size, s.hostPa, s.flags, s.bitmapBase, words);
    });
  }

  /** The live memslot `id`, or undefined. */
  memslot(id: number): MemslotInfo | undefined {
    if (!Number.isInteger(id) || id < 0 || id >= this.slots.capacity) return undefined;
    const s = this.readStable(id);
    if ((s.flags & SlotFlag.LIVE) === 0) return undefined;
    const code = (s.flags & SlotFlag.BACKING_MASK) >>> SlotFlag.BACKING_SHIFT;
    return {
      id,
      ipa: s.ipa,
      size: s.size,
      hostPa: s.hostPa,
      backing: BACKINGS[code] as MemslotSpec["backing"],
      readOnly: (s.flags & SlotFlag.READ_ONLY) !== 0,
      logging: (s.flags & SlotFlag.LOGGING) !== 0,
      manualProtect: (s.flags & SlotFlag.MANUAL_PROTECT) !== 0,
    };
  }

  /** Ids of the live memslots. */
  memslotIds(): number[] {
    const out: number[] = [];
    const used = Atomics.load(this.slots.words, SlotWord.USED);
    for (let id = 0; id < used; id++) if (this.memslot(id)) out.push(id);
    return out;
  }

  // --- MMU notifiers --------------------------------------------------------------------------

  /** invalidate_range_start: under the write lock, count the invalidation in progress and unmap. */
  invalidateRangeStart(ipa: number, size: number): void {
    this.checkIpaRange("invalidate", ipa, size);
    this.lock.writeLock();
    try {
      mmuSeqInvalidateStart(this.slots.words);
      this.unmapRange(ipa, size);
    } finally {
      this.lock.writeUnlock();
    }
  }

  /** invalidate_range_end: under the write lock, bump the sequence and end the invalidation. */
  invalidateRangeEnd(_ipa: number, _size: number): void {
    this.lock.writeLock();
    try {
      mmuSeqInvalidateEnd(this.slots.words);
    } finally {
      this.lock.writeUnlock();
    }
  }

  /**
   * An MMU-notifier unmap of [ipa, ipa+size): invalidate start and end in one hold of the write
   * lock (a zap with nothing to wait for in between), so faults see only the sequence move.
   */
  unmap(ipa: number, size: number): void {
    this.checkIpaRange("unmap", ipa, size);
    this.lock.writeLock();
    try {
      mmuSeqInvalidateStart(this.slots.words);
      try {
        this.unmapRange(ipa, size);
      } finally {
        mmuSeqInvalidateEnd(this.slots.words);
      }
    } finally {
      this.lock.writeUnlock();
    }
  }

  /** Write-protects [ipa, ipa+size) under the write lock and invalidates the range's TLB entries. */
  wrprotect(ipa: number, size: number): number {
    this.checkIpaRange("write-protect", ipa, size);
    this.lock.writeLock();
    try {
      return this.wrprotectRange(ipa, size);
    } finally {
      this.lock.writeUnlock();
    }
  }

  // --- access tracking ------------------------------------------------------------------------

  /**
   * Test-and-clear-young over [ipa, ipa+size) under the write lock, without a TLB flush (as
   * page_idle: a stale young translation only makes a page look accessed once more). Returns the
   * pages whose translation was young (a young block counts every page of it inside the range).
   */
  testClearYoung(ipa: number, size: number): number {
    this.checkIpaRange("test-and-clear-young", ipa, size);
    this.lock.writeLock();
    try {
      return countYoung(this.pgt, ipa, size, true);
    } finally {
      this.lock.writeUnlock();
    }
  }

  /** Pages of [ipa, ipa+size) that are unmapped or not young (idle). Write lock, exclusive walk. */
  countIdle(ipa: number, size: number): number {
    this.checkIpaRange("count idle pages of", ipa, size);
    this.lock.writeLock();
    try {
      return size / this.geo.granule - countYoung(this.pgt, ipa, size, false);
    } finally {
      this.lock.writeUnlock();
    }
  }

  // --- dirty logging --------------------------------------------------------------------------

  /**
   * Turns dirty logging on (KVM_MEM_LOG_DIRTY_PAGES): allocates the slot's bitmap, publishes the
   * flag, waits for faults in flight, then under the write lock bumps MMU_SEQ and write-protects
   * the slot (unless the log starts all set with manual protect: the first clear protects).
   * With `eagerSplitChunk`, splits the slot's blocks chunk by chunk, dropping the lock between.
   */
  enableDirtyLogging(id: number, opts: DirtyLogOptions = {}): DirtyLogEnableResult {
    const manual = opts.manualProtect ?? false;
    const initiallySet = opts.initiallySet ?? manual;
    if (initiallySet && !manual)
      throw new RangeError("Cannot enable dirty logging: initiallySet requires manualProtect");
    const chunk = opts.eagerSplitChunk ?? 0;
    if (!Number.isInteger(chunk) || chunk < 0 || chunk % this.geo.granule !== 0)
      throw new RangeError(
        `Cannot enable dirty logging: eagerSplitChunk ${chunk} is not a multiple of ${this.geo.granule}`,
      );
    return this.withSlotsLock(() => {
      const s = this.live(id, "enable dirty logging on");
      if ((s.flags & SlotFlag.LOGGING) !== 0)
        throw new Stage2Error(Errno.EXIST, `Cannot enable dirty logging on memslot ${id}: already enabled`);
      const pages = s.size / this.geo.granule;
      const words = Math.ceil(pages / 32);
      const base = this.allocBitmap(words, id);
      this.fillBitmap(base, pages, initiallySet);
      const flags = s.flags | SlotFlag.LOGGING | (manual ? SlotFlag.MANUAL_PROTECT : 0);
      this.publish(id, s.ipa, s.size, s.hostPa, flags, base, words, () => {
        if (!initiallySet) this.wrprotectRange(s.ipa, s.size);
      });
      Atomics.store(this.slots.words, this.slots.at(id, SlotField.SPLIT_PAGES), chunk / this.geo.granule);
      const splitChunks = chunk > 0 && !initiallySet ? this.split(s.ipa, s.size, chunk) : 0;
      return { splitChunks };
    });
  }

  /** Turns dirty logging off: faults map blocks again (collapsing the page tables they meet). */
  disableDirtyLogging(id: number): void {
    this.withSlotsLock(() => {
      const s = this.live(id, "disable dirty logging on");
      if ((s.flags & SlotFlag.LOGGING) === 0)
        throw new Stage2Error(Errno.INVAL, `Cannot disable dirty logging on memslot ${id}: not enabled`);
      const flags = s.flags & ~(SlotFlag.LOGGING | SlotFlag.MANUAL_PROTECT);
      Atomics.store(this.slots.words, this.slots.at(id, SlotField.SPLIT_PAGES), 0);
      this.publish(id, s.ipa, s.size, s.hostPa, flags, -1, 0);
    });
  }

  /**
   * KVM_GET_DIRTY_LOG: a copy of the slot's bitmap (bit i = page i of the slot). Without manual
   * protect it also clears the log and write-protects the dirty pages, under the write lock.
   */
  getDirtyLog(id: number): Uint32Array {
    return this.withSlotsLock(() => {
      const s = this.logging(id, "get the dirty log of");
      const words = Math.ceil(s.size / this.geo.granule / 32);
      const out = new Uint32Array(words);
      const bitmap = this.slots.bitmapBase + s.bitmapBase;
      if ((s.flags & SlotFlag.MANUAL_PROTECT) !== 0) {
        // Orders nothing: a bit set concurrently shows up here or in the next get.
        for (let w = 0; w < words; w++) out[w] = Atomics.load(this.slots.words, bitmap + w);
        return out;
      }
      this.lock.writeLock();
      try {
        let flush = false;
        for (let w = 0; w < words; w++) {
          // Pairs with markDirty's Atomics.or: a bit set after this exchange stays for the next get.
          const bits = Atomics.exchange(this.slots.words, bitmap + w, 0);
          out[w] = bits;
          if (bits !== 0) flush = this.protectMask(s, w, bits) || flush;
        }
        if (flush) this.pgt.tlb.flushRange(this.pgt.vmid, s.ipa, s.size);
      } finally {
        this.lock.writeUnlock();
      }
      return out;
    });
  }

  /**
   * KVM_CLEAR_DIRTY_LOG (manual protect only): clears the bits of pages [firstPage,
   * firstPage+numPages) set in `mask` (default: all) and write-protects those pages again, under
   * the write lock. `firstPage` must be a multiple of 64, and `numPages` too unless the range
   * ends at the slot's end. Returns the number of bits that were set and are now clear.
   */
  clearDirtyLog(id: number, firstPage: number, numPages: number, mask?: Uint32Array): number {
    return this.withSlotsLock(() => {
      const s = this.logging(id, "clear the dirty log of");
      if ((s.flags & SlotFlag.MANUAL_PROTECT) === 0)
        throw new Stage2Error(
          Errno.INVAL,
          `Cannot clear the dirty log of memslot ${id}: manual protect is off`,
        );
      const pages = s.size / this.geo.granule;
      const end = firstPage + numPages;
      if (
        !Number.isInteger(firstPage) ||
        !Number.isInteger(numPages) ||
        firstPage < 0 ||
        numPages < 0 ||
        end > pages
      )
        throw new RangeError(
          `Cannot clear pages [${firstPage}, ${end}) of memslot ${id}: it has ${pages} pages`,
        );
      if (firstPage % 64 !== 0 || (numPages % 64 !== 0 && end !== pages))
        throw new RangeError(
          `Cannot clear pages [${firstPage}, ${end}) of memslot ${id}: not 64-page aligned`,
        );
      const words = Math.ceil(numPages / 32);
      if (mask !== undefined && mask.length < words)
        throw new RangeError(
          `Cannot clear ${numPages} pages with a mask of ${mask.length} words: need ${words}`,
        );
      return this.clearLocked(s, firstPage, numPages, mask);
    });
  }

  private clearLocked(s: SlotRef, firstPage: number, numPages: number, mask?: Uint32Array): number {
    const bitmap = this.slots.bitmapBase + s.bitmapBase;
    const chunk = Atomics.load(this.slots.words, this.slots.at(s.id, SlotField.SPLIT_PAGES));
    let cleared = 0;
    let flush = false;
    this.lock.writeLock();
    try {
      for (let i = 0; i < numPages; i += 32) {
        const left = numPages - i;
        let m = mask === undefined ? -1 : (mask[i >>> 5] as number) | 0;
        if (left < 32) m &= (1 << left) - 1;
        const w = (firstPage + i) >>> 5;
        // Pairs with markDirty's Atomics.or: a bit set after this and stays set is a later write.
        const bits = Atomics.and(this.slots.words, bitmap + w, ~m) & m;
        if (bits === 0) continue;
        cleared += popcount(bits);
        if (chunk > 0) this.splitMaskLocked(s, w, bits);
        flush = this.protectMask(s, w, bits) || flush;
      }
      if (flush)
        this.pgt.tlb.flushRange(
          this.pgt.vmid,
          s.ipa + firstPage * this.geo.granule,
          numPages * this.geo.granule,
        );
    } finally {
      this.lock.writeUnlock();
      if (chunk > 0) this.memcache.drain();
    }
    return cleared;
  }

  // --- helpers --------------------------------------------------------------------------------

  /**
   * Publishes slot `id` anew (GEN), waits for faults in flight, then under the write lock bumps
   * MMU_SEQ and runs `underLock` (unmap, write-protect). Hold SLOTS_LOCK.
   */
  private publish(
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

  private unmapRange(ipa: number, size: number): void {
    const ret = unmap(this.pgt, ipa, size);
    if (ret !== Errno.OK)
      throw new Stage2Error(ret, `Cannot unmap [0x${ipa.toString(16)}, +0x${size.toString(16)})`);
  }

  private wrprotectRange(ipa: number, size: number): number {
    const ret = wrprotect(this.pgt, ipa, size);
    // As kvm_mmu_wp_memory_region: the walk changes no TLB itself; one range invalidation after.
    this.pgt.tlb.flushRange(this.pgt.vmid, ipa, size);
    return ret;
  }

  /** Write-protects the span from the lowest to the highest set bit of word `w` (as Linux). */
  private protectMask(s: SlotRef, w: number, bits: number): boolean {
    const lo = 31 - Math.clz32(bits & -bits);
    const hi = 31 - Math.clz32(bits);
    const page = this.geo.granule;
    const start = s.ipa + (w * 32 + lo) * page;
    wrprotect(this.pgt, start, (hi - lo + 1) * page);
    return true;
  }

  /**
   * Eager splitting at clear time (manual protect, log initially set), as Linux: the region
   * around the mask's span aligned to the largest block size, clipped to the slot, so later
   * clears in that region find nothing left to split.
   */
  private splitMaskLocked(s: SlotRef, w: number, bits: number): void {
    const lo = 31 - Math.clz32(bits & -bits);
    const hi = 31 - Math.clz32(bits);
    const page = this.geo.granule;
    const big = this.geo.blockSizes[0] ?? page;
    const start = Math.max(s.ipa, Math.floor((s.ipa + (w * 32 + lo) * page) / big) * big);
    const end = Math.min(s.ipa + s.size, Math.ceil((s.ipa + (w * 32 + hi + 1) * page) / big) * big);
    splitInChunks(this, start, end - start, 0, true);
  }

  private split(ipa: number, size: number, chunk: number): number {
    return splitInChunks(this, ipa, size, chunk, false);
  }

  private withSlotsLock<T>(fn: () => T): T {
    mutexLock(this.slots.words, SlotWord.SLOTS_LOCK);
    try {
      return fn();
    } finally {
      mutexUnlock(this.slots.words, SlotWord.SLOTS_LOCK);
    }
  }

  /** A stable copy of slot `id` (under SLOTS_LOCK, or retried against GEN). */
  private readStable(id: number): SlotRef {
    const w = this.slots.words;
    for (;;) {
      const gen = Atomics.load(w, SlotWord.GEN);
      this.slots.read(id, this.ref);
      if ((gen & 1) === 0 && Atomics.load(w, SlotWord.GEN) === gen) return this.ref;
    }
  }

  private live(id: number, what: string): SlotRef {
    if (!Number.isInteger(id) || id < 0 || id >= this.slots.capacity)
      throw new RangeError(`Cannot ${what} memslot ${id}: ids are 0..${this.slots.capacity - 1}`);
    const s = this.slots.read(id, this.ref);
    if ((s.flags & SlotFlag.LIVE) === 0)
      throw new RangeError(`Cannot ${what} memslot ${id}: no such memslot`);
    return s;
  }

  private logging(id: number, what: string): SlotRef {
    const s = this.live(id, what);
    if ((s.flags & SlotFlag.LOGGING) === 0)
      throw new Stage2Error(Errno.INVAL, `Cannot ${what} memslot ${id}: dirty logging is off`);
    return s;
  }

  private freeEntry(): number {
    for (let id = 0; id < this.slots.capacity; id++) {
      if ((Atomics.load(this.slots.words, this.slots.at(id, SlotField.FLAGS)) & SlotFlag.LIVE) === 0)
        return id;
    }
    throw new RangeError(
      `Cannot create a memslot: all ${this.slots.capacity} slots are in use (maxMemslots)`,
    );
  }

  /** First fit in the bitmap among the ranges of the live logging slots other than `self`. */
  private allocBitmap(words: number, self: number): number {
    const used: [number, number][] = [];
    const r = new SlotRef();
    const n = Atomics.load(this.slots.words, SlotWord.USED);
    for (let id = 0; id < n; id++) {
      if (id === self) continue;
      this.slots.read(id, r);
      if ((r.flags & SlotFlag.LIVE) !== 0 && r.bitmapBase >= 0)
        used.push([r.bitmapBase, Atomics.load(this.slots.words, this.slots.at(id, SlotField.BITMAP_WORDS))]);
    }
    used.sort((a, b) => a[0] - b[0]);
    let at = 0;
    for (const [base, len] of used) {
      if (base - at >= words) break;
      at = Math.max(at, base + len);
    }
    if (at + words > this.slots.bitmapWords)
      throw new RangeError(
        `Cannot enable dirty logging: ${words * 32} pages of bitmap needed, ${(this.slots.bitmapWords - at) * 32} free of ${this.slots.bitmapWords * 32} (dirtyBitmapPages)`,
      );
    return at;
  }

  private fillBitmap(base: number, pages: number, set: boolean): void {
    const w = this.slots.words;
    const at = this.slots.bitmapBase + base;
    for (let i = 0; i < pages; i += 32) {
      const left = pages - i;
      Atomics.store(w, at + (i >>> 5), set ? (left >= 32 ? -1 : (1 << left) - 1) : 0);
    }
  }

  private checkIpaRange(what: string, ipa: number, size: number): void {
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

  private checkSlotRange(ipa: number, size: number, hostPa: number, code: number, self: number): void {
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

function hex(n: number): string {
  return n.toString(16);
}

function popcount(x: number): number {
  let n = 0;
  for (let v = x; v !== 0; v &= v - 1) n++;
  return n;
}

function backingNames(): string {
  return BACKINGS.join(", ");
}
