/**
 * Test support for the page-table suites (not a test file itself).
 *
 * - `makeFixture`: a debug page pool, a stage-2 table and a memory cache in one call.
 * - `auditTree`: an auditor independent of walk.ts. It reads `pool.ptes` directly from the root down
 *   (plain reads: call it only while no walker runs) and checks that every reachable table page is a
 *   live TABLE page of the right level, reached once, whose refcount is 1 + its non-zero entries; that
 *   no entry is left locked or holds garbage; that every leaf sits at a level that allows it, with
 *   the right type bits and an aligned output address; and that nothing lies beyond the IPA space.
 *   It also lists every leaf (valid or owner annotation) with its IPA, for comparisons with a model.
 * - `assertNoLeak`: destroy the table, drain the cache, and require every page back in the pool.
 */
import assert from "node:assert/strict";
import {
  decodeOa,
  leafProt,
  type Pte,
  PTE_TYPE_MASK,
  PTE_TYPE_PAGE,
  pteIsCounted,
  pteIsLocked,
  pteIsTable,
  pteValid,
} from "../arch/descriptor.js";
import { blockAllowedAt, type Granule } from "../arch/geometry.js";
import { Errno, errnoName } from "../common/errno.js";
import { MemCache, PagePool, PageState } from "../mem/mod.js";
import { destroy, getLeaf, LeafResult, Stage2, type Stage2Env } from "../pgtable/mod.js";

/** Options of makeFixture(); every field has a small default. */
export interface FixtureOptions {
  granule?: Granule;
  iaBits?: number;
  paBits?: number;
  /** Pool size in pages (default 1024). */
  pages?: number;
  /** Memory cache capacity (default 16); the cache starts empty. */
  cache?: number;
  /** Physical address of pool page 0 (default the pool's, 1 GiB). */
  basePa?: number;
  env?: Stage2Env;
}

/** A debug pool, a table over it (use-after-free checks on) and an empty memory cache. */
export interface Fixture {
  pool: PagePool;
  pgt: Stage2;
  mc: MemCache;
}

/** Builds a Fixture (4K granule, 36-bit IPA, 1024 pages unless told otherwise). */
export function makeFixture(opts: FixtureOptions = {}): Fixture {
  const granule = opts.granule ?? 4096;
  const pool = PagePool.create({ granule, pages: opts.pages ?? 1024, debug: true, basePa: opts.basePa });
  const pgt = Stage2.create(
    pool,
    { granule, iaBits: opts.iaBits ?? 36, paBits: opts.paBits ?? 48 },
    { checkUaf: true, ...opts.env },
  );
  return { pool, pgt, mc: new MemCache(pool, opts.cache ?? 16) };
}

/** One leaf as the auditor found it: a valid block or page, or an invalid entry with an owner. */
export interface AuditedLeaf {
  ipa: number;
  level: number;
  pte: Pte;
}

/** What auditTree() found. */
export interface TreeAudit {
  /** Reachable table pages, start-level pages included. */
  tables: number;
  /** Non-root tables with no entry at all (legal, but ops that leave none can assert it). */
  emptyTables: number;
  leaves: AuditedLeaf[];
  problems: string[];
}

class Auditor {
  readonly out: TreeAudit = { tables: 0, emptyTables: 0, leaves: [], problems: [] };
  private readonly seen = new Set<number>();

  constructor(
    private readonly pgt: Stage2,
    private readonly collect: boolean,
  ) {}

  problem(text: string): void {
    if (this.out.problems.length < 20) this.out.problems.push(text);
  }

  /** Audits `count` consecutive entries of table page(s) from `page`, translating from `ipa`. */
  table(page: number, level: number, ipa: number, count: number): void {
    const { pgt } = this;
    const pool = pgt.pool;
    const where = `table page ${page} (L${level}, IPA 0x${ipa.toString(16)})`;
    if (this.seen.has(page)) {
      this.problem(`${where} is reachable twice`);
      return;
    }
    this.seen.add(page);
    this.out.tables += Math.ceil(count / this.pgt.entriesPerPage); // concatenated start pages count each
    if (pool.state(page) !== PageState.TABLE) this.problem(`${where} is in state ${pool.state(page)}`);
    if (pool.level(page) !== level) this.problem(`${where} has level ${pool.level(page)} in its metadata`);
    const size = pgt.levelSizes[level] as number;
    const base = page * pgt.entriesPerPage;
    const perPage = pgt.entriesPerPage;
    let nonZero = 0;
    for (let i = 0; i < count; i++) {
      // Concatenated start-level pages: check each page's refcount at its boundary.
      if (i > 0 && i % perPage === 0) {
        this.refcount(page + i / perPage - 1, nonZero, where);
        nonZero = 0;
      }
      const pte = pgt.ptes[base + i] as bigint;
      if (pte === 0n) continue;
      nonZero++;
      this.entry(pte, level, ipa + i * size, `${where} entry ${i}`);
    }
    this.refcount(page + Math.ceil(count / perPage) - 1, nonZero, where);
    if (nonZero === 0 && level > pgt.geo.startLevel) this.out.emptyTables++;
  }

  private refcount(page: number, nonZero: number, where: string): void {
    const ref = this.pgt.pool.refcount(page);
    if (ref !== 1 + nonZero) this.problem(`${where}: page ${page} refcount ${ref}, expected 1 + ${nonZero}`);
  }

  private entry(pte: Pte, level: number, ipa: number, where: string): void {
    const { pgt } = this;
    if (ipa >= pgt.geo.ipaSize) this.problem(`${where}: entry beyond the IPA space`);
    if (pteIsLocked(pte)) this.problem(`${where}: left locked`);
    else if (!pteIsCounted(pte)) this.problem(`${where}: garbage 0x${BigInt.asUintN(64, pte).toString(16)}`);
    else if (!pteIsTable(pte, level)) this.leaf(pte, level, ipa, where);
    else {
      const child = pgt.pool.paToPage(decodeOa(pte, pgt.geo.granule));
      if (child < 0) this.problem(`${where}: table descriptor points outside the pool`);
      else this.table(child, level + 1, ipa, pgt.entriesPerPage);
    }
  }

  private leaf(pte: Pte, level: number, ipa: number, where: string): void {
    const { pgt } = this;
    if (!blockAllowedAt(pgt.geo, level)) this.problem(`${where}: leaf at a level without blocks`);
    if (pteValid(pte)) {
      const isPage = (pte & PTE_TYPE_MASK) === PTE_TYPE_PAGE;
      if ((level === 3) !== isPage) this.problem(`${where}: wrong type bits`);
      const size = pgt.levelSizes[level] as number;
      if (decodeOa(pte, pgt.geo.granule) % size !== 0) this.problem(`${where}: misaligned output address`);
    }
    if (this.collect) this.out.leaves.push({ ipa, level, pte });
  }
}

/** Audits the whole table (see the file comment). Leaves are listed in IPA order when collected. */
export function auditTree(pgt: Stage2, collectLeaves = false): TreeAudit {
  const auditor = new Auditor(pgt, collectLeaves);
  const root = pgt.rootPage;
  if (root < 0) return auditor.out;
  const geo = pgt.geo;
  auditor.table(root, geo.startLevel, 0, geo.pgdPages * pgt.entriesPerPage);
  return auditor.out;
}

/** Fails the test when the audit finds anything wrong. */
export function assertSound(pgt: Stage2, what = "after the operation"): TreeAudit {
  const audit = auditTree(pgt, true);
  assert.deepEqual(audit.problems, [], `table audit ${what}`);
  return audit;
}

/** Table pages the pool has handed out but that are neither reachable nor cached. */
export function strayPages(pgt: Stage2, audit: TreeAudit, cached: number): number {
  return pgt.pool.allocatedPages().length - audit.tables - cached;
}

/** Destroys the table, drains the cache and requires every page of the pool to be free again. */
export function assertNoLeak(fx: Fixture): void {
  const ret = destroy(fx.pgt);
  assert.equal(ret, Errno.OK, `destroy() returned ${errnoName(ret)}`);
  fx.mc.drain();
  assert.equal(fx.pool.leakReport(), "", "pages leaked");
  assert.deepEqual(fx.pool.allocatedPages(), []);
  assert.deepEqual(fx.pool.audit(), []);
  const s = fx.pgt.stats();
  assert.equal(s.tablesFreed, s.tablesAllocated, "every table allocated was freed");
  assert.equal(fx.pool.stats().refcountUnderflows, 0);
  assert.equal(fx.pool.stats().doubleFrees, 0);
}

/** Asserts an Errno with readable names on failure. */
export function assertErr(actual: number, expected: number, what: string): void {
  assert.equal(errnoName(actual), errnoName(expected), what);
}

/** What getLeaf() reports for one IPA, decoded: the PA includes the offset within the leaf. */
export interface Translation {
  level: number;
  pte: Pte;
  valid: boolean;
  /** Output address of `ipa` (leaf OA + offset within the leaf), or -1 when not valid. */
  pa: number;
  prot: number;
}

const leafOut = new LeafResult();

/** Translates `ipa` with getLeaf(), as a software walker would see it. */
export function translate(pgt: Stage2, ipa: number): Translation {
  const ret = getLeaf(pgt, ipa, leafOut);
  assert.equal(errnoName(ret), "OK", `getLeaf(0x${ipa.toString(16)})`);
  const { level, pte } = leafOut;
  const valid = pteValid(pte);
  const size = pgt.levelSizes[level] as number;
  return {
    level,
    pte,
    valid,
    pa: valid ? decodeOa(pte, pgt.geo.granule) + (ipa % size) : -1,
    prot: valid ? leafProt(pte) : 0,
  };
}
