/**
 * Dirty logging on the host side: enable (KVM_MEM_LOG_DIRTY_PAGES, with the dirty-log
 * capabilities), get (KVM_GET_DIRTY_LOG), clear (KVM_CLEAR_DIRTY_LOG), disable.
 *
 * Modes: without manual protect (`-g`) enable write-protects the whole slot and get clears what
 * it returns and write-protects those pages again. With manual protect the log starts all set
 * (KVM_DIRTY_LOG_INITIALLY_SET) so enable protects nothing, get only copies, and clear
 * write-protects the pages it clears (splitting their region first with eager splitting on).
 * Every write-protection walk is followed by one range invalidation through `pgt.tlb`.
 */
import { Errno, Stage2Error } from "../common/errno.js";
import type { HostCore } from "./host-core.js";
import { wrprotect } from "../pgtable/mod.js";
import { SlotField, SlotFlag, SlotRef, SlotWord } from "./memslot.js";
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
  /**
   * False when eager splitting stopped early because the page pool ran dry. Logging is on all
   * the same (splitting is best effort, as in Linux): write faults split the blocks left.
   */
  splitComplete: boolean;
}

/** The dirty-log operations of one host view. */
export class DirtyLog {
  private readonly core: HostCore;

  constructor(core: HostCore) {
    this.core = core;
  }

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
    if (!Number.isInteger(chunk) || chunk < 0 || chunk % this.core.geo.granule !== 0)
      throw new RangeError(
        `Cannot enable dirty logging: eagerSplitChunk ${chunk} is not a multiple of ${this.core.geo.granule}`,
      );
    return this.core.withSlotsLock(() => {
      const s = this.core.live(id, "enable dirty logging on");
      if ((s.flags & SlotFlag.LOGGING) !== 0)
        throw new Stage2Error(Errno.EXIST, `Cannot enable dirty logging on memslot ${id}: already enabled`);
      const pages = s.size / this.core.geo.granule;
      const words = Math.ceil(pages / 32);
      const base = this.allocBitmap(words, id);
      this.fillBitmap(base, pages, initiallySet);
      const flags = s.flags | SlotFlag.LOGGING | (manual ? SlotFlag.MANUAL_PROTECT : 0);
      this.core.publish(id, s.ipa, s.size, s.hostPa, flags, base, words, () => {
        if (!initiallySet) this.core.wrprotectRange(s.ipa, s.size);
      });
      Atomics.store(
        this.core.slots.words,
        this.core.slots.at(id, SlotField.SPLIT_PAGES),
        chunk / this.core.geo.granule,
      );
      if (chunk === 0 || initiallySet) return { splitChunks: 0, splitComplete: true };
      const r = splitInChunks(this.core, s.ipa, s.size, chunk, false);
      return { splitChunks: r.chunks, splitComplete: r.complete };
    });
  }

  /** Turns dirty logging off: faults map blocks again (collapsing the page tables they meet). */
  disableDirtyLogging(id: number): void {
    this.core.withSlotsLock(() => {
      const s = this.core.live(id, "disable dirty logging on");
      if ((s.flags & SlotFlag.LOGGING) === 0)
        throw new Stage2Error(Errno.INVAL, `Cannot disable dirty logging on memslot ${id}: not enabled`);
      const flags = s.flags & ~(SlotFlag.LOGGING | SlotFlag.MANUAL_PROTECT);
      Atomics.store(this.core.slots.words, this.core.slots.at(id, SlotField.SPLIT_PAGES), 0);
      this.core.publish(id, s.ipa, s.size, s.hostPa, flags, -1, 0);
    });
  }

  /**
   * KVM_GET_DIRTY_LOG: a copy of the slot's bitmap (bit i = page i of the slot). Without manual
   * protect it also clears the log and write-protects the dirty pages, under the write lock.
   */
  getDirtyLog(id: number): Uint32Array {
    return this.core.withSlotsLock(() => {
      const s = this.core.logging(id, "get the dirty log of");
      const words = Math.ceil(s.size / this.core.geo.granule / 32);
      const out = new Uint32Array(words);
      const bitmap = this.core.slots.bitmapBase + s.bitmapBase;
      if ((s.flags & SlotFlag.MANUAL_PROTECT) !== 0) {
        // Orders nothing: a bit set concurrently shows up here or in the next get.
        for (let w = 0; w < words; w++) out[w] = Atomics.load(this.core.slots.words, bitmap + w);
        return out;
      }
      this.core.lock.writeLock();
      let flush = false;
      this.core.protectBegin();
      try {
        for (let w = 0; w < words; w++) {
          // Pairs with markDirty's Atomics.or: a bit set after this exchange stays for the next get.
          const bits = Atomics.exchange(this.core.slots.words, bitmap + w, 0);
          out[w] = bits;
          if (bits !== 0) flush = this.protectMask(s, w, bits) || flush;
        }
      } finally {
        this.core.protectEnd(s.ipa, s.size, flush);
        this.core.lock.writeUnlock();
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
    return this.core.withSlotsLock(() => {
      const s = this.core.logging(id, "clear the dirty log of");
      if ((s.flags & SlotFlag.MANUAL_PROTECT) === 0)
        throw new Stage2Error(
          Errno.INVAL,
          `Cannot clear the dirty log of memslot ${id}: manual protect is off`,
        );
      const pages = s.size / this.core.geo.granule;
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
    const bitmap = this.core.slots.bitmapBase + s.bitmapBase;
    const chunk = Atomics.load(this.core.slots.words, this.core.slots.at(s.id, SlotField.SPLIT_PAGES));
    let cleared = 0;
    let flush = false;
    this.core.lock.writeLock();
    this.core.protectBegin();
    try {
      for (let i = 0; i < numPages; i += 32) {
        const left = numPages - i;
        let m = mask === undefined ? -1 : (mask[i >>> 5] as number) | 0;
        if (left < 32) m &= (1 << left) - 1;
        const w = (firstPage + i) >>> 5;
        // Pairs with markDirty's Atomics.or: a bit set after this and stays set is a later write.
        const bits = Atomics.and(this.core.slots.words, bitmap + w, ~m) & m;
        if (bits === 0) continue;
        cleared += popcount(bits);
        if (chunk > 0) this.splitMaskLocked(s, w, bits);
        flush = this.protectMask(s, w, bits) || flush;
      }
    } finally {
      const page = this.core.geo.granule;
      this.core.protectEnd(s.ipa + firstPage * page, numPages * page, flush);
      this.core.lock.writeUnlock();
      if (chunk > 0) this.core.memcache.drain();
    }
    return cleared;
  }

  /** Write-protects the span from the lowest to the highest set bit of word `w` (as Linux). */
  private protectMask(s: SlotRef, w: number, bits: number): boolean {
    const lo = 31 - Math.clz32(bits & -bits);
    const hi = 31 - Math.clz32(bits);
    const page = this.core.geo.granule;
    const start = s.ipa + (w * 32 + lo) * page;
    wrprotect(this.core.pgt, start, (hi - lo + 1) * page);
    return true;
  }

  /**
   * Eager splitting at clear time (manual protect, log initially set), as Linux: the region
   * around the mask's span aligned to the largest block size, clipped to the slot, so later
   * clears in that region find nothing left to split. Best effort: with the pool dry it stops,
   * and the write-protect that follows covers the blocks left (a write fault splits them), so no
   * cleared bit is ever left unprotected.
   */
  private splitMaskLocked(s: SlotRef, w: number, bits: number): void {
    const lo = 31 - Math.clz32(bits & -bits);
    const hi = 31 - Math.clz32(bits);
    const page = this.core.geo.granule;
    const big = this.core.geo.blockSizes[0] ?? page;
    const start = Math.max(s.ipa, Math.floor((s.ipa + (w * 32 + lo) * page) / big) * big);
    const end = Math.min(s.ipa + s.size, Math.ceil((s.ipa + (w * 32 + hi + 1) * page) / big) * big);
    splitInChunks(this.core, start, end - start, 0, true);
  }

  /** First fit in the bitmap among the ranges of the live logging slots other than `self`. */
  private allocBitmap(words: number, self: number): number {
    const used: [number, number][] = [];
    const r = new SlotRef();
    const n = Atomics.load(this.core.slots.words, SlotWord.USED);
    for (let id = 0; id < n; id++) {
      if (id === self) continue;
      this.core.slots.read(id, r);
      if ((r.flags & SlotFlag.LIVE) !== 0 && r.bitmapBase >= 0)
        used.push([
          r.bitmapBase,
          Atomics.load(this.core.slots.words, this.core.slots.at(id, SlotField.BITMAP_WORDS)),
        ]);
    }
    used.sort((a, b) => a[0] - b[0]);
    let at = 0;
    for (const [base, len] of used) {
      if (base - at >= words) break;
      at = Math.max(at, base + len);
    }
    if (at + words > this.core.slots.bitmapWords)
      throw new RangeError(
        `Cannot enable dirty logging: ${words * 32} pages of bitmap needed, ${(this.core.slots.bitmapWords - at) * 32} free of ${this.core.slots.bitmapWords * 32} (dirtyBitmapPages)`,
      );
    return at;
  }

  private fillBitmap(base: number, pages: number, set: boolean): void {
    const w = this.core.slots.words;
    const at = this.core.slots.bitmapBase + base;
    for (let i = 0; i < pages; i += 32) {
      const left = pages - i;
      Atomics.store(w, at + (i >>> 5), set ? (left >= 32 ? -1 : (1 << left) - 1) : 0);
    }
  }
}

function popcount(x: number): number {
  let n = 0;
  for (let v = x; v !== 0; v &= v - 1) n++;
  return n;
}
