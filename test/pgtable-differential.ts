/**
 * The differential property behind test/pgtable-differential*.test.ts (test support, not a test).
 *
 * fast-check generates sequences of stage-2 operations over a small region of a small IPA space, with
 * addresses drawn so that they keep hitting the same tables and blocks: map (single leaves through the
 * fault path's HANDLE_FAULT, and multi-page ranges through an exclusive walk; pages, blocks, collapses
 * of page tables into blocks), set_owner, unmap, wrprotect, relax_perms, mkyoung, test_clear_young
 * and split with a small memory cache. Every operation runs on the real table and on the reference
 * model (pgtable-model.ts). After each step:
 *  - the status codes, the TLB invalidations by kind and the subtrees unlinked agree;
 *  - the independent auditor finds no problem (refcount = 1 + non-zero entries, nothing locked...),
 *    no table page is unaccounted for, and no empty table is left behind;
 *  - the table's leaves are exactly the model's, descriptor for descriptor;
 *  - getLeaf() translates every touched address and a few sampled ones like the model (PA = leaf OA
 *    + offset within the leaf).
 * At the end the table is destroyed and every page must be back in the pool.
 *
 * Replay: the seed is printed; STAGE2_SEED=<seed> reruns the same sequences, and STAGE2_SEED_PATH
 * (printed on failure) jumps straight to the shrunk counterexample.
 */
import fc from "fast-check";
import { leafAttrs, makeLeafPte, makeOwnerPte, Prot, type Pte, S2_AF } from "../src/arch/descriptor.js";
import { computeGeometry, type Granule } from "../src/arch/geometry.js";
import { Errno, errnoName } from "../src/common/errno.js";
import { MemCache } from "../src/mem/mod.js";
import {
  destroy,
  freeSubtreeNow,
  map,
  mkyoung,
  relaxPerms,
  type ReclaimHook,
  type Stage2,
  setOwner,
  split,
  testClearYoung,
  unmap,
  WalkFlag,
  wrprotect,
} from "../src/pgtable/mod.js";
import { seedFromEnv, xorshift32 } from "../src/common/rng.js";
import {
  auditTree,
  type Fixture,
  makeFixture,
  strayPages,
  translate,
} from "../src/testing/pgtable-harness.js";
import { type MLeaf, type MResult, Model } from "./pgtable-model.js";

export interface DiffConfig {
  name: string;
  granule: Granule;
  iaBits: number;
  paBits: number;
  /** The ops touch [regionBase, regionBase + regionSize) (plus at most two largest blocks after it). */
  regionBase: number;
  regionSize: number;
  /** PA = IPA + delta; each delta is aligned to the largest block. */
  paDeltas: number[];
  pages: number;
}

const G = 2 ** 30;

/**
 * The configurations the property runs on: 4K with 1G and 2M blocks; 4K/32 with its 4 concatenated
 * start-level pages; 16K/40 with 16 concatenated start pages (the region crosses from the first to
 * the second); 64K/44 with 52-bit PAs (output addresses above 2^48 use descriptor bits 15:12).
 */
export const DIFF_CONFIGS: readonly DiffConfig[] = [
  {
    name: "4K/36",
    granule: 4096,
    iaBits: 36,
    paBits: 48,
    regionBase: 2 * G,
    regionSize: 2 * G,
    paDeltas: [4 * G, 0, 2 ** 40],
    pages: 1024,
  },
  {
    name: "4K/32",
    granule: 4096,
    iaBits: 32,
    paBits: 40,
    regionBase: G - 2 ** 22,
    regionSize: 2 ** 23,
    paDeltas: [2 * G, 0],
    pages: 1024,
  },
  {
    name: "16K/40",
    granule: 16384,
    iaBits: 40,
    paBits: 48,
    regionBase: 64 * G - 2 ** 26,
    regionSize: 2 ** 27,
    paDeltas: [2 ** 40, 0],
    pages: 1024,
  },
  {
    name: "64K/44",
    granule: 65536,
    iaBits: 44,
    paBits: 52,
    regionBase: 4096 * G - G,
    regionSize: 2 * G,
    paDeltas: [2 ** 48, 0, 2 ** 50],
    pages: 512,
  },
];

export type Op =
  | { kind: "map"; addr: number; len: number; delta: number; prot: number; shared: boolean }
  | { kind: "mapRange"; addr: number; len: number; delta: number; prot: number }
  | { kind: "owner"; addr: number; len: number; owner: number }
  | { kind: "unmap" | "wrprotect"; addr: number; len: number }
  | { kind: "split"; addr: number; len: number; cache: number }
  | { kind: "relax"; addr: number; prot: number }
  | { kind: "mkyoung"; addr: number }
  | { kind: "clearYoung"; addr: number; len: number; mkold: boolean };

const MAP_PROTS = [
  Prot.R,
  Prot.RW,
  Prot.R | Prot.X,
  Prot.RWX,
  Prot.W,
  Prot.R | Prot.DEVICE,
  Prot.RW | Prot.DEVICE,
];

/** Leaf sizes of the configuration, largest block first, the page last. */
function leafSizes(cfg: DiffConfig): number[] {
  return [...computeGeometry(cfg.granule, cfg.iaBits, cfg.paBits).blockSizes, cfg.granule];
}

/** Addresses aligned to sizes[depth]: a few indices at every level, so ops keep meeting. */
function addrArb(cfg: DiffConfig, sizes: number[], depth: number): fc.Arbitrary<number> {
  const parts: fc.Arbitrary<number>[] = [fc.integer({ min: 0, max: cfg.regionSize / sizes[0]! - 1 })];
  for (let i = 1; i <= depth; i++) {
    const n = sizes[i - 1]! / sizes[i]!;
    parts.push(
      fc.oneof(
        { arbitrary: fc.constantFrom(0, 1, 2, n - 1), weight: 5 },
        { arbitrary: fc.integer({ min: 0, max: n - 1 }), weight: 1 },
      ),
    );
  }
  return fc.tuple(...parts).map((idx) => idx.reduce((a, k, i) => a + k * sizes[i]!, cfg.regionBase));
}

/** An address aligned to some leaf size, and that size. */
function alignedArb(cfg: DiffConfig, sizes: number[]): fc.Arbitrary<{ addr: number; size: number }> {
  return fc
    .integer({ min: 0, max: sizes.length - 1 })
    .chain((d) => addrArb(cfg, sizes, d).map((addr) => ({ addr, size: sizes[d]! })));
}

function lenArb(sizes: number[]): fc.Arbitrary<number> {
  const page = sizes[sizes.length - 1]!;
  return fc.oneof(
    fc.constantFrom(1, 2, 3, 9).map((n) => n * page),
    fc.constantFrom(...sizes),
    fc.constant(2 * sizes[0]!),
  );
}

export function opArb(cfg: DiffConfig): fc.Arbitrary<Op> {
  const sizes = leafSizes(cfg);
  const page = sizes[sizes.length - 1]!;
  const pageAddr = addrArb(cfg, sizes, sizes.length - 1);
  // Mostly one delta, so that maps often meet the translation already there.
  const delta = fc.oneof(
    { arbitrary: fc.constant(cfg.paDeltas[0]!), weight: 3 },
    { arbitrary: fc.constantFrom(...cfg.paDeltas), weight: 1 },
  );
  const prot = fc.constantFrom(...MAP_PROTS);
  const blockPages = sizes[sizes.length - 2]! / page;
  const rangePages = blockPages <= 2048 ? [1, 2, 3, 8, blockPages + 2] : [1, 2, 3, 8, 40];
  // A single leaf, as the fault path maps; the PA is sometimes aligned only one level down.
  const mapOp = fc
    .record({ at: alignedArb(cfg, sizes), delta, skew: fc.boolean(), prot, shared: fc.boolean() })
    .map(({ at, delta, skew, prot, shared }): Op => {
      const i = sizes.indexOf(at.size);
      const misalign = skew && i + 1 < sizes.length ? sizes[i + 1]! : 0;
      return { kind: "map", addr: at.addr, len: at.size, delta: delta + misalign, prot, shared };
    });
  // Collapse: a block over whatever is there, with the translation most maps use.
  const collapseOp = fc
    .record({ addr: fc.integer({ min: 0, max: sizes.length - 2 }).chain((d) => addrArb(cfg, sizes, d)) })
    .chain(({ addr }) =>
      fc
        .constantFrom(...sizes.slice(0, -1).filter((s) => addr % s === 0))
        .map(
          (len): Op => ({ kind: "map", addr, len, delta: cfg.paDeltas[0]!, prot: Prot.RW, shared: false }),
        ),
    );
  const range = fc.record({ addr: pageAddr, len: lenArb(sizes) });
  return fc.oneof(
    { arbitrary: mapOp, weight: 6 },
    { arbitrary: collapseOp, weight: 2 },
    {
      arbitrary: fc
        .record({ addr: pageAddr, n: fc.constantFrom(...rangePages), delta, skew: fc.boolean(), prot })
        .map(
          ({ addr, n, delta, skew, prot }): Op => ({
            kind: "mapRange",
            addr,
            len: n * page,
            delta: delta + (skew ? page : 0),
            prot,
          }),
        ),
      weight: 2,
    },
    {
      arbitrary: fc
        .record({ at: alignedArb(cfg, sizes), owner: fc.integer({ min: 1, max: 3 }) })
        .map(({ at, owner }): Op => ({ kind: "owner", addr: at.addr, len: at.size, owner })),
      weight: 1,
    },
    { arbitrary: range.map((r): Op => ({ kind: "unmap", ...r })), weight: 3 },
    { arbitrary: range.map((r): Op => ({ kind: "wrprotect", ...r })), weight: 2 },
    {
      arbitrary: fc
        .record({ addr: pageAddr, prot: fc.integer({ min: 0, max: 7 }) })
        .map((r): Op => ({ kind: "relax", ...r })),
      weight: 2,
    },
    {
      arbitrary: fc
        .record({ at: alignedArb(cfg, sizes), len: lenArb(sizes), cache: fc.integer({ min: 1, max: 6 }) })
        .map(({ at, len, cache }): Op => ({ kind: "split", addr: at.addr, len, cache })),
      weight: 2,
    },
    { arbitrary: pageAddr.map((addr): Op => ({ kind: "mkyoung", addr })), weight: 1 },
    {
      arbitrary: fc
        .record({ addr: pageAddr, len: lenArb(sizes), mkold: fc.boolean() })
        .map((r): Op => ({ kind: "clearYoung", ...r })),
      weight: 2,
    },
  );
}

export function describeOp(op: Op): string {
  const hex = (n: number) => `0x${n.toString(16)}`;
  const parts = Object.entries(op)
    .filter(([k]) => k !== "kind")
    .map(
      ([k, v]) =>
        `${k}=${typeof v === "number" && k !== "prot" && k !== "cache" && k !== "owner" ? hex(v) : v}`,
    );
  return `${op.kind}(${parts.join(", ")})`;
}

/** Frees unlinked subtrees at once and counts them: safe here, the test has one thread. */
class ImmediateReclaim implements ReclaimHook {
  calls = 0;
  freeUnlinked(pgt: Stage2, page: number, level: number): void {
    this.calls++;
    freeSubtreeNow(pgt, page, level);
  }
}

class Mismatch extends Error {}

function check(ok: boolean, what: () => string): void {
  if (!ok) throw new Mismatch(what());
}

/** Runs one op on the table; returns its status (for mkyoung/clearYoung, 1 = true, 0 = false). */
function runOp(fx: Fixture, op: Op): number {
  const { pgt, mc } = fx;
  switch (op.kind) {
    case "map": {
      mc.topup(mc.capacity);
      const flags = WalkFlag.HANDLE_FAULT | (op.shared ? WalkFlag.SHARED : 0);
      return map(pgt, op.addr, op.len, op.addr + op.delta, op.prot, mc, flags);
    }
    case "mapRange":
      mc.topup(mc.capacity);
      return map(pgt, op.addr, op.len, op.addr + op.delta, op.prot, mc);
    case "owner":
      mc.topup(mc.capacity);
      return setOwner(pgt, op.addr, op.len, mc, op.owner);
    case "unmap":
      return unmap(pgt, op.addr, op.len);
    case "wrprotect":
      return wrprotect(pgt, op.addr, op.len);
    case "relax":
      return relaxPerms(pgt, op.addr, op.prot);
    case "mkyoung":
      return mkyoung(pgt, op.addr) !== 0n ? 1 : 0;
    case "clearYoung":
      return testClearYoung(pgt, op.addr, op.len, op.mkold) ? 1 : 0;
    case "split": {
      const cache = new MemCache(pgt.pool, op.cache);
      cache.topup(op.cache);
      const ret = split(pgt, op.addr, op.len, cache);
      cache.drain();
      return ret;
    }
  }
}

function runModel(model: Model, op: Op): MResult {
  const none = { tlbiIpa: 0, tlbiRange: 0, unlinked: 0 };
  switch (op.kind) {
    case "map":
      return model.map(op.addr, op.len, op.addr + op.delta, op.prot, 0, true);
    case "mapRange":
      return model.map(op.addr, op.len, op.addr + op.delta, op.prot, 0, false);
    case "owner":
      return model.map(op.addr, op.len, -1, 0, op.owner, false);
    case "unmap":
      return model.unmap(op.addr, op.len);
    case "wrprotect":
      return model.wrprotect(op.addr, op.len);
    case "relax":
      return model.relax(op.addr, op.prot);
    case "mkyoung":
      return { ret: model.mkyoung(op.addr) ? 1 : 0, ...none };
    case "clearYoung":
      return { ret: model.clearYoung(op.addr, op.len, op.mkold) ? 1 : 0, ...none };
    case "split":
      return model.split(op.addr, op.len, op.cache);
  }
}

/** Descriptors already computed for model leaves (leaves are immutable, so identity is the key). */
const pteCache = new WeakMap<MLeaf, Pte>();

/** The exact descriptor the model expects for the leaf at `base`. */
function expectedPte(model: Model, base: number, granule: Granule): Pte {
  const leaf = model.leaves.get(base)!;
  let pte = pteCache.get(leaf);
  if (pte === undefined) {
    const attrs = leafAttrs(leaf.prot) & ~(leaf.young ? 0n : S2_AF);
    pte = leaf.owner !== 0 ? makeOwnerPte(leaf.owner) : makeLeafPte(leaf.pa, attrs, leaf.level, granule);
    pteCache.set(leaf, pte);
  }
  return pte;
}

function compareTables(fx: Fixture, model: Model): void {
  const { pgt, mc } = fx;
  const audit = auditTree(pgt, true);
  check(audit.problems.length === 0, () => `audit: ${audit.problems.join("; ")}`);
  check(
    strayPages(pgt, audit, mc.count) === 0,
    () => `${strayPages(pgt, audit, mc.count)} table pages leaked`,
  );
  check(audit.emptyTables === 0, () => `${audit.emptyTables} empty tables left linked`);
  const expected = [...model.leaves.keys()].sort((a, b) => a - b);
  check(audit.leaves.length === expected.length, () => {
    const got = new Set(audit.leaves.map((l) => l.ipa));
    const extra = audit.leaves.filter((l) => !model.leaves.has(l.ipa)).slice(0, 3);
    const missing = expected.filter((b) => !got.has(b)).slice(0, 3);
    return `table has ${audit.leaves.length} leaves, model ${expected.length}; extra ${JSON.stringify(
      extra.map((l) => [l.ipa.toString(16), l.level]),
    )}, missing ${missing.map((b) => b.toString(16))}`;
  });
  for (let i = 0; i < expected.length; i++) {
    const leaf = audit.leaves[i]!;
    const base = expected[i]!;
    const want = expectedPte(model, base, pgt.geo.granule);
    check(
      leaf.ipa === base && leaf.level === model.leaves.get(base)!.level && leaf.pte === want,
      () =>
        `leaf at 0x${leaf.ipa.toString(16)} L${leaf.level} pte 0x${BigInt.asUintN(64, leaf.pte).toString(16)}; ` +
        `model: 0x${base.toString(16)} ${JSON.stringify(model.leaves.get(base))} pte 0x${want.toString(16)}`,
    );
  }
}

function compareTranslation(pgt: Stage2, model: Model, ipa: number): void {
  if (ipa < 0 || ipa >= pgt.geo.ipaSize) return;
  const t = translate(pgt, ipa);
  const hit = model.covering(ipa);
  const leaf = hit?.[1];
  const wantPa = leaf !== undefined && leaf.owner === 0 ? leaf.pa + (ipa - hit![0]) : -1;
  check(
    t.pa === wantPa && (leaf === undefined || t.level === leaf.level),
    () =>
      `getLeaf(0x${ipa.toString(16)}): L${t.level} PA 0x${t.pa.toString(16)}; model ${JSON.stringify(leaf)}`,
  );
}

/** Runs one sequence on a fresh table and model; throws a Mismatch describing the first difference. */
export function runSequence(cfg: DiffConfig, ops: Op[], probe: number): void {
  const reclaim = new ImmediateReclaim();
  const fx = makeFixture({
    granule: cfg.granule,
    iaBits: cfg.iaBits,
    paBits: cfg.paBits,
    pages: cfg.pages,
    env: { reclaim },
  });
  const { pgt } = fx;
  const model = new Model(pgt.geo);
  const page = cfg.granule;
  let rng = probe >>> 0 || 1;
  for (let step = 0; step < ops.length; step++) {
    const op = ops[step]!;
    try {
      const tlb = pgt.maint.counts();
      const calls = reclaim.calls;
      const got = runOp(fx, op);
      const want = runModel(model, op);
      const after = pgt.maint.counts();
      check(got === want.ret, () => `returned ${name(op, got)}, model ${name(op, want.ret)}`);
      const tlbi = [after.tlbiIpa - tlb.tlbiIpa, after.tlbiRange - tlb.tlbiRange];
      check(
        tlbi[0] === want.tlbiIpa && tlbi[1] === want.tlbiRange,
        () => `TLBIs by IPA/range ${tlbi}, model ${[want.tlbiIpa, want.tlbiRange]}`,
      );
      check(
        reclaim.calls - calls === want.unlinked,
        () => `${reclaim.calls - calls} subtrees unlinked, model ${want.unlinked}`,
      );
      compareTables(fx, model);
      const end = "len" in op ? op.addr + op.len : op.addr + page;
      for (const ipa of [op.addr - page, op.addr, op.addr + page, end - page, end])
        compareTranslation(pgt, model, ipa);
      for (let i = 0; i < 4; i++) {
        rng = xorshift32(rng);
        compareTranslation(pgt, model, cfg.regionBase + (rng % (cfg.regionSize / 97)) * 97);
      }
    } catch (err) {
      if (err instanceof Mismatch) throw new Mismatch(`step ${step} ${describeOp(op)}: ${err.message}`);
      throw err;
    }
  }
  fx.mc.drain();
  const destroyed = destroyAndCount(fx);
  check(destroyed === 0, () => `${destroyed} pages left allocated after destroy: ${fx.pool.leakReport()}`);
}

function name(op: Op, code: number): string {
  return op.kind === "mkyoung" || op.kind === "clearYoung" ? String(code === 1) : errnoName(code);
}

function destroyAndCount(fx: Fixture): number {
  const code = destroy(fx.pgt);
  check(code === Errno.OK, () => `destroy returned ${errnoName(code)}`);
  return fx.pool.allocatedPages().length;
}

/** The seed of this process's runs: STAGE2_SEED when set (decimal or 0x hex), else random. */
export const diffSeed = seedFromEnv;

/**
 * Checks the property for `numRuns` sequences of up to `maxOps` ops. Throws with the seed, the
 * replay command and fast-check's shrunk counterexample on failure.
 */
export function checkDifferential(cfg: DiffConfig, seed: number, numRuns: number, maxOps: number): void {
  const path = process.env.STAGE2_SEED_PATH;
  const property = fc.property(
    fc.array(opArb(cfg), { minLength: 1, maxLength: maxOps, size: "max" }),
    fc.integer(),
    (ops, probe) => runSequence(cfg, ops, probe),
  );
  const details = fc.check(property, { seed: seed | 0, numRuns, ...(path ? { path } : {}) });
  if (details.failed) {
    const replay = `STAGE2_SEED=${seed} STAGE2_SEED_PATH=${details.counterexamplePath}`;
    const cause =
      details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    throw new Error(
      `${cfg.name}: differential check failed (replay with ${replay})\n${cause}\n${fc.defaultReportMessage(details)}`,
    );
  }
}
