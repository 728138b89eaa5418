/**
 * Page-table micro-benchmark: one thread, one stage 2 (4K granule, 40-bit IPA: 3 levels from level 1),
 * no RCU, no lock. It measures the cost of the operations themselves:
 *
 *  - map of 1 GiB in 4K pages (one map() call per page, as faults do), exclusive and SHARED (the
 *    compare-and-swap path, with a no-op read-side guard), and with one map() call for the whole GiB
 *    (forcePte: pages only);
 *  - map of 1 GiB in 2M blocks (one call per block);
 *  - unmap of the same, page by page and in one call (memslot_perf_test's two unmap modes), and
 *    block by block;
 *  - get_leaf at random addresses of a GiB populated with 4K pages (a full 3-level walk each);
 *  - table memory per GiB mapped, for 4K pages and for 2M blocks.
 *
 * Every map phase takes its tables from a memory cache filled before the clock starts, so no
 * allocation is timed there. Unmap phases include freeing the tables that become empty (the pool's
 * free-list lock, uncontended). Figures are the best of several rounds after a warm-up, to shed noise
 * from the machine's other core. `quick` maps 64 MiB instead of 1 GiB, in one round (smoke test:
 * table memory is then scaled to a GiB and the figures are noisy).
 */
import { Prot } from "../arch/descriptor.js";
import { Errno } from "../common/errno.js";
import { xorshift32 } from "../common/rng.js";
import { MemCache, PagePool } from "../mem/mod.js";
import { destroy, getLeaf, LeafResult, map, Stage2, unmap, WalkFlag } from "../pgtable/mod.js";
import type { BenchOptions } from "./options.js";

export interface PgtableBenchResult {
  /** Bytes mapped by each phase (1 GiB, or 64 MiB when quick). */
  mappedMiB: number;
  /** One exclusive map() call per 4K page: ns per call (= per page). */
  map4kNsPerPage: number;
  /** The same through a SHARED | HANDLE_FAULT walk (compare-and-swap updates). */
  map4kSharedNsPerPage: number;
  /** One map() call covering the whole range with pages only: ns per 4K page. */
  map4kRangeNsPerPage: number;
  /** One map() call per 2M block: ns per call. */
  map2mNsPerBlock: number;
  /** The same, per 4K page mapped. */
  map2mNsPer4kPage: number;
  /** One unmap() call per 4K page (including the table frees): ns per call. */
  unmap4kNsPerPage: number;
  /** One unmap() call over the whole range of 4K pages: ns per page. */
  unmap4kRangeNsPerPage: number;
  /** One unmap() call per 2M block: ns per call. */
  unmap2mNsPerBlock: number;
  /** getLeaf() at a random address of a range populated with 4K pages: ns per lookup. */
  getLeafNs: number;
  /** Bytes of table pages allocated per GiB mapped with 4K pages (start-level tables excluded). */
  tableBytesPerGiB4k: number;
  /** The same for 2M blocks. */
  tableBytesPerGiB2m: number;
}

const GiB = 2 ** 30;
const PAGE = 4096;
const BLOCK = 2 ** 21;
/** IPA where the benchmark maps (1 GiB aligned) and the PA it maps it to. */
const IPA_BASE = 4 * GiB;
const PA_BASE = 16 * GiB;
const LOOKUPS = 1 << 20;

interface Bench {
  pool: PagePool;
  pgt: Stage2;
  mc: MemCache;
  bytes: number;
  /** Table pages a 4K population of `bytes` needs (L2 + L3 tables). */
  tables4k: number;
}

function setup(bytes: number): Bench {
  const tables4k = Math.ceil(bytes / GiB) + bytes / BLOCK;
  const pool = PagePool.create({ granule: 4096, pages: 2 * tables4k + 64 });
  const pgt = Stage2.create(pool, { granule: 4096, iaBits: 40 });
  return { pool, pgt, mc: new MemCache(pool, tables4k + 8), bytes, tables4k };
}

/** Fills the cache outside the timed region; throws if the pool cannot. */
function fillCache(b: Bench): void {
  if (b.mc.topup(b.mc.capacity) !== Errno.OK) throw new RangeError("pgtable bench: page pool too small");
}

function check(ret: number, what: string): void {
  if (ret !== Errno.OK) throw new Error(`pgtable bench: ${what} failed with status ${ret}`);
}

/** Maps [IPA_BASE, +bytes) with one call per `step` bytes; returns ns per call. */
function timeMapEach(b: Bench, step: number, flags: number): number {
  fillCache(b);
  let bad = 0;
  const end = IPA_BASE + b.bytes;
  const t0 = performance.now();
  for (let ipa = IPA_BASE; ipa < end; ipa += step) {
    bad |= map(b.pgt, ipa, step, PA_BASE + (ipa - IPA_BASE), Prot.RW, b.mc, flags);
  }
  const ns = ((performance.now() - t0) * 1e6) / (b.bytes / step);
  check(bad, "map");
  return ns;
}

/** Unmaps [IPA_BASE, +bytes) with one call per `step` bytes; returns ns per call. */
function timeUnmapEach(b: Bench, step: number): number {
  let bad = 0;
  const end = IPA_BASE + b.bytes;
  const t0 = performance.now();
  for (let ipa = IPA_BASE; ipa < end; ipa += step) bad |= unmap(b.pgt, ipa, step);
  const ns = ((performance.now() - t0) * 1e6) / (b.bytes / step);
  check(bad, "unmap");
  return ns;
}

/** Maps the whole range in one call with pages only; returns ns per page. */
function timeMapRange(b: Bench): number {
  fillCache(b);
  const t0 = performance.now();
  const ret = map(b.pgt, IPA_BASE, b.bytes, PA_BASE, Prot.RW, b.mc, 0, true);
  const ns = ((performance.now() - t0) * 1e6) / (b.bytes / PAGE);
  check(ret, "range map");
  return ns;
}

function timeUnmapRange(b: Bench): number {
  const t0 = performance.now();
  const ret = unmap(b.pgt, IPA_BASE, b.bytes);
  const ns = ((performance.now() - t0) * 1e6) / (b.bytes / PAGE);
  check(ret, "range unmap");
  return ns;
}

/** ns per getLeaf() at the precomputed random addresses (the range must be mapped with pages). */
function timeGetLeaf(b: Bench, addrs: Float64Array, out: LeafResult): number {
  let levels = 0;
  const t0 = performance.now();
  for (let i = 0; i < addrs.length; i++) {
    getLeaf(b.pgt, addrs[i] as number, out);
    levels += out.level;
  }
  const ns = ((performance.now() - t0) * 1e6) / addrs.length;
  if (levels !== 3 * addrs.length)
    throw new Error("pgtable bench: getLeaf found a hole in the populated range");
  return ns;
}

/** Table pages in use beyond the start-level tables (cached pages are not in use). */
function tablePagesInUse(b: Bench): number {
  return b.pool.stats().allocated - b.mc.count - b.pgt.geo.pgdPages;
}

function randomAddresses(bytes: number): Float64Array {
  const addrs = new Float64Array(LOOKUPS);
  let x = 0x2545f491;
  for (let i = 0; i < LOOKUPS; i++) {
    x = xorshift32(x);
    addrs[i] = IPA_BASE + (x % (bytes / PAGE)) * PAGE + (i & 0xfff);
  }
  return addrs;
}

type Timings = Omit<
  PgtableBenchResult,
  "mappedMiB" | "map2mNsPer4kPage" | "tableBytesPerGiB4k" | "tableBytesPerGiB2m"
>;

/** One round of every timed phase; also records table memory. */
function round(b: Bench, addrs: Float64Array, out: LeafResult, memory: number[]): Timings {
  const map4kNsPerPage = timeMapEach(b, PAGE, 0);
  memory[0] = tablePagesInUse(b);
  const getLeafNs = timeGetLeaf(b, addrs, out);
  const unmap4kNsPerPage = timeUnmapEach(b, PAGE);
  const map4kSharedNsPerPage = timeMapEach(b, PAGE, WalkFlag.SHARED | WalkFlag.HANDLE_FAULT);
  const unmap4kRangeNsPerPage = timeUnmapRange(b);
  const map4kRangeNsPerPage = timeMapRange(b);
  timeUnmapRange(b);
  const map2mNsPerBlock = timeMapEach(b, BLOCK, 0);
  memory[1] = tablePagesInUse(b);
  const unmap2mNsPerBlock = timeUnmapEach(b, BLOCK);
  if (tablePagesInUse(b) !== 0) throw new Error("pgtable bench: unmap left tables behind");
  return {
    map4kNsPerPage,
    map4kSharedNsPerPage,
    map4kRangeNsPerPage,
    map2mNsPerBlock,
    unmap4kNsPerPage,
    unmap4kRangeNsPerPage,
    unmap2mNsPerBlock,
    getLeafNs,
  };
}

/** Runs every phase (best of several rounds after a warm-up) and returns plain numbers. */
export function runPgtableBench(opts: BenchOptions = {}): PgtableBenchResult {
  const quick = opts.quick === true;
  const bytes = quick ? 64 * 2 ** 20 : GiB;
  const b = setup(bytes);
  const addrs = randomAddresses(bytes);
  const out = new LeafResult();
  const memory = [0, 0];
  round(b, addrs.subarray(0, LOOKUPS / 8), out, memory); // warm-up: let the JIT settle
  const rounds = quick ? 1 : 4;
  opts.progress?.(0, rounds, "round 1");
  const best = round(b, addrs, out, memory);
  for (let r = 1; r < rounds; r++) {
    opts.progress?.(r, rounds, `round ${r + 1}`);
    const next = round(b, addrs, out, memory);
    for (const k of Object.keys(best) as (keyof Timings)[]) best[k] = Math.min(best[k], next[k]);
  }
  check(destroy(b.pgt), "destroy");
  b.mc.drain();
  if (b.pool.allocatedPages().length !== 0) throw new Error("pgtable bench: pages leaked");
  const perGiB = GiB / bytes;
  return {
    mappedMiB: bytes / 2 ** 20,
    ...best,
    map2mNsPer4kPage: best.map2mNsPerBlock / (BLOCK / PAGE),
    tableBytesPerGiB4k: (memory[0] as number) * PAGE * perGiB,
    tableBytesPerGiB2m: (memory[1] as number) * PAGE * perGiB,
  };
}
