/**
 * Runs parsed `stage2 script` operations on one stage-2 table, single-threaded and exclusive (as if
 * holding the mmu_lock for write), with a memory cache topped up before each operation.
 *
 * Each operation is checked first (alignment, IPA and PA ranges, permissions), so a failure names
 * its reason: "line 4: map 0x1000 2M 0x40000000 rw: EINVAL (SIZE 0x200000 ... )". Failures throw
 * UsageError. An operation that fails part way may leave part of its work done (as the kernel's
 * would); the CLI prints nothing but the error in that case.
 */
import { type DecodedDescriptor, decodeDescriptor, formatSize, hex } from "../arch/decode.js";
import { Prot, pteValid } from "../arch/descriptor.js";
import type { Geometry, Granule } from "../arch/geometry.js";
import { Errno, errnoName } from "../common/errno.js";
import { MemCache, PagePool } from "../mem/mod.js";
import { auditTable } from "../pgtable/audit.js";
import { collectRanges, type DumpRange } from "../pgtable/dump.js";
import {
  destroy,
  flush,
  getLeaf,
  LeafResult,
  map,
  mkyoung,
  pagesToSplit,
  relaxPerms,
  setOwner,
  split,
  Stage2,
  testClearYoung,
  unmap,
  wrprotect,
} from "../pgtable/mod.js";
import { UsageError } from "./command.js";
import { sanitize } from "./parse.js";
import type { ScriptLine, ScriptOp } from "./script-parser.js";

export interface ScriptConfig {
  granule: Granule;
  iaBits: number;
  paBits: number;
  /** Pages in the table page pool. */
  poolPages: number;
  poolBasePa: number;
  vmid?: number;
}

export type OpResult =
  | { kind: "get"; line: number; ipa: number; pa: number; decoded: DecodedDescriptor }
  | { kind: "mkold"; line: number; ipa: number; size: number; young: boolean }
  | { kind: "flush"; line: number; ipa: number; size: number; dcacheCleans: number }
  | { kind: "dump"; line: number; ranges: DumpRange[] };

/** An operation failed: errno plus the reason, e.g. EINVAL and "IPA 0x1001 is not aligned...". */
class OpFailure extends Error {
  constructor(
    readonly code: number,
    reason: string,
  ) {
    super(reason);
  }
}

export class ScriptSession {
  readonly pool: PagePool;
  readonly pgt: Stage2;
  readonly cache: MemCache;
  readonly geo: Geometry;
  private readonly leaf = new LeafResult();

  private constructor(pool: PagePool, pgt: Stage2) {
    this.pool = pool;
    this.pgt = pgt;
    this.geo = pgt.geo;
    const splitPages = pagesToSplit(pgt, this.geo.blockLevels[0] ?? 3);
    this.cache = new MemCache(pool, Math.max(16, splitPages));
  }

  /** A fresh pool and table. Throws RangeError for impossible options (caller turns it into usage). */
  static create(config: ScriptConfig): ScriptSession {
    const pool = PagePool.create({
      granule: config.granule,
      pages: config.poolPages,
      basePa: config.poolBasePa,
      debug: true,
    });
    const pgt = Stage2.create(pool, {
      granule: config.granule,
      iaBits: config.iaBits,
      paBits: config.paBits,
      vmid: config.vmid ?? 1,
    });
    return new ScriptSession(pool, pgt);
  }

  /** Runs every line in order; throws UsageError at the first failing operation. */
  runAll(lines: readonly ScriptLine[]): OpResult[] {
    const results: OpResult[] = [];
    for (const line of lines) {
      const r = this.run(line);
      if (r !== null) results.push(r);
    }
    return results;
  }

  /** Runs one line; returns what it reports (get, mkold, flush, dump) or null. */
  run(line: ScriptLine): OpResult | null {
    try {
      return this.exec(line.op, line.line);
    } catch (e) {
      if (!(e instanceof OpFailure)) throw e;
      throw new UsageError(
        `line ${line.line}: ${sanitize(line.text, 120)}: ${errnoName(e.code)} (${e.message})`,
      );
    }
  }

  /**
   * Tears the table down (drain cache, audit, destroy, leak check) and returns one line per
   * problem found; empty when everything was freed.
   */
  finish(): string[] {
    this.cache.drain();
    const problems = auditTable(this.pgt).problems.map((p) => `audit: ${p}`);
    const stats = this.pgt.stats();
    if (stats.corrupt + stats.uafDetected > 0) {
      problems.push(`walker reported ${stats.corrupt} corrupt entries, ${stats.uafDetected} use-after-free`);
    }
    const ret = destroy(this.pgt);
    if (ret !== Errno.OK) problems.push(`destroy failed: ${errnoName(ret)}`);
    const leaked = this.pool.allocatedPages();
    if (leaked.length > 0) {
      problems.push(`leak: ${leaked.length} page(s) still allocated after destroy`);
      for (const l of this.pool.leakReport().split("\n")) if (l !== "") problems.push(`leak: ${l}`);
    }
    return problems;
  }

  /** Table pages currently reachable from the root. */
  tablePages(): number {
    return auditTable(this.pgt, 0).tables;
  }

  // --- operations ------------------------------------------------------------------------------

  private exec(op: ScriptOp, line: number): OpResult | null {
    switch (op.kind) {
      case "map":
      case "collapse":
        this.checkMap(op.kind, op.ipa, op.size, op.pa, op.prot);
        this.withCache(this.geo.levels - 1, () => map(this.pgt, op.ipa, op.size, op.pa, op.prot, this.cache));
        return null;
      case "owner":
        this.checkRange(op.ipa, op.size);
        this.withCache(this.geo.levels - 1, () => setOwner(this.pgt, op.ipa, op.size, this.cache, op.owner));
        return null;
      case "unmap":
        this.checkRange(op.ipa, op.size);
        this.check(unmap(this.pgt, op.ipa, op.size));
        return null;
      case "wrprotect":
        this.checkRange(op.ipa, op.size);
        this.check(wrprotect(this.pgt, op.ipa, op.size));
        return null;
      case "split":
        this.checkRange(op.ipa, op.size);
        this.withCache(this.cache.capacity, () => split(this.pgt, op.ipa, op.size, this.cache));
        return null;
      case "flush":
        return this.flush(op.ipa, op.size, line);
      case "mkold":
        this.checkRange(op.ipa, op.size);
        return {
          kind: "mkold",
          line,
          ipa: op.ipa,
          size: op.size,
          young: testClearYoung(this.pgt, op.ipa, op.size, true),
        };
      case "relax": {
        this.requireLeaf(op.ipa);
        const ret = relaxPerms(this.pgt, op.ipa, op.prot);
        // PROT was parsed (no device bit), so EINVAL here is relax refusing X on a device leaf.
        if (ret === Errno.INVAL)
          throw new OpFailure(ret, "device memory cannot be executable at stage 2 (map refuses it too)");
        this.check(ret);
        return null;
      }
      case "mkyoung":
        this.requireLeaf(op.ipa);
        if (mkyoung(this.pgt, op.ipa) === 0n)
          throw new OpFailure(Errno.AGAIN, "the leaf changed under mkyoung");
        return null;
      case "get":
        return this.get(op.ipa, line);
      case "dump":
        return { kind: "dump", line, ranges: collectRanges(this.pgt) };
    }
  }

  private get(ipa: number, line: number): OpResult {
    this.checkIpa(ipa);
    this.check(getLeaf(this.pgt, ipa, this.leaf));
    const decoded = decodeDescriptor(this.leaf.pte, this.leaf.level, this.geo.granule);
    const levelSize = this.pgt.levelSizes[this.leaf.level] as number;
    const pa = decoded.leaf !== null ? decoded.oa + (ipa % levelSize) : -1;
    return { kind: "get", line, ipa, pa, decoded };
  }

  private flush(ipa: number, size: number, line: number): OpResult {
    this.checkRange(ipa, size);
    const before = this.pgt.maint.counts().dcacheClean;
    this.check(flush(this.pgt, ipa, size));
    const dcacheCleans = this.pgt.maint.counts().dcacheClean - before;
    return { kind: "flush", line, ipa, size, dcacheCleans };
  }

  /**
   * Tops the cache up to `min` pages and runs `fn`; while it runs dry (NOMEM) after a successful
   * topup, tops up again and reruns it (each round consumed at least `min` pages, so this ends).
   */
  private withCache(min: number, fn: () => number): void {
    for (;;) {
      const topped = this.cache.topup(min) === Errno.OK;
      const ret = fn();
      if (ret !== Errno.NOMEM || !topped) {
        this.check(ret);
        return;
      }
    }
  }

  private check(ret: number): void {
    if (ret === Errno.OK) return;
    throw new OpFailure(ret, this.reason(ret));
  }

  private reason(ret: number): string {
    if (ret === Errno.NOMEM) {
      const s = this.pool.stats();
      return `page pool exhausted: ${s.allocated} of ${this.pool.pageCount} pages in use; raise --pool`;
    }
    if (ret === Errno.AGAIN) return "met a locked entry or lost a race";
    if (ret === Errno.RANGE) return "outside the IPA space";
    return "rejected by the page-table code";
  }

  // --- argument checks -------------------------------------------------------------------------

  private get granuleName(): string {
    return `${formatSize(this.geo.granule)} granule`;
  }

  private checkAligned(what: string, value: number, align: number, alignName: string): void {
    if (value % align !== 0)
      throw new OpFailure(Errno.INVAL, `${what} ${hex(value)} is not aligned to ${alignName}`);
  }

  private checkIpa(ipa: number): void {
    if (ipa >= this.geo.ipaSize) {
      throw new OpFailure(Errno.RANGE, `IPA ${hex(ipa)} is beyond the ${this.geo.iaBits}-bit IPA space`);
    }
  }

  private checkRange(ipa: number, size: number): void {
    this.checkAligned("IPA", ipa, this.geo.granule, `the ${this.granuleName}`);
    this.checkAligned("SIZE", size, this.geo.granule, `the ${this.granuleName}`);
    if (ipa + size > this.geo.ipaSize) {
      throw new OpFailure(
        Errno.RANGE,
        `range ${hex(ipa)}-${hex(ipa + size)} ends beyond the ${this.geo.iaBits}-bit IPA space`,
      );
    }
  }

  private checkMap(kind: "map" | "collapse", ipa: number, size: number, pa: number, prot: number): void {
    this.checkRange(ipa, size);
    this.checkAligned("PA", pa, this.geo.granule, `the ${this.granuleName}`);
    if (pa + size > 2 ** this.geo.paBits) {
      throw new OpFailure(
        Errno.RANGE,
        `PA range ${hex(pa)}-${hex(pa + size)} ends beyond the ${this.geo.paBits}-bit PA space`,
      );
    }
    if (prot & Prot.DEVICE && prot & Prot.X) {
      throw new OpFailure(Errno.INVAL, "device memory cannot be executable at stage 2");
    }
    if (kind === "collapse") {
      const sizes = this.geo.blockSizes;
      if (!sizes.includes(size)) {
        const allowed = sizes.length > 0 ? sizes.map(formatSize).join(" or ") : "none here";
        throw new OpFailure(Errno.INVAL, `SIZE ${formatSize(size)} is not a block size (${allowed})`);
      }
      this.checkAligned("IPA", ipa, size, `the ${formatSize(size)} block size`);
      this.checkAligned("PA", pa, size, `the ${formatSize(size)} block size`);
    }
  }

  /** relax and mkyoung act on an existing leaf; a missing one is an error in a script. */
  private requireLeaf(ipa: number): void {
    this.checkIpa(ipa);
    this.check(getLeaf(this.pgt, ipa, this.leaf));
    if (!pteValid(this.leaf.pte)) {
      throw new OpFailure(
        Errno.NOENT,
        `no valid leaf maps IPA ${hex(ipa)} (L${this.leaf.level} entry is invalid)`,
      );
    }
  }
}
