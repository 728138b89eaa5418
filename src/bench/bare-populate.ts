/**
 * The floor of the fault path: a bare, single-threaded populate loop over the same geometry as the
 * faults benchmark, in the same process and run (issue 11's `rawNsPerPage`).
 *
 * Per 4K page it does what any stage-2 populate must do and nothing else: walk from the root, one
 * `Atomics.load` of a 64-bit descriptor per level, a new table from a bump pointer where an entry
 * is empty (published with one compare-and-swap, as a shared walk would), and one compare-and-swap
 * of the leaf from 0. No lock, no RCU, no memslot, no memory cache, no refcounts, no statistics:
 * the figure it gives is what the JavaScript runtime itself costs for this table shape.
 *
 * Memory: one SharedArrayBuffer of `tablePages` pages, viewed as a BigInt64Array (like the page
 * pool's `ptes`); page 0..pgdPages-1 is the start-level table, the rest handed out in order. Only
 * this thread touches it, so nothing here pairs with anything: the atomics are there because the
 * real path needs them and their cost is part of the floor.
 */
import { computeGeometry, type Granule } from "../arch/geometry.js";
import { leafAttrs, Prot } from "../arch/descriptor.js";

/** A populated bare table, reusable for several timed rounds (cleared between them). */
export class BarePopulate {
  readonly granule: number;
  private readonly entries: BigInt64Array;
  private readonly epp: number;
  private readonly startLevel: number;
  private readonly rootEntries: number;
  /** Bytes mapped by one entry at each level 0..3. */
  private readonly sizes: readonly number[];
  private readonly pgdPages: number;
  private readonly pageCount: number;
  private readonly leafBits: bigint;
  private readonly basePa: number;
  private bump = 0;

  /**
   * A table for populating `bytes` from `start` with `granule` pages in an `iaBits` IPA space.
   * Throws RangeError when the range does not fit the IPA space.
   */
  constructor(granule: Granule, iaBits: number, bytes: number, start: number) {
    const geo = computeGeometry(granule, iaBits);
    if (start < 0 || start + bytes > geo.ipaSize)
      throw new RangeError(
        `Cannot populate 0x${start.toString(16)}+${bytes}: beyond the ${iaBits}-bit IPA space`,
      );
    this.granule = granule;
    this.epp = granule / 8;
    this.startLevel = geo.startLevel;
    this.sizes = geo.shifts.map((s) => 2 ** s);
    this.pgdPages = geo.pgdPages;
    this.rootEntries = geo.pgdPages * this.epp;
    // Tables below the start level: one per block of each level the range touches, plus slack.
    let pages = geo.pgdPages;
    for (let l = geo.startLevel + 1; l <= 3; l++)
      pages += Math.ceil(bytes / (this.sizes[l - 1] as number)) + 1;
    this.pageCount = pages;
    this.entries = new BigInt64Array(new SharedArrayBuffer(pages * granule));
    this.leafBits = leafAttrs(Prot.RW) | 3n; // page descriptor: valid | page
    this.basePa = 0x4000_0000;
    this.bump = geo.pgdPages;
  }

  /** Table pages handed out so far (start level included). */
  get tablePages(): number {
    return this.bump;
  }

  /** Empties the table (between rounds). */
  reset(): void {
    this.entries.fill(0n);
    this.bump = this.pgdPages;
  }

  /**
   * Maps every page of [start, start+bytes) once, output address = IPA + 1 TiB. Returns the number
   * of pages mapped (every one: the table starts empty).
   */
  populate(start: number, bytes: number): number {
    const entries = this.entries;
    const epp = this.epp;
    const page = this.granule;
    let mapped = 0;
    for (let ipa = start; ipa < start + bytes; ipa += page) {
      let level = this.startLevel;
      // Indices as masks of ToInt32 (exact low bits of an integral double), as the walkers do.
      let idx = (Math.floor(ipa / (this.sizes[level] as number)) | 0) & (this.rootEntries - 1);
      for (; level < 3; level++) {
        let pte = Atomics.load(entries, idx);
        if (pte === 0n) pte = this.newTable(idx);
        const child = (Number(pte & 0xffff_ffff_f000n) - this.basePa) / page;
        idx = child * epp + ((Math.floor(ipa / (this.sizes[level + 1] as number)) | 0) & (epp - 1));
      }
      const leaf = BigInt(ipa + 2 ** 40) | this.leafBits;
      if (Atomics.compareExchange(entries, idx, 0n, leaf) === 0n) mapped++;
    }
    return mapped;
  }

  /** A zeroed table from the bump pointer, linked into entry `idx` with one compare-and-swap. */
  private newTable(idx: number): bigint {
    if (this.bump >= this.pageCount) throw new RangeError("bare populate: table pages exhausted");
    const pte = BigInt(this.basePa + this.bump++ * this.granule) | 3n;
    Atomics.compareExchange(this.entries, idx, 0n, pte);
    return pte;
  }

  /** The descriptor that translates `ipa` (0n when unmapped), read back for tests. */
  lookup(ipa: number): bigint {
    let idx = (Math.floor(ipa / (this.sizes[this.startLevel] as number)) | 0) & (this.rootEntries - 1);
    for (let level = this.startLevel; level < 3; level++) {
      const pte = Atomics.load(this.entries, idx);
      if (pte === 0n) return 0n;
      const child = (Number(pte & 0xffff_ffff_f000n) - this.basePa) / this.granule;
      idx = child * this.epp + ((Math.floor(ipa / (this.sizes[level + 1] as number)) | 0) & (this.epp - 1));
    }
    return Atomics.load(this.entries, idx);
  }
}

/**
 * Times `rounds` bare populates of `bytes` (after one untimed warm-up) and returns wall ns per
 * page of each round, in order; process CPU ns per page of each round go to `cpu` if given.
 */
export function timeBarePopulate(
  granule: Granule,
  iaBits: number,
  bytes: number,
  start: number,
  rounds: number,
  cpu?: number[],
): number[] {
  const bare = new BarePopulate(granule, iaBits, bytes, start);
  const pages = bytes / granule;
  const out: number[] = [];
  for (let r = 0; r <= rounds; r++) {
    bare.reset();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const mapped = bare.populate(start, bytes);
    const ns = ((performance.now() - t0) * 1e6) / pages;
    const c = process.cpuUsage(c0);
    if (mapped !== pages) throw new Error(`bare populate mapped ${mapped} of ${pages} pages`);
    if (r > 0) {
      out.push(ns);
      cpu?.push(((c.user + c.system) * 1e3) / pages);
    }
  }
  return out;
}
