/**
 * The vCPU MMU model: per-vCPU TLBs and walk caches in shared memory (tlb.ts), broadcast TLB
 * invalidation with completion (tlbi.ts), and the invalidation side as a `TlbMaintenance`.
 *
 * `Mmu.create({ vcpus })` on the VM's thread; `mmu.handle` travels in the VM handle; every thread
 * that changes the table attaches a `MmuTlbi` (its `pgt.tlb`), each vCPU thread a `VcpuMmu`
 * (hardware-walker.ts) for its own accesses.
 */
import type { TlbMaintenance } from "../arch/maintenance.js";
import type { Stage2 } from "../pgtable/stage2.js";
import {
  C,
  ctlBase,
  H,
  HDR_WORDS,
  MmuFlag,
  type MmuGeometry,
  TlbiKind,
  TTL_NONE,
  totalWords,
  V,
  VIOL_BASE,
  VIOL_STRIDE,
  VIOLATION_NAMES,
  ViolationKind,
  servicedBy,
  VState,
} from "./layout.js";
import { VcpuTlb } from "./tlb.js";
import { completeTlbi, postTlbi } from "./tlbi.js";

/** How to size the model. */
export interface MmuOptions {
  vcpus: number;
  /** TLB sets and ways per vCPU (default 64 x 4). */
  sets?: number;
  ways?: number;
  /** Walk-cache sets and ways per vCPU (default 16 x 2). */
  wcSets?: number;
  wcWays?: number;
  /** Run the checkers on every access (default false). */
  check?: boolean;
}

/** Structured-cloneable: post it to every thread of the VM. */
export interface MmuHandle {
  words: SharedArrayBuffer;
  geometry: MmuGeometry;
}

/** One checker finding. */
export interface Violation {
  kind: (typeof VIOLATION_NAMES)[number];
  count: number;
  vcpu: number;
  level: number;
  ipa: number;
  /** What the TLB / walk cache held (output address, or table page for the walk cache). */
  cached: number;
  /** The live descriptor at the time (hex). */
  live: string;
  /** Thread that posted the latest TLBI before the finding (vCPU id, or -1 for the host). */
  lastPoster: number;
  walkCache: boolean;
}

/** The shared state of one VM's MMU model. */
export class Mmu {
  readonly words: Int32Array;
  readonly geometry: MmuGeometry;

  private constructor(words: Int32Array, geometry: MmuGeometry) {
    this.words = words;
    this.geometry = geometry;
  }

  static create(o: MmuOptions): Mmu {
    const g: MmuGeometry = {
      vcpus: o.vcpus,
      sets: o.sets ?? 64,
      ways: o.ways ?? 4,
      wcSets: o.wcSets ?? 16,
      wcWays: o.wcWays ?? 2,
    };
    for (const [k, v] of Object.entries(g))
      if (!Number.isInteger(v) || v < 1 || v > 4096) throw new RangeError(`MMU ${k} ${v} is not in 1..4096`);
    // Set indices are masks: sets must be powers of two.
    for (const k of ["sets", "wcSets"] as const)
      if ((g[k] & (g[k] - 1)) !== 0) throw new RangeError(`MMU ${k} ${g[k]} is not a power of two`);
    const words = new Int32Array(new SharedArrayBuffer(totalWords(g) * 4));
    words[H.VCPUS] = g.vcpus;
    words[H.SETS] = g.sets;
    words[H.WAYS] = g.ways;
    words[H.WC_SETS] = g.wcSets;
    words[H.WC_WAYS] = g.wcWays;
    words[H.FLAGS] = o.check ? MmuFlag.CHECK : 0;
    return new Mmu(words, g);
  }

  static attach(h: MmuHandle): Mmu {
    return new Mmu(new Int32Array(h.words), h.geometry);
  }

  get handle(): MmuHandle {
    return { words: this.words.buffer as SharedArrayBuffer, geometry: this.geometry };
  }

  get checking(): boolean {
    return (Atomics.load(this.words, H.FLAGS) & MmuFlag.CHECK) !== 0;
  }

  /**
   * The death watch's part for a vCPU whose thread died. IN_ACCESS left by a thread killed inside
   * a guest access would make every later TLBI wait for an acknowledgement that never comes (the
   * poster drains a vCPU's ring on its behalf only while it is IDLE): it goes back to IDLE, and the
   * dead vCPU's TLB is never used again. And a vCPU thread is also a TLBI poster (its own breaks):
   * killed while it drained another vCPU's ring (`servicedBy(vcpu)`), it would leave that vCPU
   * unable to enter the guest ever again. Those go back to IDLE too; the owner drains its ring
   * itself at its next entry (applying a TLBI twice is harmless). Returns how many states it
   * released. Call only once the thread is dead: a live owner's own exit stores IDLE.
   */
  releaseDeadVcpu(vcpu: number): number {
    const own = ctlBase(this.geometry, vcpu) + C.STATE;
    // Pairs with posters' CAS IDLE -> servicedBy(), as the owner's exit store does.
    let n =
      Atomics.compareExchange(this.words, own, VState.IN_ACCESS, VState.IDLE) === VState.IN_ACCESS ? 1 : 0;
    const held = servicedBy(vcpu);
    for (let v = 0; v < this.geometry.vcpus; v++) {
      // Pairs with the owner's CAS IDLE -> IN_ACCESS in enterGuest(), which now succeeds.
      if (
        Atomics.compareExchange(this.words, ctlBase(this.geometry, v) + C.STATE, held, VState.IDLE) === held
      )
        n++;
    }
    return n;
  }

  /** A view of every vCPU's TLB for `pgt`'s geometry (for draining and inspection). */
  tlbs(pgt: Stage2): VcpuTlb[] {
    const leafLevels = [0, 1, 2, 3].filter((l) => l >= pgt.geo.startLevel && pgt.leafAllowed[l]);
    return Array.from(
      { length: this.geometry.vcpus },
      (_, v) => new VcpuTlb(this.words, this.geometry, v, pgt.levelSizes, leafLevels, pgt.geo.startLevel),
    );
  }

  /** Checker findings so far, one per kind that fired (first occurrence and count). */
  violations(): Violation[] {
    const out: Violation[] = [];
    const w = this.words;
    for (let k = 0; k < ViolationKind.COUNT; k++) {
      const b = VIOL_BASE + k * VIOL_STRIDE;
      const count = Atomics.load(w, b + V.COUNT);
      if (count === 0) continue;
      const done = Atomics.load(w, b + V.DONE) === 1;
      const num = (hi: V, lo: V) => (w[b + hi] as number) * 2 ** 32 + ((w[b + lo] as number) >>> 0);
      out.push({
        kind: VIOLATION_NAMES[k] as Violation["kind"],
        count,
        vcpu: done ? (w[b + V.VCPU] as number) : -1,
        level: done ? (w[b + V.LEVEL] as number) : -1,
        ipa: done ? num(V.IPA_HI, V.IPA_LO) : -1,
        cached: done ? num(V.CACHED_HI, V.CACHED_LO) : -1,
        live: done ? `0x${num(V.LIVE_HI, V.LIVE_LO).toString(16)}` : "?",
        lastPoster: done ? (w[b + V.LAST_POSTER] as number) : -1,
        walkCache: done && w[b + V.WALK_CACHE] === 1,
      });
    }
    return out;
  }

  /** Per-vCPU statistics (a snapshot). */
  vcpuStats(
    pgt: Stage2,
  ): { accesses: number; hits: number; walks: number; faults: number; serviced: number }[] {
    return this.tlbs(pgt).map((t) => {
      const hits = Atomics.load(this.words, t.ctl + C.HITS);
      const walks = Atomics.load(this.words, t.ctl + C.WALKS);
      return {
        // Every access is a hit or a walk: the vCPU counts those two only.
        accesses: hits + walks,
        hits,
        walks,
        faults: Atomics.load(this.words, t.ctl + C.FAULTS),
        serviced: Atomics.load(this.words, t.ctl + C.SERVICED),
      };
    });
  }
}

/** Checker findings of every kind so far, summed: cheap enough to poll after each operation. */
export function violationTotal(words: Int32Array): number {
  let n = 0;
  // Pairs with the checkers' Atomics.add on each kind's COUNT.
  for (let k = 0; k < ViolationKind.COUNT; k++)
    n += Atomics.load(words, VIOL_BASE + k * VIOL_STRIDE + V.COUNT);
  return n;
}

/** One line per finding: kind, address, level, threads. */
export function formatViolation(v: Violation): string {
  const where = v.walkCache ? "walk-cache entry" : "TLB entry";
  return `${v.kind}: ${v.count} time(s); first: vCPU ${v.vcpu} used a ${where} for IPA 0x${v.ipa.toString(16)} at level ${v.level} (cached 0x${v.cached.toString(16)}, live PTE ${v.live}); latest TLBI posted by ${v.lastPoster < 0 ? "the host" : `vCPU ${v.lastPoster}`}`;
}

export { HDR_WORDS };

/**
 * The invalidation side, for one thread: every call posts one TLBI to every vCPU and waits for
 * its completion. Counts go on to `inner` (the table's CountingMaintenance).
 */
export class MmuTlbi implements TlbMaintenance {
  readonly words: Int32Array;
  private readonly tlbs: VcpuTlb[];
  private readonly inner: TlbMaintenance;
  /** Who posts (vCPU id, or -1 for a host thread): recorded in each TLBI for the reports. */
  readonly poster: number;

  /** Where this poster counts its open updates: H.PENDING for a host thread, else its C.PENDING. */
  private readonly pendingAt: number;
  private readonly geometry: MmuGeometry;

  constructor(mmu: Mmu, pgt: Stage2, inner: TlbMaintenance, poster: number) {
    this.words = mmu.words;
    this.tlbs = mmu.tlbs(pgt);
    this.inner = inner;
    this.poster = poster;
    this.geometry = mmu.geometry;
    this.pendingAt = poster < 0 ? H.PENDING : ctlBase(mmu.geometry, poster) + C.PENDING;
  }

  private post(kind: TlbiKind, vmid: number, ipa: number, size: number, ttl: number): void {
    const seq = postTlbi(this.words, kind, vmid, ipa, size, ttl, this.poster);
    completeTlbi(this.words, this.tlbs, seq, this.poster);
  }

  flushIpa(vmid: number, ipa: number, level: number): void {
    this.inner.flushIpa(vmid, ipa, level);
    this.post(TlbiKind.IPA, vmid, ipa, 0, level);
  }

  flushIpaLastLevel(vmid: number, ipa: number, level: number): void {
    this.inner.flushIpaLastLevel(vmid, ipa, level);
    this.post(TlbiKind.IPA_LAST_LEVEL, vmid, ipa, 0, level);
  }

  flushRange(vmid: number, ipa: number, size: number): void {
    this.inner.flushRange(vmid, ipa, size);
    this.post(TlbiKind.RANGE, vmid, ipa, size, TTL_NONE);
  }

  flushVmid(vmid: number): void {
    this.inner.flushVmid(vmid);
    this.post(TlbiKind.VMID, vmid, 0, 0, TTL_NONE);
  }

  updateBegin(): void {
    // Pairs with the Atomics.loads in the vCPUs' checks (hardware-walker.ts, quiet()): an update
    // counted here is still in flight for them.
    Atomics.add(this.words, this.pendingAt, 1);
  }

  updateEnd(): void {
    Atomics.sub(this.words, this.pendingAt, 1);
  }

  abandonUpdates(vcpu: number): void {
    this.inner.abandonUpdates(vcpu);
    // The dead vCPU's open updates are over (repaired and invalidated): checks may report again.
    Atomics.store(this.words, ctlBase(this.geometry, vcpu) + C.PENDING, 0);
  }
}
