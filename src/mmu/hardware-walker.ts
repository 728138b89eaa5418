/**
 * One vCPU's MMU: its TLB and walk cache, and the hardware walker.
 *
 * `access(ipa, write)` is a guest load or store: a TLB hit, or a walk from the root that
 * VTTBR_EL2 gives (the table's ROOT word) with the geometry that VTCR_EL2 gives (decoded once).
 * The walker decides from one single-copy-atomic read of each descriptor (the whole 64-bit
 * value of a valid one; the low half, which holds the valid bit, of an invalid one) and takes no
 * lock and no RCU read side: only break-before-make and TLB invalidation with completion keep it safe. It raises
 * translation, access-flag and permission faults (never caching the entry that faulted); the
 * caller sends them to the fault handler and retries. Table entries it passes go to the walk
 * cache, the leaf it uses to the TLB.
 *
 * The vCPU holds its C.STATE at IN_ACCESS while it is in the guest (`enterGuest` ..
 * `leaveGuest`: one access, or a run of accesses with nothing blocking between them) and drains
 * the TLBI ring before each access and on the way out (tlbi.ts); faults are handled outside.
 * With checking on, every use of a TLB or walk-cache entry is compared with a shadow walk of the
 * live table (checks below).
 *
 * Hot path: numbers only. An invalid entry is recognised from a 32-bit load of its low half (the
 * valid bit), with no BigInt made; a valid one is read again whole with one 64-bit load, stored
 * at once into this thread's private 8-byte scratch (`snap64`), and decoded from that scratch's
 * two 32-bit halves (`snap32`): one single-copy-atomic read, then plain local reads of a value no
 * other thread can change. The load still makes its BigInt (Node 20 makes one for every 64-bit
 * Atomics.load), but nothing else does (measured: ~7 ns against ~17 ns for masking the BigInt
 * and converting it, which made two more).
 */

import { VTCR_SL0_SHIFT, VTCR_T0SZ_MASK, VTCR_TG0_SHIFT } from "../arch/geometry.js";
import { cooperative, RacePoint, racePoint } from "../common/race-points.js";
import { PageState, type PagePool } from "../mem/mod.js";
import type { Stage2 } from "../pgtable/stage2.js";
import {
  C,
  ctlBase,
  E,
  H,
  MmuFlag,
  R,
  RING_BASE,
  RING_SLOTS,
  RING_STRIDE,
  TWO32,
  V,
  VIOL_BASE,
  VIOL_STRIDE,
  ViolationKind,
  VState,
} from "./layout.js";
import type { Mmu } from "./mmu.js";
import type { VcpuTlb } from "./tlb.js";
import { drainRing, STUCK_MS } from "./tlbi.js";

/** Never notified: Atomics.wait on it is a bounded pause. */
const napWord = new Int32Array(new SharedArrayBuffer(4));

/** What an access ended with. Faults carry `faultLevel`. */
export const enum Access {
  OK = 0,
  TRANSLATION_FAULT = 1,
  PERMISSION_FAULT = 2,
  ACCESS_FLAG_FAULT = 3,
  /** No table (VTTBR has no root: the VM is being torn down). */
  NO_ROOT = 4,
}

const S2AP_R = 1 << 6;
const S2AP_W = 1 << 7;
const AF = 1 << 10;
const MEMATTR = 0xf << 2;
/**
 * A TLB leaf's ATTR holds the descriptor's attribute bits 11:0 and, in bit 12, its XN (bit 54 of
 * the descriptor, outside the low half): an instruction fetch through an XN leaf faults.
 */
const ATTR_XN = 1 << 12;
/** XN (descriptor bit 54) in the high 32-bit half. */
const HI_XN = 1 << (54 - 32);

/** Granule and start level as VTCR_EL2 encodes them (TG0, SL0, T0SZ). */
export function decodeVtcr(vtcr: number): { granule: number; iaBits: number; startLevel: number } {
  const tg0 = (vtcr >>> VTCR_TG0_SHIFT) & 3;
  const granule = tg0 === 0 ? 4096 : tg0 === 1 ? 65536 : 16384;
  const sl0 = (vtcr >>> VTCR_SL0_SHIFT) & 3;
  const startLevel = (granule === 4096 ? 2 : 3) - sl0;
  return { granule, iaBits: 64 - (vtcr & VTCR_T0SZ_MASK), startLevel };
}

/** One vCPU's MMU, used by that vCPU's thread only. */
export class VcpuMmu {
  readonly vcpu: number;
  readonly tlb: VcpuTlb;
  private readonly words: Int32Array;
  private readonly ctl: number;
  private readonly pgt: Stage2;
  private readonly pool: PagePool;
  private readonly ptes: BigInt64Array;
  /** The same memory as 32-bit halves: the low half of descriptor e is pteWords[2e]. */
  private readonly pteWords: Int32Array;
  private readonly vmid: number;
  private readonly granule: number;
  private readonly startLevel: number;
  private readonly rootEntries: number;
  private readonly epp: number;
  private readonly sizes: readonly number[];
  /** 1 / sizes[l], exact (see VcpuTlb.invSizes): the walk's index arithmetic multiplies. */
  private readonly invSizes: readonly number[];
  private readonly leafAllowed: readonly boolean[];
  private readonly oaLoMask: number;
  private readonly check: boolean;
  private readonly poolBase: number;
  private readonly poolPages: number;
  /**
   * Private scratch for one 64-bit descriptor read (never shared): `snap64[0] = Atomics.load(...)`
   * then the halves from `snap32`, little-endian as every typed array here ([0] low, [1] high).
   */
  private readonly snap64 = new BigInt64Array(1);
  private readonly snap32 = new Int32Array(this.snap64.buffer);
  /** Every vCPU's C.PENDING word (the checks' quiet() reads them with H.PENDING). */
  private readonly pendingWords: readonly number[];
  /** Level of the last fault (permission and access-flag faults name the leaf's level). */
  faultLevel = -1;
  /**
   * The IPA of the last walk, if it faulted (-1 once a walk fills the TLB): no leaf for it has
   * been cached since, so its retry skips the TLB lookup (translate).
   */
  private missIpa = -1;
  /** Shadow walk result (checks): the live descriptor's halves and level. */
  private liveLo = 0;
  private liveHi = 0;
  private liveLevel = -1;
  /** The walk-cache entry the last walk started from and the IPA range it covers (a shortcut). */
  private lastWc = -1;
  private lastWcMeta = 0;
  private lastWcTagLo = 0;
  private lastWcStart = 0;
  private lastWcEnd = 0;

  constructor(mmu: Mmu, pgt: Stage2, vcpu: number) {
    const g = decodeVtcr(pgt.geo.vtcr);
    this.vcpu = vcpu;
    this.words = mmu.words;
    this.tlb = mmu.tlbs(pgt)[vcpu] as VcpuTlb;
    this.ctl = this.tlb.ctl;
    this.pgt = pgt;
    this.pool = pgt.pool;
    this.ptes = pgt.ptes;
    this.pteWords = pgt.words;
    this.vmid = pgt.vmid;
    this.granule = g.granule;
    this.startLevel = g.startLevel;
    this.epp = g.granule / 8;
    this.sizes = pgt.levelSizes;
    this.invSizes = this.tlb.invSizes;
    // Concatenated start-level tables: as many as the IPA size needs (computeGeometry's pgdPages).
    this.rootEntries = Math.ceil(2 ** g.iaBits / (this.sizes[g.startLevel] as number));
    this.leafAllowed = pgt.leafAllowed;
    this.oaLoMask =
      g.granule === 4096 ? 0xfffff000 | 0 : g.granule === 16384 ? 0xffffc000 | 0 : 0xffff0000 | 0;
    this.check = (Atomics.load(mmu.words, H.FLAGS) & MmuFlag.CHECK) !== 0;
    this.pendingWords = Array.from(
      { length: mmu.geometry.vcpus },
      (_, v) => ctlBase(mmu.geometry, v) + C.PENDING,
    );
    this.poolBase = pgt.pool.basePa;
    this.poolPages = pgt.pool.pageCount;
    if (this.poolPages * this.epp * 2 > 2 ** 31 - 1)
      throw new RangeError(
        `Cannot model vCPU ${vcpu}'s MMU over ${this.poolPages} table pages: descriptor indices exceed 31 bits`,
      );
  }

  /**
   * A guest access to `ipa` (`exec`: an instruction fetch, which faults on an execute-never leaf).
   * Returns an Access code; on a fault, `faultLevel` says where. The same as `enterGuest()`,
   * `guestAccess()`, `leaveGuest()`.
   */
  access(ipa: number, write: boolean, exec = false): number {
    this.enterGuest();
    try {
      return this.guestAccess(ipa, write, exec);
    } finally {
      // Even on an exception: a vCPU left IN_ACCESS would hold every TLBI poster.
      this.leaveGuest();
    }
  }

  /**
   * The vCPU enters the guest: it takes its C.STATE (IDLE -> IN_ACCESS), so that no poster
   * drains its TLB on its behalf until `leaveGuest()`. Between the two it may make any number
   * of `guestAccess()` calls, as a vCPU runs guest code between loads and stores, and each
   * acknowledges the TLBIs posted so far before it translates.
   *
   * Until `leaveGuest()`, do not block: no fault handler, no lock, no wait. A poster that holds
   * mmu_lock may be waiting for this vCPU's acknowledgement, and this vCPU gives it only at its
   * next access or when it leaves. Leave before handling a fault, and enter again to retry.
   */
  enterGuest(): void {
    // Pairs with a poster's CAS IDLE -> servicedBy() and its release store back to IDLE: once
    // ours succeeds, the poster's drain on our behalf (if any) happened-before, and no other starts.
    if (
      Atomics.compareExchange(this.words, this.ctl + C.STATE, VState.IDLE, VState.IN_ACCESS) !== VState.IDLE
    )
      this.enterContended();
  }

  /**
   * enterGuest() while a poster drains our ring (a few microseconds): retry, then sleep a little
   * between tries. A poster that never gives STATE back is stuck, or its thread died and the
   * death watch has not reaped it: after STUCK_MS this fails loudly instead of spinning forever.
   */
  private enterContended(): void {
    const at = this.ctl + C.STATE;
    let since = 0;
    for (let spins = 1; ; spins++) {
      racePoint(RacePoint.WAIT_LOOP);
      if (spins > 256 && !cooperative) Atomics.wait(napWord, 0, 0, 0.01);
      const state = Atomics.compareExchange(this.words, at, VState.IDLE, VState.IN_ACCESS);
      if (state === VState.IDLE) return;
      if ((spins & 1023) === 0) {
        const now = performance.now();
        if (since === 0) since = now;
        else if (now - since > STUCK_MS) {
          const holder = (state >> 2) - 1;
          const who =
            state === VState.IN_ACCESS
              ? "its state has said IN_ACCESS (entered twice, or an earlier thread of it died in the guest unreaped)"
              : `${holder < 0 ? "a host thread" : `vCPU ${holder}`} has held its TLB (stuck, or its thread is gone and was not reaped)`;
          throw new Error(`vCPU ${this.vcpu} cannot enter the guest: ${who} for ${STUCK_MS / 1000} s`);
        }
      }
    }
  }

  /**
   * One guest load, store or fetch, inside `enterGuest()` .. `leaveGuest()`: acknowledge the
   * TLBIs posted so far (no walk of ours is in flight between two accesses), then a TLB hit or
   * a hardware walk. Returns an Access code; on a fault, `faultLevel` says where.
   */
  guestAccess(ipa: number, write: boolean, exec: boolean): number {
    const w = this.words;
    if (w[H.RING_HEAD] !== w[this.ctl + C.ACKED]) drainRing(w, this.tlb);
    return this.translate(ipa, write, exec);
  }

  /** The vCPU leaves the guest: it acknowledges the TLBIs posted so far and goes IDLE. */
  leaveGuest(): void {
    const w = this.words;
    if (w[H.RING_HEAD] !== w[this.ctl + C.ACKED]) drainRing(w, this.tlb);
    // Release: pairs with a poster's CAS on STATE, which then sees our TLB writes.
    Atomics.store(w, this.ctl + C.STATE, VState.IDLE);
  }

  private translate(ipa: number, write: boolean, exec: boolean): number {
    const w = this.words;
    // The retry of an access whose walk faulted skips the TLB lookup: only this vCPU's own
    // successful walks fill its TLB (a servicer only invalidates), and none has run since that
    // walk missed at this address, so the lookup would miss again.
    const e = ipa === this.missIpa ? -1 : this.tlb.lookupLeaf(this.vmid, ipa);
    if (e < 0) {
      (w[this.ctl + C.WALKS] as number)++;
      return this.walk(ipa, write, exec);
    }
    (w[this.ctl + C.HITS] as number)++;
    const attr = w[e + E.ATTR] as number;
    if (this.check) this.checkLeafUse(e, ipa, write);
    if ((attr & (write ? S2AP_W : S2AP_R)) !== 0 && (!exec || (attr & ATTR_XN) === 0)) return Access.OK;
    this.faultLevel = (w[e] as number) >>> 1;
    (w[this.ctl + C.FAULTS] as number)++;
    return Access.PERMISSION_FAULT;
  }

  /** Acknowledge pending TLBIs while idle (between accesses, e.g. before a long wait). */
  idleAck(): void {
    this.enterGuest();
    this.leaveGuest();
  }

  /*
   * The look at RING_HEAD in guestAccess() and leaveGuest() is a plain read (an `Atomics.load`
   * is a builtin call here, ~8 ns, against ~1 ns): it only decides whether to drain now, and no
   * answer it can give is wrong. An Int32 read does not tear, and it cannot return a value older
   * than one that happens-before it. A head it reads too old leaves a TLBI undrained for now,
   * and that TLBI is not complete: its poster waits for our ACKED. A TLBI that is not complete
   * may still find old translations in use (the architecture allows it). The poster drains on
   * our behalf once we are IDLE (completeTlbi), and our next access or leave drains it if we get
   * there first. drainRing itself loads the head with Atomics.load.
   */

  /** The hardware walk: lockless, from the walk cache's deepest entry or from VTTBR. */
  private walk(ipa: number, write: boolean, exec: boolean): number {
    let level: number;
    let base: number;
    let page: number;
    const wc = this.walkCacheEntry(ipa);
    if (wc >= 0) {
      (this.words[this.ctl + C.WC_HITS] as number)++;
      level = ((this.words[wc] as number) >>> 1) + 1;
      page = this.words[wc + E.OA_LO] as number;
      if (this.check) this.checkTableUse(wc, ipa, page, level - 1);
      base =
        (page * this.epp + ((Math.floor(ipa * (this.invSizes[level] as number)) | 0) & (this.epp - 1))) | 0;
    } else {
      // VTTBR_EL2.BADDR: pairs with setRoot's Atomics.store.
      page = this.pgt.rootPage;
      if (page < 0) return Access.NO_ROOT;
      level = this.startLevel;
      base =
        (page * this.epp +
          ((Math.floor(ipa * (this.invSizes[level] as number)) | 0) & (this.rootEntries - 1))) |
        0;
    }
    // Descriptor indices fit in 31 bits (checked at construction): `| 0` and `<< 1` keep the
    // index arithmetic in integers instead of doubles converted back with checks.
    for (;;) {
      if (this.check && this.pool.state(page) === PageState.FREE)
        this.report(ViolationKind.USE_AFTER_FREE, ipa, level, page, false);
      // An invalid entry faults whatever its other bits hold, and the valid bit lives in the low
      // half: one single-copy-atomic 32-bit read that finds it clear is exactly what a 64-bit read
      // at that instant would conclude (a translation fault), with no BigInt made. This is the
      // common case of a faulting walk (first touch). The read is a plain one: an aligned Int32
      // read does not tear, and it cannot return a value older than a write that happens-before
      // it (this vCPU's own fault handler's, or any that a lock or TLBI ordered before this
      // access). So a clear bit means the entry was invalid at some instant of this walk: a
      // translation fault the architecture allows, at worst one the handler finds already
      // mapped. Nothing is read through it: no acquire is needed, and the Atomics.load builtin
      // call (~8 ns) is saved.
      if (((this.pteWords[base << 1] as number) & 1) === 0)
        return this.fault(Access.TRANSLATION_FAULT, level, ipa);
      // A valid entry is read again whole: one single-copy-atomic 64-bit read into the private
      // scratch, and everything below is decoded from that copy alone (it may differ from the
      // half read above; it is newer). This load pairs with the atomic store or CAS that wrote
      // the entry: a table descriptor read here orders the child table's zeroing before our
      // reads of it.
      this.snap64[0] = Atomics.load(this.ptes, base);
      const lo = this.snap32[0] as number;
      const hi = this.snap32[1] as number;
      if ((lo & 1) === 0) return this.fault(Access.TRANSLATION_FAULT, level, ipa);
      if (level < 3 && (lo & 2) !== 0) {
        const child = this.tablePage(this.oa(lo, hi));
        if (child < 0) return this.fault(Access.TRANSLATION_FAULT, level, ipa);
        // The walk cache's new deepest entry for this region: the next walk starts below it.
        this.remember(
          this.tlb.fillTable(this.vmid, ipa, level, child, this.check ? this.pool.generation(child) : 0),
        );
        level++;
        page = child;
        base =
          (child * this.epp + ((Math.floor(ipa * (this.invSizes[level] as number)) | 0) & (this.epp - 1))) |
          0;
        continue;
      }
      if ((level === 3 && (lo & 2) === 0) || (level < 3 && !this.leafAllowed[level]))
        return this.fault(Access.TRANSLATION_FAULT, level, ipa);
      if ((lo & AF) === 0) return this.fault(Access.ACCESS_FLAG_FAULT, level, ipa);
      if ((lo & (write ? S2AP_W : S2AP_R)) === 0) return this.fault(Access.PERMISSION_FAULT, level, ipa);
      // XN sits in the high half: taken from the same 64-bit read.
      const xn = (hi & HI_XN) !== 0 ? ATTR_XN : 0;
      if (exec && xn !== 0) return this.fault(Access.PERMISSION_FAULT, level, ipa);
      this.tlb.fillLeaf(this.vmid, ipa, level, lo & this.oaLoMask, this.oaHi(lo, hi), (lo & 0xfff) | xn);
      this.missIpa = -1;
      return Access.OK;
    }
  }

  /**
   * The deepest walk-cache entry for `ipa`: the one the last walk used if it still holds the same
   * table entry and covers `ipa` (no probing), else a lookup.
   */
  private walkCacheEntry(ipa: number): number {
    const w = this.words;
    const last = this.lastWc;
    if (
      last >= 0 &&
      ipa >= this.lastWcStart &&
      ipa < this.lastWcEnd &&
      w[last] === this.lastWcMeta &&
      w[last + E.TAG_LO] === this.lastWcTagLo
    )
      return last;
    const wc = this.tlb.lookupTable(this.vmid, ipa);
    if (wc >= 0) this.remember(wc);
    return wc;
  }

  /**
   * Makes walk-cache entry `wc` the shortcut of walkCacheEntry: the deepest one known for its
   * region, whether a lookup found it or this walk just filled it (else the shortcut would keep
   * the shallower entry the region's first walk started from, and every later walk would read
   * and cache the deeper table entry again).
   */
  private remember(wc: number): void {
    const w = this.words;
    this.lastWc = wc;
    this.lastWcMeta = w[wc] as number;
    this.lastWcTagLo = w[wc + E.TAG_LO] as number;
    this.lastWcStart = this.tlb.entryIpa(wc);
    this.lastWcEnd = this.lastWcStart + (this.sizes[this.lastWcMeta >>> 1] as number);
  }

  /** The pool page of a table at `pa`, or -1 outside the pool (pa is granule aligned by the mask). */
  private tablePage(pa: number): number {
    const page = (pa - this.poolBase) / this.granule;
    return page >= 0 && page < this.poolPages ? page : -1;
  }

  /** A walk that faulted at `level`: nothing was cached for `ipa`, so its retry skips the lookup. */
  private fault(kind: Access, level: number, ipa: number): number {
    this.faultLevel = level;
    this.missIpa = ipa;
    (this.words[this.ctl + C.FAULTS] as number)++;
    return kind;
  }

  /** Bits 63:32 of the output address from the descriptor's halves (64K: PA[51:48] in bits 15:12). */
  private oaHi(lo: number, hi: number): number {
    return this.granule === 65536 ? (hi & 0xffff) | (((lo >>> 12) & 0xf) << 16) : hi & 0xffff;
  }

  /** Output address from the descriptor's halves (64K: PA[51:48] in bits 15:12). */
  private oa(lo: number, hi: number): number {
    let pa = ((lo & this.oaLoMask) >>> 0) + (hi & 0xffff) * TWO32;
    if (this.granule === 65536) pa += ((lo >>> 12) & 0xf) * 2 ** 48;
    return pa;
  }

  // --- checks (on with MmuFlag.CHECK) ------------------------------------------------------------

  /**
   * Reads the live descriptor for `ipa` down to `stopLevel` (or to the leaf) the way the hardware
   * would, into liveLo/liveHi/liveLevel. Returns false without a root.
   */
  private shadowWalk(ipa: number, stopLevel: number): boolean {
    let page = this.pgt.rootPage;
    if (page < 0) return false;
    let level = this.startLevel;
    let base =
      page * this.epp + ((Math.floor(ipa * (this.invSizes[level] as number)) | 0) & (this.rootEntries - 1));
    for (;;) {
      this.snap64[0] = Atomics.load(this.ptes, base);
      this.liveLo = this.snap32[0] as number;
      this.liveHi = (this.snap32[1] as number) & 0xffff; // bits 47:32, as reported
      this.liveLevel = level;
      if (level === stopLevel || (this.liveLo & 3) !== 3 || level === 3) return true;
      page = this.pool.paToPage(this.oa(this.liveLo, this.liveHi));
      if (page < 0) return true;
      level++;
      base = page * this.epp + ((Math.floor(ipa * (this.invSizes[level] as number)) | 0) & (this.epp - 1));
    }
  }

  /** True when no update that removes or narrows a translation is in flight (its TLBI not complete). */
  private quiet(): boolean {
    // Pairs with MmuTlbi.updateBegin/End; loaded after the shadow walk read the PTE.
    if (Atomics.load(this.words, H.PENDING) !== 0) return false;
    for (let i = 0; i < this.pendingWords.length; i++)
      if (Atomics.load(this.words, this.pendingWords[i] as number) !== 0) return false;
    return true;
  }

  /** A TLB hit: the live PTE must agree unless its invalidation is still in flight. */
  private checkLeafUse(e: number, ipa: number, write: boolean): void {
    const w = this.words;
    const level = (w[e] as number) >>> 1;
    const cachedPa = this.tlb.entryOa(e) + (ipa - this.tlb.entryIpa(e));
    if (!this.shadowWalk(ipa, 3)) return;
    const lo = this.liveLo;
    const liveLeaf = (lo & 1) === 1 && !(this.liveLevel < 3 && (lo & 2) !== 0);
    if (liveLeaf) {
      const size = this.sizes[this.liveLevel] as number;
      const livePa = this.oa(lo, this.liveHi) + (ipa % size);
      const attr = w[e + E.ATTR] as number;
      if (livePa !== cachedPa || this.liveLevel !== level || (lo & MEMATTR) !== (attr & MEMATTR))
        this.report(ViolationKind.BBM, ipa, level, cachedPa, false);
      else if (write && (attr & S2AP_W) !== 0 && (lo & S2AP_W) === 0 && this.quiet())
        this.report(ViolationKind.DIRTY_LOG, ipa, level, cachedPa, false);
    } else if ((lo & 1) === 1) {
      // A table where the TLB holds a leaf: a different translation structure is live.
      this.report(ViolationKind.BBM, ipa, level, cachedPa, false);
    } else if (this.quiet()) {
      this.report(ViolationKind.STALE_TLB, ipa, level, cachedPa, false);
    }
  }

  /** A walk-cache hit for the table entry at `level`: the table must be live and still linked there. */
  private checkTableUse(e: number, ipa: number, page: number, level: number): void {
    if (!this.pool.isLive(page, this.words[e + E.AUX] as number)) {
      this.report(ViolationKind.USE_AFTER_FREE, ipa, level, page, true);
      return;
    }
    if (!this.shadowWalk(ipa, level)) return;
    const lo = this.liveLo;
    if (this.liveLevel === level && (lo & 3) === 3 && this.pool.paToPage(this.oa(lo, this.liveHi)) === page)
      return;
    if ((lo & 1) === 1) this.report(ViolationKind.BBM, ipa, level, page, true);
    else if (this.quiet()) this.report(ViolationKind.STALE_TLB, ipa, level, page, true);
  }

  /** Counts a finding; the first of each kind is recorded with its address, level and threads. */
  private report(kind: ViolationKind, ipa: number, level: number, cached: number, walkCache: boolean): void {
    const w = this.words;
    const b = VIOL_BASE + kind * VIOL_STRIDE;
    Atomics.add(w, b + V.COUNT, 1);
    if (Atomics.compareExchange(w, b + V.CLAIMED, 0, 1) !== 0) return;
    const head = Atomics.load(w, H.RING_HEAD);
    const last = head > 0 ? RING_BASE + ((head - 1) % RING_SLOTS) * RING_STRIDE : -1;
    w[b + V.VCPU] = this.vcpu;
    w[b + V.LEVEL] = level;
    w[b + V.IPA_LO] = (ipa % TWO32) | 0;
    w[b + V.IPA_HI] = Math.floor(ipa / TWO32);
    w[b + V.CACHED_LO] = (cached % TWO32) | 0;
    w[b + V.CACHED_HI] = Math.floor(cached / TWO32);
    w[b + V.LIVE_LO] = this.liveLo;
    w[b + V.LIVE_HI] = this.liveHi;
    w[b + V.LAST_POSTER] = last >= 0 ? (w[last + R.POSTER] as number) : -2;
    w[b + V.WALK_CACHE] = walkCache ? 1 : 0;
    // Release: pairs with Mmu.violations()'s Atomics.load of DONE.
    Atomics.store(w, b + V.DONE, 1);
  }
}
