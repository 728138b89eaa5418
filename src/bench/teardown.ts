/**
 * Teardown benchmark (issue 11): `Vm.destroy` of a stage-2 fully mapped with 4K pages, 64 GiB by
 * default (16 M leaf entries in 32,768 level-3 tables, 64 level-2 tables and the 2 concatenated
 * start-level pages of KVM's default 40-bit IPA).
 *
 * The table is built fast, single-threaded on this thread with the table operations themselves
 * (one exclusive `map` per GiB, pages only, tables from a memory cache), not through faults. The
 * timed part is destroy's freeing of the tree under the write lock, in its bounded chunks; the RCU
 * barrier and the leak check after it are reported beside it, not in the rate.
 *
 *  - destroyEntriesPerSec: leaf entries torn down per second of freeing (16 M / freeMs).
 *  - destroyMaxChunkMs: the longest chunk, i.e. the longest the write lock is held without a
 *    point where a waiting thread gets in (`needsResched` / `yieldWrite` between chunks).
 */
import { Prot } from "../arch/descriptor.js";
import { Errno } from "../common/errno.js";
import { Vm } from "../kvm/vm.js";
import { MemCache } from "../mem/mod.js";
import { map } from "../pgtable/mod.js";
import type { BenchOptions } from "./options.js";

export interface TeardownBenchResult {
  /** GiB mapped with 4K pages before the destroy. */
  mappedGiB: number;
  /** Leaf entries (4K pages) mapped. */
  leafEntries: number;
  /** Table pages destroy freed. */
  tablesFreed: number;
  /** Chunks destroy freed them in. */
  chunks: number;
  /** Freeing time, all chunks, ms. */
  destroyMs: number;
  destroyEntriesPerSec: number;
  destroyMaxChunkMs: number;
  /** The longest chunk of the warm-up destroy (8 GiB, the process's first: JIT not warm yet), ms. */
  coldMaxChunkMs: number;
  /** The RCU barrier after the free (nothing queued here), ms. */
  barrierMs: number;
  /** Building the table (not part of the figures above), ms. */
  buildMs: number;
  /** min and max over the runs of the two target figures (the figures are medians). */
  spread: Record<"destroyEntriesPerSec" | "destroyMaxChunkMs", [number, number]>;
}

const GIB = 2 ** 30;
const PAGE = 4096;
const IPA_BASE = GIB;
const PA_BASE = 2 ** 40;

/**
 * Builds `gib` GiB of 4K mappings in a fresh VM, destroys it, and times the destroy; `reps` times
 * (default 3, quick 1), reporting the median run (by rate) and the spread of both figures.
 *
 * An 8 GiB build and destroy runs first and warms the JIT up: the first few dozen chunks a process
 * ever frees run before the free path is optimized (measured: 0.09 ms per 256-page chunk, then
 * 0.03 ms, with one chunk of 1.5-4 ms while the optimized code is installed). Its longest chunk
 * is reported as `coldMaxChunkMs`, not hidden.
 */
export async function runTeardownBench(
  opts: BenchOptions = {},
  gib = opts.quick ? 1 : 64,
  reps = opts.quick ? 1 : 3,
): Promise<TeardownBenchResult> {
  const cold = await buildAndDestroy(opts.quick ? 1 : 8, {});
  const runs: Omit<TeardownBenchResult, "coldMaxChunkMs" | "spread">[] = [];
  for (let r = 0; r < reps; r++) {
    const progress = opts.progress;
    const step = progress
      ? (done: number, total: number, what: string) => progress(r * total + done, reps * total, what)
      : undefined;
    runs.push(await buildAndDestroy(gib, { progress: step }));
  }
  const byRate = [...runs].sort((a, b) => a.destroyEntriesPerSec - b.destroyEntriesPerSec);
  const mid = byRate[byRate.length >> 1] as (typeof runs)[number];
  const chunks = runs.map((x) => x.destroyMaxChunkMs).sort((a, b) => a - b);
  return {
    ...mid,
    destroyMaxChunkMs: chunks[chunks.length >> 1] as number,
    coldMaxChunkMs: cold.destroyMaxChunkMs,
    spread: {
      destroyEntriesPerSec: [
        byRate[0]!.destroyEntriesPerSec,
        byRate[byRate.length - 1]!.destroyEntriesPerSec,
      ],
      destroyMaxChunkMs: [chunks[0] as number, chunks[chunks.length - 1] as number],
    },
  };
}

async function buildAndDestroy(
  gib: number,
  opts: BenchOptions,
): Promise<Omit<TeardownBenchResult, "coldMaxChunkMs" | "spread">> {
  const epp = PAGE / 8;
  const l3Tables = (gib * GIB) / (PAGE * epp);
  const vm = await Vm.create({
    granule: PAGE,
    iaBits: 40,
    poolPages: l3Tables + gib + 64,
    mode: "exclusive",
    vcpus: 1,
  });
  const memcache = new MemCache(vm.pool, 2 * epp);
  const t0 = performance.now();
  vm.lock.writeLock();
  try {
    for (let g = 0; g < gib; g++) {
      opts.progress?.(g, gib + 1, `mapping GiB ${g + 1} of ${gib} with 4K pages`);
      // One GiB in pages needs 512 level-3 tables and at most one level-2 table.
      if (memcache.topup(epp + 1) !== Errno.OK) throw new Error("teardown bench: page pool exhausted");
      const ret = map(vm.pgt, IPA_BASE + g * GIB, GIB, PA_BASE + g * GIB, Prot.RW, memcache, 0, true);
      if (ret !== Errno.OK) throw new Error(`teardown bench: map failed with status ${ret}`);
    }
  } finally {
    vm.lock.writeUnlock();
    memcache.drain();
  }
  const buildMs = performance.now() - t0;
  opts.progress?.(gib, gib + 1, "destroy");
  const report = await vm.destroy();
  if (report.leakedPages.length > 0)
    throw new Error(`teardown bench leaked ${report.leakedPages.length} pages`);
  const leafEntries = (gib * GIB) / PAGE;
  return {
    mappedGiB: gib,
    leafEntries,
    tablesFreed: report.tablesFreed,
    chunks: report.chunks,
    destroyMs: report.freeMs,
    destroyEntriesPerSec: leafEntries / (report.freeMs / 1000),
    destroyMaxChunkMs: report.maxChunkMs,
    barrierMs: report.barrierMs,
    buildMs,
  };
}
