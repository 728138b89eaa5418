/**
 * Memslots: guest-physical ranges backed by host memory, KVM style, with a dirty bitmap.
 *
 * A memslot maps [ipa, ipa+size) to host physical [hostPa, hostPa+size). Its backing decides the
 * largest stage-2 mapping a fault may install (anonymous: pages; thp: 2 MiB-class blocks;
 * hugetlb: the largest block level). Dirty logging forces page mappings and records written pages.
 *
 * Shared memory, one SharedArrayBuffer per memslot set:
 *
 *   Int32Array flags[nslots]     bit 0: dirty logging on. Written by the host under the write
 *                                mmu_lock (and before wrprotect), read by vCPUs under the read lock,
 *                                so the lock orders it.
 *   Int32Array bitmap[...]       one bit per page of every slot, slot i's words from bitmapBase[i].
 *                                vCPUs set bits with Atomics.or; the host harvests with
 *                                Atomics.exchange(word, 0) (get+clear dirty log).
 */
import type { Geometry } from "../arch/geometry.js";

export type Backing = "anonymous" | "thp" | "hugetlb";
export const BACKINGS: readonly Backing[] = ["anonymous", "thp", "hugetlb"];

export interface MemslotSpec {
  ipa: number;
  size: number;
  hostPa: number;
  backing: Backing;
  readOnly?: boolean;
}

export interface MemslotsHandle {
  specs: MemslotSpec[];
  buffer: SharedArrayBuffer;
  pageSize: number;
}

const LOGGING = 1;

export class Memslots {
  readonly specs: readonly MemslotSpec[];
  readonly pageSize: number;
  readonly flags: Int32Array;
  readonly bitmap: Int32Array;
  private readonly bitmapBase: number[] = [];

  private constructor(handle: MemslotsHandle) {
    this.specs = handle.specs;
    this.pageSize = handle.pageSize;
    const n = handle.specs.length;
    this.flags = new Int32Array(handle.buffer, 0, n);
    let words = 0;
    for (const s of handle.specs) {
      this.bitmapBase.push(words);
      words += Math.ceil(s.size / handle.pageSize / 32);
    }
    this.bitmap = new Int32Array(handle.buffer, n * 4, words);
  }

  /** Validates the slots against the geometry (alignment, IPA range, overlap) and allocates the bitmap. */
  static create(specs: MemslotSpec[], geo: Geometry): Memslots {
    const page = geo.granule;
    const sorted = [...specs].sort((a, b) => a.ipa - b.ipa);
    sorted.forEach((s, i) => {
      const where = `memslot ${i} [0x${s.ipa.toString(16)}, +0x${s.size.toString(16)})`;
      if (s.ipa % page || s.size % page || s.hostPa % page || s.size <= 0) {
        throw new RangeError(`Cannot create ${where}: IPA, size and host PA must be ${page}-byte aligned`);
      }
      if (s.ipa + s.size > geo.ipaSize)
        throw new RangeError(`Cannot create ${where}: exceeds the ${geo.iaBits}-bit IPA space`);
      const prev = sorted[i - 1];
      if (prev && prev.ipa + prev.size > s.ipa)
        throw new RangeError(`Cannot create ${where}: overlaps another memslot`);
    });
    let words = 0;
    for (const s of sorted) words += Math.ceil(s.size / page / 32);
    const buffer = new SharedArrayBuffer((sorted.length + words) * 4);
    return new Memslots({ specs: sorted, buffer, pageSize: page });
  }

  static attach(handle: MemslotsHandle): Memslots {
    return new Memslots(handle);
  }

  get handle(): MemslotsHandle {
    return {
      specs: [...this.specs],
      buffer: this.flags.buffer as SharedArrayBuffer,
      pageSize: this.pageSize,
    };
  }

  /** Index of the slot holding `ipa`, or -1 (an MMIO / unbacked access). */
  find(ipa: number): number {
    const specs = this.specs;
    for (let i = 0; i < specs.length; i++) {
      const s = specs[i] as MemslotSpec;
      if (ipa >= s.ipa && ipa < s.ipa + s.size) return i;
    }
    return -1;
  }

  logging(slot: number): boolean {
    return (Atomics.load(this.flags, slot) & LOGGING) !== 0;
  }

  /** Host: turn dirty logging on or off. Call with the write mmu_lock held. */
  setLogging(slot: number, on: boolean): void {
    if (on) Atomics.or(this.flags, slot, LOGGING);
    else Atomics.and(this.flags, slot, ~LOGGING);
  }

  /** vCPU: record a write to `ipa` (mark_page_dirty). */
  markDirty(slot: number, ipa: number): void {
    const s = this.specs[slot] as MemslotSpec;
    const bit = Math.floor((ipa - s.ipa) / this.pageSize);
    Atomics.or(this.bitmap, (this.bitmapBase[slot] as number) + (bit >>> 5), 1 << (bit & 31));
  }

  /** Host: harvests and clears the slot's dirty pages; returns their IPAs' page indices within the slot. */
  harvestDirty(slot: number): number[] {
    const s = this.specs[slot] as MemslotSpec;
    const base = this.bitmapBase[slot] as number;
    const words = Math.ceil(s.size / this.pageSize / 32);
    const out: number[] = [];
    for (let w = 0; w < words; w++) {
      let bits = Atomics.exchange(this.bitmap, base + w, 0);
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        out.push(w * 32 + b);
        bits &= bits - 1;
      }
    }
    return out;
  }

  /**
   * Largest mapping a fault at `ipa` in `slot` may install: the backing's block size when the
   * block lies inside the slot and IPA and host PA are congruent modulo it; else a page.
   */
  mappingSize(slot: number, ipa: number, geo: Geometry): number {
    const s = this.specs[slot] as MemslotSpec;
    if (s.backing === "anonymous" || this.logging(slot)) return geo.granule;
    const sizes = geo.blockSizes;
    // thp backs only the smallest block size (2 MiB with 4K pages); hugetlb may use any.
    for (let i = s.backing === "hugetlb" ? 0 : sizes.length - 1; i < sizes.length; i++) {
      const size = sizes[i] as number;
      const start = Math.floor(ipa / size) * size;
      if (start >= s.ipa && start + size <= s.ipa + s.size && (s.hostPa - s.ipa) % size === 0) return size;
    }
    return geo.granule;
  }
}
