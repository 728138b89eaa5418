/**
 * The memslot table: guest-physical ranges backed by host memory, KVM style, in shared memory so
 * that every vCPU thread sees slots created, moved and deleted by any host thread.
 *
 * A memslot maps [ipa, ipa+size) to host physical [hostPa, hostPa+size). Its backing decides the
 * largest stage-2 mapping a fault may install; dirty logging forces pages and records written
 * pages in the slot's range of the shared dirty bitmap.
 *
 * Shared memory, one SharedArrayBuffer, all Int32 and every access an `Atomics` operation:
 *
 *   word                     writer                               reader
 *   [0]  GEN                 host, under SLOTS_LOCK: +1 before    vCPU lookups, before and after
 *                            and +1 after a change (odd = busy)   copying a slot (seqlock)
 *   [1]  SLOTS_LOCK          host threads (spin-mutex.ts)         host threads
 *   [2]  MMU_SEQ             host, under the write mmu_lock:      faults: before the lookup and
 *                            every invalidation end and memslot   again under the read lock
 *                            change (mmu_invalidate_seq)          (mmu-seq.ts)
 *   [3]  MMU_IN_PROGRESS     host, under the write mmu_lock:      faults, under the read lock
 *                            +1 at invalidate start, -1 at end
 *   [4]  USED                host, inside GEN: entries ever used  host scans [0, USED)
 *   [5]  COUNT               host, inside GEN: live slots         lookups (binary search bound)
 *   [6]  FAULT_WAITERS       host: +1 while waitForFaults waits   tests, diagnostics
 *                            for a fault in flight, then -1
 *   [16 + 16*v] FAULT_SEQ    vCPU v: +1 entering, +1 leaving a    host, waiting for faults in
 *                            fault (odd = in flight)              flight (waitForFaults)
 *   SLOTS_BASE + 16*i        slot entry i, 16 words (64 B):       vCPU lookups (inside GEN)
 *      +0 FLAGS   LIVE | READ_ONLY | LOGGING | MANUAL_PROTECT | backing << BACKING_SHIFT
 *      +1/+2 IPA lo/hi   +3/+4 SIZE lo/hi   +5/+6 HOST_PA lo/hi   (bytes, 2^32 * hi + lo)
 *      +7 BITMAP_BASE (word index into the bitmap, -1 = none)   +8 BITMAP_WORDS
 *      +9 SPLIT_PAGES (eager-split chunk while logging; host only, under SLOTS_LOCK)
 *   ORDER_BASE + k           host, inside GEN: the live slot ids  lookups (binary search)
 *                            sorted by IPA, k < COUNT
 *   BITMAP_BASE_WORD + w     dirty bitmap words: vCPUs set bits   host harvests with
 *                            with Atomics.or (mark_page_dirty)    Atomics.and / exchange
 *
 * Slot entries are written only with GEN odd, so a lookup that read GEN even and finds it
 * unchanged afterwards copied a consistent slot (all loads are SC, so none can move past the
 * second GEN load). Lookups never block: a busy GEN makes them spin until the writer is done.
 */
import { cooperative, RacePoint, racePoint } from "../common/race-points.js";
import type { Geometry } from "../arch/geometry.js";

/** Backings as the KVM selftests spell them (`-s` of dirty_log_perf_test). */
export type Backing = "anonymous" | "anonymous_thp" | "anonymous_hugetlb_2mb" | "anonymous_hugetlb_1gb";
/** Every backing, in the order of their numeric codes. */
export const BACKINGS: readonly Backing[] = [
  "anonymous",
  "anonymous_thp",
  "anonymous_hugetlb_2mb",
  "anonymous_hugetlb_1gb",
];

/** A memslot as the host asks for it. */
export interface MemslotSpec {
  /** Guest physical base (granule aligned). */
  ipa: number;
  /** Bytes (granule aligned; for hugetlb backings a multiple of the huge page). */
  size: number;
  /** Host physical base; defaults to `ipa` (identity), which keeps every block congruent. */
  hostPa?: number;
  backing: Backing;
  readOnly?: boolean;
}

/** The words of the table header; see the layout above. */
export const enum SlotWord {
  GEN = 0,
  SLOTS_LOCK = 1,
  MMU_SEQ = 2,
  MMU_IN_PROGRESS = 3,
  USED = 4,
  COUNT = 5,
  FAULT_WAITERS = 6,
  FAULT_SEQ_BASE = 16,
  /** Words per vCPU fault counter and per slot entry: one 64-byte line each. */
  STRIDE = 16,
}

/** Word offsets inside a slot entry. */
export const enum SlotField {
  FLAGS = 0,
  IPA_LO = 1,
  IPA_HI = 2,
  SIZE_LO = 3,
  SIZE_HI = 4,
  HPA_LO = 5,
  HPA_HI = 6,
  BITMAP_BASE = 7,
  BITMAP_WORDS = 8,
  /** Eager-split chunk of a logging slot, in pages (0 = lazy). Host only, under SLOTS_LOCK. */
  SPLIT_PAGES = 9,
}

/** Bits of a slot's FLAGS word. Read: `flags & X`; written only inside GEN by the host. */
export const enum SlotFlag {
  LIVE = 1 << 0,
  READ_ONLY = 1 << 1,
  /** Dirty logging on: faults map pages and mark written pages. */
  LOGGING = 1 << 2,
  /** KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE: get does not clear; clear re-protects. */
  MANUAL_PROTECT = 1 << 3,
  BACKING_SHIFT = 8,
  BACKING_MASK = 0xf << 8,
}

/** The handle posted to other threads. */
export interface MemslotTableHandle {
  buffer: SharedArrayBuffer;
  capacity: number;
  vcpus: number;
  bitmapWords: number;
  granule: number;
}

const TWO32 = 2 ** 32;

/**
 * A thread's copy of one slot, filled by `lookup` and reused (no allocation on the fault path).
 * Valid until the table's GEN changes.
 */
export class SlotRef {
  id = -1;
  ipa = 0;
  size = 0;
  hostPa = 0;
  flags = 0;
  bitmapBase = -1;
  /** GEN the copy was taken at (even), or -1 when empty. */
  gen = -1;
}

/** Numeric code of a backing name, or -1. */
export function backingCode(name: string): number {
  return BACKINGS.indexOf(name as Backing);
}

/**
 * Largest mapping the backing itself allows: a page (anonymous), the smallest block (THP: a
 * PMD), or the largest block size not above 2 MiB / 1 GiB (hugetlb).
 */
export function backingMapSize(code: number, geo: Geometry): number {
  const sizes = geo.blockSizes;
  if (code === 0 || sizes.length === 0) return geo.granule;
  if (code === 1) return Math.min(...sizes);
  const cap = code === 2 ? 2 ** 21 : 2 ** 30;
  let best: number = geo.granule;
  for (const s of sizes) if (s <= cap && s > best) best = s;
  return best;
}

/**
 * A thread's view of the shared memslot table (layout above). vCPUs call `lookup`, `markDirty` and
 * `faultEdge`; host threads change slots through VmHost, which holds SLOTS_LOCK.
 */
export class MemslotTable {
  readonly words: Int32Array;
  readonly capacity: number;
  readonly vcpus: number;
  /** Capacity of the dirty bitmap in words (32 pages each). */
  readonly bitmapWords: number;
  readonly granule: number;
  /** First word of the slot entries, of the sorted id array and of the bitmap. */
  readonly slotsBase: number;
  readonly orderBase: number;
  readonly bitmapBase: number;
  /** Lookup cache of this thread: the last slot found (KVM's last_used_slot). */
  private readonly last = new SlotRef();

  private constructor(h: MemslotTableHandle) {
    this.words = new Int32Array(h.buffer);
    this.capacity = h.capacity;
    this.vcpus = h.vcpus;
    this.bitmapWords = h.bitmapWords;
    this.granule = h.granule;
    this.slotsBase = SlotWord.FAULT_SEQ_BASE + h.vcpus * SlotWord.STRIDE;
    this.orderBase = this.slotsBase + h.capacity * SlotWord.STRIDE;
    this.bitmapBase = this.orderBase + h.capacity;
  }

  /** Allocates an empty table for `capacity` slots, `vcpus` fault counters and a bitmap of `bitmapPages`. */
  static create(capacity: number, vcpus: number, bitmapPages: number, granule: number): MemslotTable {
    for (const [what, v, max] of [
      ["maxMemslots", capacity, 32768],
      ["dirtyBitmapPages", bitmapPages, 2 ** 31],
    ] as const) {
      if (!Number.isInteger(v) || v < 1 || v > max)
        throw new RangeError(`Cannot create the memslot table: ${what} ${v} is not an integer in 1..${max}`);
    }
    const bitmapWords = Math.ceil(bitmapPages / 32);
    const total = SlotWord.FAULT_SEQ_BASE + (vcpus + capacity) * SlotWord.STRIDE + capacity + bitmapWords;
    const buffer = new SharedArrayBuffer(total * 4);
    return new MemslotTable({ buffer, capacity, vcpus, bitmapWords, granule });
  }

  static attach(handle: MemslotTableHandle): MemslotTable {
    return new MemslotTable(handle);
  }

  get handle(): MemslotTableHandle {
    return {
      buffer: this.words.buffer as SharedArrayBuffer,
      capacity: this.capacity,
      vcpus: this.vcpus,
      bitmapWords: this.bitmapWords,
      granule: this.granule,
    };
  }

  /** Word index of field `f` of slot entry `id`. */
  at(id: number, f: SlotField): number {
    return this.slotsBase + id * SlotWord.STRIDE + f;
  }

  /**
   * vCPU: finds the live slot holding `ipa` and copies it into `out`. Returns the slot id, or -1
   * (an MMIO / unbacked access). Never blocks; spins while a host writer is inside GEN.
   */
  lookup(ipa: number, out: SlotRef): number {
    const w = this.words;
    for (;;) {
      // Pairs with the host's GEN increments in beginChange/endChange.
      const gen = Atomics.load(w, SlotWord.GEN);
      if ((gen & 1) !== 0) continue;
      // The caller's own copy is still current and holds ipa: nothing to read (the fault path).
      if (out.gen === gen && out.id >= 0 && ipa >= out.ipa && ipa < out.ipa + out.size) return out.id;
      const last = this.last;
      if (last.gen === gen && ipa >= last.ipa && ipa < last.ipa + last.size) {
        copyRef(last, out);
        return out.id;
      }
      const id = this.scan(ipa, out);
      out.gen = gen;
      // Pairs with the same increments: an unchanged even GEN means nothing was written meanwhile.
      if (Atomics.load(w, SlotWord.GEN) !== gen) continue;
      if (id >= 0) copyRef(out, last);
      return id;
    }
  }

  /** Binary search of the sorted live slots: O(log slots) loads. */
  private scan(ipa: number, out: SlotRef): number {
    const w = this.words;
    let lo = 0;
    let hi = Atomics.load(w, SlotWord.COUNT) - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const id = Atomics.load(w, this.orderBase + mid);
      const e = this.slotsBase + id * SlotWord.STRIDE;
      const base = read64(w, e + SlotField.IPA_LO);
      if (ipa < base) hi = mid - 1;
      else if (ipa >= base + read64(w, e + SlotField.SIZE_LO)) lo = mid + 1;
      else {
        this.read(id, out);
        return id;
      }
    }
    out.id = -1;
    return -1;
  }

  /** Copies slot `id` into `out` (no GEN check: host side under SLOTS_LOCK, or inside lookup). */
  read(id: number, out: SlotRef): SlotRef {
    const w = this.words;
    const e = this.slotsBase + id * SlotWord.STRIDE;
    out.id = id;
    out.flags = Atomics.load(w, e + SlotField.FLAGS);
    out.ipa = read64(w, e + SlotField.IPA_LO);
    out.size = read64(w, e + SlotField.SIZE_LO);
    out.hostPa = read64(w, e + SlotField.HPA_LO);
    out.bitmapBase = Atomics.load(w, e + SlotField.BITMAP_BASE);
    out.gen = -1;
    return out;
  }

  /** Host: writes slot `id` (call between beginChange and endChange). */
  write(id: number, ipa: number, size: number, hostPa: number, flags: number, bitmap: number, words: number) {
    const w = this.words;
    const e = this.slotsBase + id * SlotWord.STRIDE;
    write64(w, e + SlotField.IPA_LO, ipa);
    write64(w, e + SlotField.SIZE_LO, size);
    write64(w, e + SlotField.HPA_LO, hostPa);
    Atomics.store(w, e + SlotField.BITMAP_BASE, bitmap);
    Atomics.store(w, e + SlotField.BITMAP_WORDS, words);
    Atomics.store(w, e + SlotField.FLAGS, flags);
    if (id >= Atomics.load(w, SlotWord.USED)) Atomics.store(w, SlotWord.USED, id + 1);
  }

  /** Host, inside a change: rebuilds the sorted array of live slot ids that lookups search. */
  reindex(): void {
    const w = this.words;
    const ids: number[] = [];
    const ipa: number[] = [];
    const used = Atomics.load(w, SlotWord.USED);
    for (let id = 0; id < used; id++) {
      const e = this.slotsBase + id * SlotWord.STRIDE;
      if ((Atomics.load(w, e + SlotField.FLAGS) & SlotFlag.LIVE) === 0) continue;
      ids.push(id);
      ipa[id] = read64(w, e + SlotField.IPA_LO);
    }
    ids.sort((a, b) => (ipa[a] as number) - (ipa[b] as number));
    for (let k = 0; k < ids.length; k++) Atomics.store(w, this.orderBase + k, ids[k] as number);
    Atomics.store(w, SlotWord.COUNT, ids.length);
  }

  /** Host: opens a change (GEN odd). Hold SLOTS_LOCK. */
  beginChange(): void {
    // Pairs with the GEN loads in lookup: readers that overlap the change retry.
    Atomics.add(this.words, SlotWord.GEN, 1);
  }

  /** Host: re-sorts the live slots and publishes the change (GEN even again). */
  endChange(): void {
    this.reindex();
    // Pairs with the GEN loads in lookup.
    Atomics.add(this.words, SlotWord.GEN, 1);
  }

  /** vCPU `v`: marks one page of a logging slot dirty (mark_page_dirty_in_slot). */
  markDirty(slot: SlotRef, ipa: number): void {
    const bit = Math.floor((ipa - slot.ipa) / this.granule);
    // Orders nothing: the host harvests with an atomic read-modify-write of the same word.
    Atomics.or(this.words, this.bitmapBase + slot.bitmapBase + (bit >>> 5), 1 << (bit & 31));
  }

  /** vCPU `v` enters (odd) or leaves (even) a fault; see waitForFaults. */
  faultEdge(v: number): void {
    // Pairs with the load in waitForFaults: a fault that began before a change published is seen
    // in flight; one that begins after it reads the changed table (both SC).
    Atomics.add(this.words, SlotWord.FAULT_SEQ_BASE + v * SlotWord.STRIDE, 1);
  }

  /**
   * Reaper: vCPU `v` is dead; if it died inside a fault (counter odd), closes that fault so that
   * waitForFaults() stops waiting for it. Returns whether it did. Never call it for a live vCPU.
   */
  abandonFault(v: number): boolean {
    const at = SlotWord.FAULT_SEQ_BASE + v * SlotWord.STRIDE;
    const seen = Atomics.load(this.words, at);
    if ((seen & 1) === 0) return false;
    // Pairs with waitForFaults' loads, as the dead vCPU's own faultEdge would have.
    if (Atomics.compareExchange(this.words, at, seen, seen + 1) !== seen) return false;
    Atomics.notify(this.words, at);
    return true;
  }

  /**
   * Host: waits until every fault in flight when it was called has left (as synchronize_srcu in
   * kvm_swap_active_memslots). Must not be called by a thread that is itself inside a fault.
   */
  waitForFaults(): void {
    const w = this.words;
    for (let v = 0; v < this.vcpus; v++) {
      const at = SlotWord.FAULT_SEQ_BASE + v * SlotWord.STRIDE;
      const seen = Atomics.load(w, at);
      if ((seen & 1) === 0) continue;
      Atomics.add(w, SlotWord.FAULT_WAITERS, 1);
      let spins = 0;
      // Pairs with faultEdge: the counter moves on once that fault has left.
      while (Atomics.load(w, at) === seen) {
        racePoint(RacePoint.WAIT_LOOP);
        if (++spins > 1024 && !cooperative) Atomics.wait(w, at, seen, 1);
      }
      Atomics.sub(w, SlotWord.FAULT_WAITERS, 1);
    }
  }
}

function copyRef(from: SlotRef, to: SlotRef): void {
  to.id = from.id;
  to.ipa = from.ipa;
  to.size = from.size;
  to.hostPa = from.hostPa;
  to.flags = from.flags;
  to.bitmapBase = from.bitmapBase;
  to.gen = from.gen;
}

function read64(w: Int32Array, at: number): number {
  return Atomics.load(w, at + 1) * TWO32 + (Atomics.load(w, at) >>> 0);
}

function write64(w: Int32Array, at: number, v: number): void {
  Atomics.store(w, at, (v % TWO32) | 0);
  Atomics.store(w, at + 1, Math.floor(v / TWO32));
}

/**
 * Largest mapping a fault at `ipa` in `slot` may install (`backingMax[code]` from backingMapSize,
 * precomputed by the caller): a page while logging; else the
 * backing's size when that block lies inside the slot and IPA and host PA are congruent modulo
 * it; else smaller blocks down to a page.
 */
export function mappingSize(
  slot: SlotRef,
  ipa: number,
  geo: Geometry,
  backingMax: readonly number[],
): number {
  if ((slot.flags & SlotFlag.LOGGING) !== 0) return geo.granule;
  const code = (slot.flags & SlotFlag.BACKING_MASK) >>> SlotFlag.BACKING_SHIFT;
  if (code === 0) return geo.granule;
  const max = backingMax[code] as number;
  const sizes = geo.blockSizes;
  for (let i = 0; i < sizes.length; i++) {
    const size = sizes[i] as number;
    if (size > max) continue;
    const start = Math.floor(ipa / size) * size;
    if (start >= slot.ipa && start + size <= slot.ipa + slot.size && (slot.hostPa - slot.ipa) % size === 0)
      return size;
  }
  return geo.granule;
}
