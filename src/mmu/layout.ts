/**
 * Shared memory of the vCPU MMU model: one SharedArrayBuffer per VM, viewed as one Int32Array.
 * Everything lives here, so that a checker on any thread can inspect every vCPU's TLB.
 *
 *   word 0                  header (HDR_WORDS)
 *   RING_BASE               TLBI ring: RING_SLOTS slots of RING_STRIDE words
 *   VIOL_BASE               violation records: one line per ViolationKind (VIOL_STRIDE words)
 *   vcpuBase(v)             per vCPU: control line (CTL_WORDS), then the TLB (sets * ways
 *                           entries), then the walk cache (wcSets * wcWays entries),
 *                           ENTRY_WORDS words per entry
 *
 * Header (who writes / who reads):
 *   H.RING_HEAD      next TLBI sequence number; posters claim with Atomics.add, drainers load
 *   H.PENDING        table updates by host threads whose invalidation has not completed yet
 *                    (checker bracket): Atomics.add by updaters, loaded by vCPUs' checks (a vCPU
 *                    thread's own updates count in its control line's C.PENDING)
 *   H.VCPUS .. H.WC_WAYS, H.FLAGS   geometry of the model, written at create, read-only after
 *
 * TLBI ring slot: [PUB, KIND, VMID, IPA_LO, IPA_HI, SIZE_LO, SIZE_HI, TTL, POSTER]. The poster
 * writes the fields then stores PUB = seq + 1 (release); a drainer loads PUB (acquire), reads the
 * fields and loads PUB again: a different value means the slot was reused (the drainer was more
 * than RING_SLOTS behind) and it flushes its whole TLB instead, which over-invalidation allows.
 *
 * Per-vCPU control line:
 *   C.STATE   IDLE / IN_ACCESS (owner's CAS) / servicedBy(poster) (a poster's CAS, to drain on
 *             its behalf: SERVICED with the poster's id + 1 in bits 31:2, so that the death watch
 *             can hand back the vCPUs a dead poster was draining: Mmu.releaseDeadVcpu)
 *   C.ACKED   TLBI sequence this vCPU's TLB has applied: every TLBI < ACKED is complete for it.
 *             Stored by whoever holds STATE (owner in access, or servicer); loaded by posters.
 *   C.HITS .. C.SERVICED       statistics, written by the STATE holder, read by anyone (plain
 *                              increments: a reader's snapshot may lag). C.ACCESSES is not
 *                              written: every access is one hit or one walk (Mmu.vcpuStats)
 *   C.LEAVES_L0 + l            leaves of level l now cached (STATE holder), so that a lookup
 *                              probes only the levels that hold some
 *   C.PENDING  table updates this vCPU's thread began as a TLBI poster and has not ended (the
 *              checker bracket, as H.PENDING): its own word, so that the death watch can close
 *              the updates of a vCPU that died inside one (MmuTlbi.abandonUpdates)
 *
 * TLB entry: [META, VMID, TAG_LO, TAG_HI, OA_LO, OA_HI, ATTR, AUX]. META = 0 when empty, else
 * VALID | level << 1. TAG = ipa / levelSize(level). OA = output address of the block or page
 * (leaves) or table page index (walk cache, in OA_LO). ATTR = the descriptor's low attribute
 * word (S2AP, MemAttr, AF). AUX: the table page's generation (walk cache). Written only by the
 * STATE holder; a checker on another thread reads META last-written-first (racy snapshots).
 */

/** Header words. */
export const enum H {
  RING_HEAD = 0,
  PENDING = 1,
  VCPUS = 2,
  SETS = 3,
  WAYS = 4,
  WC_SETS = 5,
  WC_WAYS = 6,
  FLAGS = 7,
  /** Test-only: bits of MmuBug (deliberately broken variants). */
  BUGS = 8,
}
export const HDR_WORDS = 16;

/** MMU model flags (H.FLAGS). */
export const enum MmuFlag {
  /** Run the checkers on every access (shadow walk of the live table). */
  CHECK = 1,
}

/** TLBI ring. */
export const enum R {
  PUB = 0,
  KIND = 1,
  VMID = 2,
  IPA_LO = 3,
  IPA_HI = 4,
  SIZE_LO = 5,
  SIZE_HI = 6,
  TTL = 7,
  POSTER = 8,
}
export const RING_STRIDE = 16;
export const RING_SLOTS = 256;
export const RING_BASE = HDR_WORDS;

/** Kinds of TLB invalidation (the TLBI instructions KVM uses). */
export const enum TlbiKind {
  /** TLBI IPAS2E1IS: leaves and walk-cache entries for one IPA (TTL hint: leaves of that level only). */
  IPA = 0,
  /** TLBI IPAS2LE1IS: leaves only for one IPA; walk caches keep their table entries. */
  IPA_LAST_LEVEL = 1,
  /** TLBI RIPAS2E1IS: every leaf and walk-cache entry overlapping [ipa, ipa+size). */
  RANGE = 2,
  /** TLBI VMALLS12E1IS: every entry of the VMID. */
  VMID = 3,
}
/** No TTL level hint. */
export const TTL_NONE = -1;

/** What the checkers record. */
export const enum ViolationKind {
  /** Two different valid translations alive for one address (a PTE and a TLB entry). */
  BBM = 0,
  /** A TLB or walk-cache entry used after an invalidation that covers it completed. */
  STALE_TLB = 1,
  /** A hardware walk read a freed table page (directly or through a walk-cache entry). */
  USE_AFTER_FREE = 2,
  /** A write landed through a translation the PTE no longer allows to write. */
  DIRTY_LOG = 3,
  COUNT = 4,
}
/** Printable names of the checkers, indexed by ViolationKind. */
export const VIOLATION_NAMES = ["break-before-make", "stale TLB", "use after free", "dirty log"] as const;

/** A violation line: COUNT (Atomics.add), then the first record, claimed by CAS on CLAIMED. */
export const enum V {
  COUNT = 0,
  CLAIMED = 1,
  VCPU = 2,
  LEVEL = 3,
  IPA_LO = 4,
  IPA_HI = 5,
  CACHED_LO = 6,
  CACHED_HI = 7,
  LIVE_LO = 8,
  LIVE_HI = 9,
  LAST_POSTER = 10,
  WALK_CACHE = 11,
  DONE = 12,
}
export const VIOL_STRIDE = 16;
export const VIOL_BASE = RING_BASE + RING_SLOTS * RING_STRIDE;

/** Per-vCPU control line. */
export const enum C {
  STATE = 0,
  ACKED = 1,
  /** Reserved (accesses are HITS + WALKS, counted by no one). */
  ACCESSES = 2,
  HITS = 3,
  WALKS = 4,
  FAULTS = 5,
  FILLS = 6,
  WC_HITS = 7,
  INVALIDATED = 8,
  FULL_FLUSHES = 9,
  SERVICED = 10,
  /** Leaves cached per level (11 + level): lookups skip levels that hold none. */
  LEAVES_L0 = 11,
  /** Updates this vCPU's thread has begun and not ended (MmuTlbi.updateBegin/End). */
  PENDING = 15,
}
export const CTL_WORDS = 16;

/** vCPU MMU states (C.STATE): a poster's hold is `servicedBy(poster)`, SERVICED in bits 1:0. */
export const enum VState {
  IDLE = 0,
  IN_ACCESS = 1,
  SERVICED = 2,
}

/** C.STATE while `poster` (a vCPU id, or -1 for a host thread) drains a vCPU's TLB for it. */
export function servicedBy(poster: number): number {
  return VState.SERVICED | ((poster + 1) << 2);
}

/** TLB / walk-cache entry words. */
export const enum E {
  META = 0,
  VMID = 1,
  TAG_LO = 2,
  TAG_HI = 3,
  OA_LO = 4,
  OA_HI = 5,
  ATTR = 6,
  AUX = 7,
}
export const ENTRY_WORDS = 8;

/** Sizes of one model. */
export interface MmuGeometry {
  vcpus: number;
  sets: number;
  ways: number;
  wcSets: number;
  wcWays: number;
}

export const VCPU_BASE = VIOL_BASE + ViolationKind.COUNT * VIOL_STRIDE;

export function vcpuStride(g: MmuGeometry): number {
  return CTL_WORDS + (g.sets * g.ways + g.wcSets * g.wcWays) * ENTRY_WORDS;
}

/** Index of vCPU `vcpu`'s control line (its word C.X is at `ctlBase(g, vcpu) + C.X`). */
export function ctlBase(g: MmuGeometry, vcpu: number): number {
  return VCPU_BASE + vcpu * vcpuStride(g);
}

export function totalWords(g: MmuGeometry): number {
  return VCPU_BASE + g.vcpus * vcpuStride(g);
}

export const TWO32 = 4294967296;
