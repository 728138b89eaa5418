/**
 * Eager page splitting for dirty logging (kvm_mmu_split_huge_pages): split the blocks of a range
 * down to pages with tables from the host's memory cache, a chunk at a time, dropping and
 * retaking the write lock between chunks so that faults and other host work get in.
 */
import { Errno, Stage2Error } from "../common/errno.js";
import type { MemCache } from "../mem/mod.js";
import { split } from "../pgtable/mod.js";
import type { Stage2 } from "../pgtable/stage2.js";
import type { RwLock } from "../sync/mod.js";

/** What the splitter needs from a host view. */
export interface SplitHost {
  readonly pgt: Stage2;
  readonly lock: RwLock;
  readonly memcache: MemCache;
}

/** What an eager split did. */
export interface SplitOutcome {
  /** Chunks split whole. */
  chunks: number;
  /**
   * False if the page pool ran dry and the split stopped early. Eager splitting is best effort,
   * as in Linux (kvm_mmu_split_memory_region returns nothing): the blocks left are split by write
   * faults, one at a time, as with eager splitting off.
   */
  complete: boolean;
}

/**
 * Splits [ipa, ipa+size). With `locked` the caller holds the write lock and the whole range is
 * one chunk; else each `chunk` bytes take the write lock once. Stops early, with `complete`
 * false, when the page pool cannot supply the tables; other errors throw Stage2Error.
 */
export function splitInChunks(
  host: SplitHost,
  ipa: number,
  size: number,
  chunk: number,
  locked: boolean,
): SplitOutcome {
  const step = locked ? size : chunk;
  let chunks = 0;
  let complete = true;
  try {
    for (let at = ipa; at < ipa + size && complete; at += step) {
      const len = Math.min(step, ipa + size - at);
      if (!locked) host.lock.writeLock();
      try {
        complete = splitChunk(host, at, len);
      } finally {
        if (!locked) host.lock.writeUnlock();
      }
      if (complete) chunks++;
    }
  } finally {
    // Give the tables not used back: a cache left full would hold pages the vCPUs may need.
    // A locked caller splits many small ranges in one hold and drains once at the end.
    if (!locked) host.memcache.drain();
  }
  return { chunks, complete };
}

/**
 * One chunk: split, topping the cache up whenever it runs dry (what was split stays split, so the
 * retry only walks on). A range with no block left costs one walk and no allocation. False when
 * the pool gave no page (what was split so far stays split and consistent).
 */
function splitChunk(host: SplitHost, ipa: number, size: number): boolean {
  const mc = host.memcache;
  for (;;) {
    const ret = split(host.pgt, ipa, size, mc);
    if (ret === Errno.OK) return true;
    if (ret !== Errno.NOMEM)
      throw new Stage2Error(ret, `Cannot split [0x${ipa.toString(16)}, +0x${size.toString(16)})`);
    mc.topup(mc.capacity);
    if (mc.count === 0) return false;
  }
}
