/**
 * The host side of a VM: memslot changes, MMU-notifier invalidations, dirty logging and access
 * tracking, usable from the thread that created the VM (`vm.host`) or from any thread that
 * attached a host view (`attachHost`).
 *
 * Memslot changes are serialized by SLOTS_LOCK (kvm->slots_lock) and published as host-core.ts
 * describes (wait for faults in flight, bump MMU_SEQ). Table operations (unmap, write-protect,
 * split, test-and-clear-young) walk exclusively under the write lock, so they free tables at
 * once and need no RCU.
 */
import type { Geometry } from "../arch/geometry.js";
import type { MemCache } from "../mem/mod.js";
import type { Stage2 } from "../pgtable/stage2.js";
import type { RwLock } from "../sync/mod.js";
import { countYoung } from "./access.js";
import { type DirtyLogEnableResult, type DirtyLogOptions, DirtyLog } from "./dirty-log.js";
import { HostCore, type HostTestOnly } from "./host-core.js";
import {
  BACKINGS,
  backingCode,
  type MemslotSpec,
  type MemslotTable,
  SlotField,
  SlotFlag,
  SlotWord,
} from "./memslot.js";
import { mmuSeqInvalidateEnd, mmuSeqInvalidateStart } from "./mmu-seq.js";

export type { DirtyLogEnableResult, DirtyLogOptions } from "./dirty-log.js";
export type { HostTestOnly } from "./host-core.js";

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
  /** The host's table cache for eager splitting (empty between operations). */
  readonly memcache: MemCache;
  private readonly core: HostCore;
  private readonly dirty: DirtyLog;

  constructor(slots: MemslotTable, pgt: Stage2, lock: RwLock, testOnly: HostTestOnly = {}) {
    this.core = new HostCore(slots, pgt, lock, testOnly);
    this.dirty = new DirtyLog(this.core);
    this.slots = slots;
    this.pgt = pgt;
    this.lock = lock;
    this.geo = pgt.geo;
    this.memcache = this.core.memcache;
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
    this.core.checkSlotRange(spec.ipa, spec.size, hostPa, code, -1);
    return this.core.withSlotsLock(() => {
      const id = this.core.freeEntry();
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
    this.core.withSlotsLock(() => {
      const s = this.core.live(id, "delete");
      Atomics.store(this.slots.words, this.slots.at(id, SlotField.SPLIT_PAGES), 0);
      this.core.publish(id, s.ipa, s.size, s.hostPa, 0, -1, 0, () => this.core.unmapRange(s.ipa, s.size));
    });
  }

  /** Moves a memslot to `newIpa` (KVM_MR_MOVE): its old range is unmapped; the host memory and dirty log stay. */
  moveMemslot(id: number, newIpa: number): void {
    this.core.withSlotsLock(() => {
      const s = this.core.live(id, "move");
      const code = (s.flags & SlotFlag.BACKING_MASK) >>> SlotFlag.BACKING_SHIFT;
      this.core.checkSlotRange(newIpa, s.size, s.hostPa, code, id);
      const words = Atomics.load(this.slots.words, this.slots.at(id, SlotField.BITMAP_WORDS));
      // As KVM_MR_MOVE: the slot disappears (faults in flight drained, old range unmapped), then
      // reappears at its new address.
      this.core.publish(id, s.ipa, s.size, s.hostPa, 0, s.bitmapBase, words, () =>
        this.core.unmapRange(s.ipa, s.size),
      );
      this.core.publish(id, newIpa, s.size, s.hostPa, s.flags, s.bitmapBase, words);
    });
  }

  /** The live memslot `id`, or undefined. */
  memslot(id: number): MemslotInfo | undefined {
    if (!Number.isInteger(id) || id < 0 || id >= this.slots.capacity) return undefined;
    const s = this.core.readStable(id);
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

  /** invalidate_range_start: under the write lock, count the invalidation in progress and unmap. */
  invalidateRangeStart(ipa: number, size: number): void {
    this.core.checkIpaRange("invalidate", ipa, size);
    this.lock.writeLock();
    try {
      mmuSeqInvalidateStart(this.slots.words);
      this.core.unmapRange(ipa, size);
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
    this.core.checkIpaRange("unmap", ipa, size);
    this.lock.writeLock();
    try {
      mmuSeqInvalidateStart(this.slots.words);
      try {
        this.core.unmapRange(ipa, size);
      } finally {
        mmuSeqInvalidateEnd(this.slots.words);
      }
    } finally {
      this.lock.writeUnlock();
    }
  }

  /** Write-protects [ipa, ipa+size) under the write lock and invalidates the range's TLB entries. */
  wrprotect(ipa: number, size: number): number {
    this.core.checkIpaRange("write-protect", ipa, size);
    this.lock.writeLock();
    try {
      return this.core.wrprotectRange(ipa, size);
    } finally {
      this.lock.writeUnlock();
    }
  }

  /**
   * Test-and-clear-young over [ipa, ipa+size) under the write lock, without a TLB flush (as
   * page_idle: a stale young translation only makes a page look accessed once more). Returns the
   * pages whose translation was young (a young block counts every page of it inside the range).
   */
  testClearYoung(ipa: number, size: number): number {
    this.core.checkIpaRange("test-and-clear-young", ipa, size);
    this.lock.writeLock();
    try {
      return countYoung(this.pgt, ipa, size, true);
    } finally {
      this.lock.writeUnlock();
    }
  }

  /** Pages of [ipa, ipa+size) that are unmapped or not young (idle). Write lock, exclusive walk. */
  countIdle(ipa: number, size: number): number {
    this.core.checkIpaRange("count idle pages of", ipa, size);
    this.lock.writeLock();
    try {
      return size / this.geo.granule - countYoung(this.pgt, ipa, size, false);
    } finally {
      this.lock.writeUnlock();
    }
  }

  // --- dirty logging (dirty-log.ts) -----------------------------------------------------------

  /**
   * Turns dirty logging on (KVM_MEM_LOG_DIRTY_PAGES): allocates the slot's bitmap, publishes the
   * flag, waits for faults in flight, then under the write lock bumps MMU_SEQ and write-protects
   * the slot (unless the log starts all set with manual protect: the first clear protects).
   * With `eagerSplitChunk`, splits the slot's blocks chunk by chunk, dropping the lock between.
   */
  enableDirtyLogging(id: number, opts: DirtyLogOptions = {}): DirtyLogEnableResult {
    return this.dirty.enableDirtyLogging(id, opts);
  }

  /** Turns dirty logging off: faults map blocks again (collapsing the page tables they meet). */
  disableDirtyLogging(id: number): void {
    this.dirty.disableDirtyLogging(id);
  }

  /**
   * KVM_GET_DIRTY_LOG: a copy of the slot's bitmap (bit i = page i of the slot). Without manual
   * protect it also clears the log and write-protects the dirty pages, under the write lock.
   */
  getDirtyLog(id: number): Uint32Array {
    return this.dirty.getDirtyLog(id);
  }

  /**
   * KVM_CLEAR_DIRTY_LOG (manual protect only): clears the bits of pages [firstPage,
   * firstPage+numPages) set in `mask` (default: all) and write-protects those pages again.
   * `firstPage` must be a multiple of 64, and `numPages` too unless the range ends at the
   * slot's end. Returns the number of bits that were set and are now clear.
   */
  clearDirtyLog(id: number, firstPage: number, numPages: number, mask?: Uint32Array): number {
    return this.dirty.clearDirtyLog(id, firstPage, numPages, mask);
  }
}

function backingNames(): string {
  return BACKINGS.join(", ");
}
