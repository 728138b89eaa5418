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

/**
 * Splits [ipa, ipa+size). With `locked` the caller holds the write lock and the whole range is
 * one chunk; else each `chunk` bytes take the write lock once. Returns the chunks split.
 * Throws Stage2Error(NOMEM) when the page pool cannot supply the tables.
 */
export function splitInChunks(
  host: SplitHost,
  ipa: number,
  size: number,
  chunk: number,
  locked: boolean,
): number {
  const step = locked ? size : chunk;
  let chunks = 0;
  for (let at = ipa; at < ipa + size; at += step) {
    const len = Math.min(step, ipa + size - at);
    if (!locked) host.lock.writeLock();
    try {
      splitChunk(host, at, len);
    } finally {
      if (!locked) host.lock.writeUnlock();
    }
    chunks++;
  }
  // Give the tables not used back: a cache left full would hold pages the vCPUs may need.
  // A locked caller splits many small ranges in one hold and drains once at the end.
  if (!locked) host.memcache.drain();
  return chunks;
}

/**
 * One chunk: split, topping the cache up whenever it runs dry (what was split stays split, so the
 * retry only walks on). A range with no block left costs one walk and no allocation.
 */
function splitChunk(host: SplitHost, ipa: number, size: number): void {
  const mc = host.memcache;
  for (;;) {
    const ret = split(host.pgt, ipa, size, mc);
    if (ret === Errno.OK) return;
    const where = `[0x${ipa.toString(16)}, +0x${size.toString(16)})`;
    if (ret !== Errno.NOMEM) throw new Stage2Error(ret, `Cannot split ${where}`);
    mc.topup(mc.capacity);
    if (mc.count === 0) throw new Stage2Error(Errno.NOMEM, `Cannot split ${where}: the page pool is empty`);
  }
}
