/**
 * Reference model of a stage-2 table for the differential property test (test support, not a test).
 *
 * The model knows nothing of tables, walks or descriptors: it is a map from each leaf's base IPA to
 * what the leaf translates (level, PA, permissions, access flag) or the owner it annotates. Leaves
 * never overlap. Each operation states Linux's semantics directly:
 *
 *  - map picks, at each address, the largest leaf that level, range and PA alignment allow. A bigger
 *    valid leaf covering the address is split level by level, each child keeping its part of the
 *    translation; a bigger owner annotation is dropped (the table replacing it starts empty). Finer
 *    leaves under the new leaf are replaced by it (a collapse unlinks one subtree). An existing leaf
 *    of the same level is kept, and the walk reports AGAIN, when only permissions differ, unless this
 *    map split a block, in which case the caller's permissions win (see ops/map.ts).
 *  - unmap removes every leaf the range touches, whole (a partial block unmap removes the block).
 *  - wrprotect clears W on every valid leaf the range touches; relax adds permissions to the leaf
 *    covering an address (AGAIN when none; EINVAL, unchanged, for X on device memory); mkyoung/clear-young set and clear the access flag.
 *  - split breaks blocks into pages in address order while the memory cache lasts: a whole block at
 *    once when the cache holds enough pages, otherwise one level and then each child from the walk's
 *    address on, stopping with NOMEM when the cache is empty.
 *
 * Each operation also counts the TLB invalidations Linux would issue: one by IPA per valid leaf broken
 * (replaced, split or unmapped), one by range per table unlinked or freed.
 */
import { Prot } from "../src/arch/descriptor.js";
import type { Geometry } from "../src/arch/geometry.js";
import { Errno } from "../src/common/errno.js";

/** One leaf. Leaves are immutable: an update stores a new object (callers may cache by identity). */
export interface MLeaf {
  readonly level: number;
  /** Output address of the leaf's first byte; -1 for an owner annotation. */
  readonly pa: number;
  readonly prot: number;
  readonly young: boolean;
  /** Owner id of an annotation (invalid entry), 0 for a valid leaf. */
  readonly owner: number;
}

/** Result of one model operation: its status and the TLB invalidations it implies. */
export interface MResult {
  ret: number;
  tlbiIpa: number;
  tlbiRange: number;
  /** Subtrees unlinked by map/set_owner (handed to the reclaim hook). */
  unlinked: number;
}

const RWX = Prot.R | Prot.W | Prot.X;

export class Model {
  readonly leaves = new Map<number, MLeaf>();
  readonly size: readonly number[];
  /** Levels that may hold leaves, largest first (block levels, then 3). */
  readonly leafLevels: readonly number[];
  private res: MResult = { ret: Errno.OK, tlbiIpa: 0, tlbiRange: 0, unlinked: 0 };

  constructor(readonly geo: Geometry) {
    this.size = geo.shifts.map((s) => 2 ** s);
    this.leafLevels = [...geo.blockLevels, 3];
  }

  // --- queries ---------------------------------------------------------------------------------

  /** The leaf covering `ipa`, with its base. */
  covering(ipa: number): [number, MLeaf] | undefined {
    for (const level of this.leafLevels) {
      const size = this.size[level]!;
      const base = Math.floor(ipa / size) * size;
      const leaf = this.leaves.get(base);
      if (leaf !== undefined && leaf.level === level) return [base, leaf];
    }
    return undefined;
  }

  /** Leaves overlapping [start, end), in address order. */
  touching(start: number, end: number): [number, MLeaf][] {
    const out: [number, MLeaf][] = [];
    if ((end - start) / this.size[3]! < this.leaves.size) {
      // A short range: look up every place a leaf could start rather than scan every leaf.
      for (const level of this.leafLevels) {
        const size = this.size[level]!;
        for (let base = Math.floor(start / size) * size; base < end; base += size) {
          const leaf = this.leaves.get(base);
          if (leaf !== undefined && leaf.level === level) out.push([base, leaf]);
        }
      }
    } else {
      for (const entry of this.leaves) {
        if (entry[0] < end && entry[0] + this.size[entry[1].level]! > start) out.push(entry);
      }
    }
    return out.sort((a, b) => a[0] - b[0]);
  }

  /** Table pages below the start level that the leaves need (the model keeps no empty tables). */
  tablesBelowStart(): number {
    const keys = new Set<string>();
    for (const [base, leaf] of this.leaves) {
      for (let l = this.geo.startLevel + 1; l <= leaf.level; l++) {
        keys.add(`${l}:${Math.floor(base / this.size[l - 1]!)}`);
      }
    }
    return keys.size;
  }

  // --- operations ------------------------------------------------------------------------------

  /** map (owner = 0) or set_owner (owner > 0, phys ignored) of [start, start + len). */
  map(start: number, len: number, phys: number, prot: number, owner: number, handleFault: boolean): MResult {
    this.begin();
    let splitEnd = 0;
    for (let a = start; a < start + len; ) {
      const pa = owner > 0 ? -1 : phys + (a - start);
      const level = this.targetLevel(a, start + len - a, pa);
      splitEnd = Math.max(splitEnd, this.splitDownTo(a, level));
      const next: MLeaf = { level, pa, prot: owner > 0 ? 0 : prot, young: owner === 0, owner };
      const old = this.leaves.get(a);
      if (old !== undefined && old.level === level) {
        if (!needsUpdate(old, next) && !(a < splitEnd && differs(old, next))) {
          this.res.ret = Errno.AGAIN;
          if (handleFault) return this.res;
        } else {
          if (old.owner === 0) this.res.tlbiIpa++;
          this.leaves.set(a, next);
        }
      } else {
        if (this.removeUnder(a, level)) {
          this.res.tlbiRange++;
          this.res.unlinked++;
        }
        this.leaves.set(a, next);
      }
      a += this.size[level]!;
    }
    if (!handleFault) this.res.ret = Errno.OK; // other walks ignore AGAIN
    return this.res;
  }

  unmap(start: number, len: number): MResult {
    this.begin();
    const tables = this.tablesBelowStart();
    for (const [base, leaf] of this.touching(start, start + len)) {
      if (leaf.owner === 0) this.res.tlbiIpa++;
      this.leaves.delete(base);
    }
    this.res.tlbiRange = tables - this.tablesBelowStart();
    return this.res;
  }

  wrprotect(start: number, len: number): MResult {
    this.begin();
    for (const [base, leaf] of this.touching(start, start + len)) {
      if (leaf.owner === 0) this.leaves.set(base, { ...leaf, prot: leaf.prot & ~Prot.W });
    }
    return this.res;
  }

  relax(ipa: number, prot: number): MResult {
    this.begin();
    const hit = this.covering(ipa);
    if (hit === undefined || hit[1].owner !== 0) {
      this.res.ret = Errno.AGAIN;
      return this.res;
    }
    // Device memory never becomes executable (map refuses device|X): EINVAL, the leaf unchanged.
    if ((prot & Prot.X) !== 0 && (hit[1].prot & Prot.DEVICE) !== 0) {
      this.res.ret = Errno.INVAL;
      return this.res;
    }
    this.leaves.set(hit[0], { ...hit[1], prot: hit[1].prot | (prot & RWX) });
    this.res.tlbiIpa = 1;
    return this.res;
  }

  /** Whether a valid leaf covers `ipa` (then its access flag is set). */
  mkyoung(ipa: number): boolean {
    const hit = this.covering(ipa);
    if (hit === undefined || hit[1].owner !== 0) return false;
    this.leaves.set(hit[0], { ...hit[1], young: true });
    return true;
  }

  /** Whether a valid leaf in the range is young; with `mkold`, makes them all old. */
  clearYoung(start: number, len: number, mkold: boolean): boolean {
    let young = false;
    for (const [base, leaf] of this.touching(start, start + len)) {
      if (leaf.owner !== 0 || !leaf.young) continue;
      young = true;
      if (mkold) this.leaves.set(base, { ...leaf, young: false });
    }
    return young;
  }

  /** split of [start, start + len) with a memory cache holding `cache` pages. */
  split(start: number, len: number, cache: number): MResult {
    this.begin();
    const end = start + len;
    const budget = { pages: cache };
    for (const [base, leaf] of this.touching(start, end)) {
      const ret = this.splitLeaf(base, leaf, Math.max(start, base), end, budget);
      if (ret !== Errno.OK) {
        this.res.ret = ret;
        break;
      }
    }
    return this.res;
  }

  // --- internals -------------------------------------------------------------------------------

  private begin(): void {
    this.res = { ret: Errno.OK, tlbiIpa: 0, tlbiRange: 0, unlinked: 0 };
  }

  /** Largest leaf level whose size fits the remaining range and whose alignment `ipa` and `pa` meet. */
  private targetLevel(ipa: number, remaining: number, pa: number): number {
    for (const level of this.leafLevels) {
      const size = this.size[level]!;
      if (size <= remaining && ipa % size === 0 && (pa < 0 || pa % size === 0)) return level;
    }
    throw new Error("unreachable: a page always fits");
  }

  /**
   * Splits (or drops, for an owner) any bigger leaf covering `ipa` until `level` can hold a leaf there.
   * Returns the end of the largest block split (0 if none): leaves inside it may change permissions.
   */
  private splitDownTo(ipa: number, level: number): number {
    let split = 0;
    for (let hit = this.covering(ipa); hit !== undefined && hit[1].level < level; hit = this.covering(ipa)) {
      if (hit[1].owner !== 0) {
        this.leaves.delete(hit[0]);
        return split;
      }
      split = Math.max(split, hit[0] + this.size[hit[1].level]!);
      this.splitOnce(hit[0], hit[1]);
      this.res.tlbiIpa++;
    }
    return split;
  }

  /** Replaces a block by leaves one level down with the same translation and attributes. */
  private splitOnce(base: number, leaf: MLeaf): void {
    const child = this.size[leaf.level + 1]!;
    const count = this.size[leaf.level]! / child;
    for (let i = 0; i < count; i++) {
      this.leaves.set(base + i * child, { ...leaf, level: leaf.level + 1, pa: leaf.pa + i * child });
    }
  }

  /** Replaces a block by pages. */
  private splitToPages(base: number, leaf: MLeaf): void {
    const page = this.size[3]!;
    const count = this.size[leaf.level]! / page;
    for (let i = 0; i < count; i++) {
      this.leaves.set(base + i * page, { ...leaf, level: 3, pa: leaf.pa + i * page });
    }
  }

  /** Removes every leaf inside [ipa, ipa + size(level)); true if there were finer ones (a table). */
  private removeUnder(ipa: number, level: number): boolean {
    if (level === 3) return false; // a page has nothing under it (the caller handled the one at ipa)
    const end = ipa + this.size[level]!;
    let table = false;
    for (const [base, leaf] of this.touching(ipa, end)) {
      if (leaf.level > level) table = true;
      this.leaves.delete(base);
    }
    return table;
  }

  private splitLeaf(base: number, leaf: MLeaf, from: number, end: number, budget: { pages: number }): number {
    if (leaf.owner !== 0 || leaf.level === 3) return Errno.OK;
    const need = this.pagesToSplit(leaf.level);
    if (budget.pages >= need) {
      budget.pages -= need;
      this.splitToPages(base, leaf);
      this.res.tlbiIpa++;
      return Errno.OK;
    }
    if (budget.pages < 1) return Errno.NOMEM;
    budget.pages--;
    this.splitOnce(base, leaf);
    this.res.tlbiIpa++;
    // The walker descends into the new table at its current address.
    const child = this.size[leaf.level + 1]!;
    for (
      let c = Math.floor(from / child) * child;
      c < Math.min(end, base + this.size[leaf.level]!);
      c += child
    ) {
      const ret = this.splitLeaf(c, this.leaves.get(c)!, Math.max(from, c), end, budget);
      if (ret !== Errno.OK) return ret;
    }
    return Errno.OK;
  }

  private pagesToSplit(level: number): number {
    let pages = 0;
    for (let l = level; l < 3; l++) pages = pages * this.geo.entriesPerPage + 1;
    return pages;
  }
}

/** Linux's stage2_pte_needs_update: anything but the permissions differs. */
function needsUpdate(old: MLeaf, next: MLeaf): boolean {
  if (old.owner !== 0 || next.owner !== 0) return true;
  return (
    old.pa !== next.pa || (old.prot & Prot.DEVICE) !== (next.prot & Prot.DEVICE) || old.young !== next.young
  );
}

function differs(old: MLeaf, next: MLeaf): boolean {
  return needsUpdate(old, next) || old.prot !== next.prot;
}
