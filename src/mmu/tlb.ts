/**
 * The per-vCPU TLB (leaf translations) and walk cache (table entries) in shared memory (layout.ts),
 * with lookup, fill and invalidation by TLBI kind. Set-associative, round-robin replacement.
 *
 * Only the holder of a vCPU's C.STATE (the vCPU itself inside an access, or a poster servicing
 * it while it is idle) calls the writers here. Hot path: numbers only, no allocation.
 */
import {
  C,
  ctlBase,
  E,
  ENTRY_WORDS,
  type MmuGeometry,
  TlbiKind,
  TTL_NONE,
  TWO32,
  CTL_WORDS,
} from "./layout.js";

/** 2^-32, exact: `x * INV_TWO32` is `x / 2^32`. */
const INV_TWO32 = 2 ** -32;

/** One vCPU's TLB and walk cache inside the shared words. */
export class VcpuTlb {
  readonly words: Int32Array;
  readonly vcpu: number;
  /** Index of the control line. */
  readonly ctl: number;
  readonly tlbBase: number;
  readonly wcBase: number;
  readonly sets: number;
  readonly ways: number;
  readonly wcSets: number;
  readonly wcWays: number;
  /** Bytes mapped by an entry at each level 0..3. */
  readonly levelSizes: readonly number[];
  /**
   * Their reciprocals: `ipa * invSizes[l]` is exactly `ipa / levelSizes[l]` (a power of two's
   * reciprocal is one, so the product is exact), and a multiply is several times cheaper than a
   * divide by a value the compiler cannot see as a constant.
   */
  readonly invSizes: readonly number[];
  /** Leaf levels, deepest first (probe order). */
  readonly leafLevels: readonly number[];
  /** Table levels, deepest first. */
  readonly tableLevels: readonly number[];
  /** Round-robin victim per set (owner-local: a servicer only invalidates, it never fills). */
  private readonly victim: Uint8Array;
  private readonly wcVictim: Uint8Array;

  constructor(
    words: Int32Array,
    g: MmuGeometry,
    vcpu: number,
    levelSizes: readonly number[],
    leafLevels: number[],
    startLevel: number,
  ) {
    this.words = words;
    this.vcpu = vcpu;
    this.ctl = ctlBase(g, vcpu);
    this.tlbBase = this.ctl + CTL_WORDS;
    this.wcBase = this.tlbBase + g.sets * g.ways * ENTRY_WORDS;
    this.sets = g.sets;
    this.ways = g.ways;
    this.wcSets = g.wcSets;
    this.wcWays = g.wcWays;
    this.levelSizes = levelSizes;
    this.invSizes = levelSizes.map((size) => 1 / size);
    this.leafLevels = [...leafLevels].sort((a, b) => b - a);
    const tl: number[] = [];
    for (let l = 2; l >= startLevel; l--) tl.push(l);
    this.tableLevels = tl;
    this.victim = new Uint8Array(g.sets);
    this.wcVictim = new Uint8Array(g.wcSets);
  }

  // --- lookup -----------------------------------------------------------------------------------

  /** Entry index (into words) of the leaf translating `ipa` for `vmid`, or -1. */
  lookupLeaf(vmid: number, ipa: number): number {
    // Fields into locals once: a miss (every first touch) probes up to three levels.
    const w = this.words;
    const levels = this.leafLevels;
    const counts = this.ctl + C.LEAVES_L0;
    const setMask = this.sets - 1;
    const ways = this.ways;
    for (let i = 0; i < levels.length; i++) {
      const level = levels[i] as number;
      if (w[counts + level] === 0) continue;
      const tag = Math.floor(ipa * (this.invSizes[level] as number));
      const lo = tag | 0;
      const meta = 1 | (level << 1);
      let e = this.tlbBase + (lo & setMask) * ways * ENTRY_WORDS;
      for (let way = 0; way < ways; way++, e += ENTRY_WORDS) {
        if (
          w[e + E.TAG_LO] === lo &&
          w[e] === meta &&
          w[e + E.TAG_HI] === Math.floor(tag * INV_TWO32) &&
          w[e + E.VMID] === vmid
        )
          return e;
      }
    }
    return -1;
  }

  /** Entry index of the deepest walk-cache entry (a table entry at some level) for `ipa`, or -1. */
  lookupTable(vmid: number, ipa: number): number {
    const w = this.words;
    const levels = this.tableLevels;
    for (let i = 0; i < levels.length; i++) {
      const level = levels[i] as number;
      const tag = Math.floor(ipa * (this.invSizes[level] as number));
      const lo = tag | 0;
      const hi = Math.floor(tag * INV_TWO32);
      const meta = 1 | (level << 1);
      let e = this.wcBase + ((tag | 0) & (this.wcSets - 1)) * this.wcWays * ENTRY_WORDS;
      for (let way = 0; way < this.wcWays; way++, e += ENTRY_WORDS) {
        if (w[e + E.TAG_LO] === lo && w[e] === meta && w[e + E.TAG_HI] === hi && w[e + E.VMID] === vmid)
          return e;
      }
    }
    return -1;
  }

  // --- fill ---------------------------------------------------------------------------------------

  /**
   * Caches a leaf at `level` for `ipa`: output address (of the block) in 32-bit halves `oaLo`,
   * `oaHi`, as the walker decodes them from the descriptor (no double is made and split again),
   * attributes `attr`.
   */
  fillLeaf(vmid: number, ipa: number, level: number, oaLo: number, oaHi: number, attr: number): void {
    const tag = Math.floor(ipa * (this.invSizes[level] as number));
    const set = (tag | 0) & (this.sets - 1);
    const way = this.victim[set] as number;
    this.victim[set] = way + 1 === this.ways ? 0 : way + 1;
    const e = this.tlbBase + (set * this.ways + way) * ENTRY_WORDS;
    this.dropLeaf(e);
    this.write(e, vmid, level, tag, oaLo, oaHi, attr, 0);
    (this.words[this.ctl + C.LEAVES_L0 + level] as number)++;
  }

  /** Empties leaf entry `e` (if valid), keeping the per-level counts. */
  private dropLeaf(e: number): void {
    const meta = this.words[e] as number;
    if (meta === 0) return;
    this.words[e] = 0;
    (this.words[this.ctl + C.LEAVES_L0 + (meta >>> 1)] as number)--;
  }

  /**
   * Caches a table entry at `level` for `ipa` pointing at table page `page` of generation `gen`.
   * Returns the entry's index.
   */
  fillTable(vmid: number, ipa: number, level: number, page: number, gen: number): number {
    const tag = Math.floor(ipa * (this.invSizes[level] as number));
    const set = (tag | 0) & (this.wcSets - 1);
    const way = this.wcVictim[set] as number;
    this.wcVictim[set] = way + 1 === this.wcWays ? 0 : way + 1;
    const e = this.wcBase + (set * this.wcWays + way) * ENTRY_WORDS;
    this.write(e, vmid, level, tag, page, 0, 0, gen);
    return e;
  }

  private write(
    e: number,
    vmid: number,
    level: number,
    tag: number,
    oaLo: number,
    oaHi: number,
    attr: number,
    aux: number,
  ): void {
    const w = this.words;
    w[e] = 0;
    w[e + E.VMID] = vmid;
    w[e + E.TAG_LO] = tag | 0;
    w[e + E.TAG_HI] = Math.floor(tag * INV_TWO32);
    w[e + E.OA_LO] = oaLo;
    w[e + E.OA_HI] = oaHi;
    w[e + E.ATTR] = attr;
    w[e + E.AUX] = aux;
    w[e] = 1 | (level << 1);
    (w[this.ctl + C.FILLS] as number)++;
  }

  // --- invalidate ---------------------------------------------------------------------------------

  /** Applies one TLBI to this TLB and walk cache. */
  invalidate(kind: number, vmid: number, ipa: number, size: number, ttl: number): void {
    switch (kind) {
      case TlbiKind.IPA:
        this.invalIpa(vmid, ipa, ttl, ttl === TTL_NONE);
        return;
      case TlbiKind.IPA_LAST_LEVEL:
        this.invalIpa(vmid, ipa, ttl, false);
        return;
      case TlbiKind.RANGE:
        this.invalRange(vmid, ipa, size);
        return;
      default:
        this.invalRange(vmid, -1, 0);
    }
  }

  /**
   * Leaves translating `ipa` (only those of level `ttl` when a hint is given: a wrong hint
   * invalidates nothing), and with `tables` every walk-cache entry on the way to it.
   */
  private invalIpa(vmid: number, ipa: number, ttl: number, tables: boolean): void {
    const levels = this.leafLevels;
    for (let i = 0; i < levels.length; i++) {
      const level = levels[i] as number;
      if (ttl !== TTL_NONE && level !== ttl) continue;
      this.invalSet(this.tlbBase, this.sets, this.ways, vmid, level, ipa);
    }
    if (!tables) return;
    const tl = this.tableLevels;
    for (let i = 0; i < tl.length; i++)
      this.invalSet(this.wcBase, this.wcSets, this.wcWays, vmid, tl[i] as number, ipa);
  }

  private invalSet(base: number, sets: number, ways: number, vmid: number, level: number, ipa: number): void {
    const w = this.words;
    const tag = Math.floor(ipa * (this.invSizes[level] as number));
    const lo = tag | 0;
    const hi = Math.floor(tag * INV_TWO32);
    const meta = 1 | (level << 1);
    let e = base + ((tag | 0) & (sets - 1)) * ways * ENTRY_WORDS;
    for (let way = 0; way < ways; way++, e += ENTRY_WORDS) {
      if (w[e + E.TAG_LO] === lo && w[e] === meta && w[e + E.TAG_HI] === hi && w[e + E.VMID] === vmid) {
        if (base === this.tlbBase) this.dropLeaf(e);
        else w[e] = 0;
        (w[this.ctl + C.INVALIDATED] as number)++;
      }
    }
  }

  /** Every entry of `vmid` (-1: any VMID) overlapping [ipa, ipa+size); ipa -1: the whole VMID. */
  private invalRange(vmid: number, ipa: number, size: number): void {
    this.invalAll(this.tlbBase, this.sets * this.ways, vmid, ipa, size);
    this.invalAll(this.wcBase, this.wcSets * this.wcWays, vmid, ipa, size);
  }

  private invalAll(base: number, n: number, vmid: number, ipa: number, size: number): void {
    const w = this.words;
    for (let i = 0, e = base; i < n; i++, e += ENTRY_WORDS) {
      const meta = w[e] as number;
      if (meta === 0 || (vmid >= 0 && w[e + E.VMID] !== vmid)) continue;
      if (ipa >= 0) {
        const span = this.levelSizes[meta >>> 1] as number;
        const start = ((w[e + E.TAG_HI] as number) * TWO32 + ((w[e + E.TAG_LO] as number) >>> 0)) * span;
        if (start >= ipa + size || start + span <= ipa) continue;
      }
      if (base === this.tlbBase) this.dropLeaf(e);
      else w[e] = 0;
      (w[this.ctl + C.INVALIDATED] as number)++;
    }
  }

  /** Drops everything (ring overflow: over-invalidation is always allowed). */
  flushAll(): void {
    this.invalRange(-1, -1, 0);
    (this.words[this.ctl + C.FULL_FLUSHES] as number)++;
  }

  /** Start IPA of the region an entry covers. */
  entryIpa(e: number): number {
    const w = this.words;
    const span = this.levelSizes[(w[e] as number) >>> 1] as number;
    return ((w[e + E.TAG_HI] as number) * TWO32 + ((w[e + E.TAG_LO] as number) >>> 0)) * span;
  }

  /** Output address of an entry (leaf: block/page PA; walk cache: table page index). */
  entryOa(e: number): number {
    const w = this.words;
    return (w[e + E.OA_HI] as number) * TWO32 + ((w[e + E.OA_LO] as number) >>> 0);
  }

  /** Valid entries now cached (a racy snapshot when read from another thread). */
  count(): { leaves: number; tables: number } {
    let leaves = 0;
    let tables = 0;
    for (let i = 0; i < this.sets * this.ways; i++)
      if (Atomics.load(this.words, this.tlbBase + i * ENTRY_WORDS) !== 0) leaves++;
    for (let i = 0; i < this.wcSets * this.wcWays; i++)
      if (Atomics.load(this.words, this.wcBase + i * ENTRY_WORDS) !== 0) tables++;
    return { leaves, tables };
  }
}
