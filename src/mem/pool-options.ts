/**
 * Options of a page pool, their defaults and validation, and the structured-cloneable handle that
 * carries a pool to other threads. Validation runs in `PagePool.create` and again in `attach`, so a
 * handle that went through postMessage is checked before any view is built on it.
 */

/** Translation granule: page and table size in bytes. */
export type Granule = 4096 | 16384 | 65536;

/** Options of `PagePool.create`. */
export interface PagePoolOptions {
  granule: Granule;
  /** Number of pages in the pool (1 .. MAX_POOL_PAGES). */
  pages: number;
  /** Physical address of page 0; granule aligned, and the pool must end at or below 2^48. */
  basePa?: number;
  /** Poison freed pages and check them at reallocation; throw PageMisuseError on misuse. */
  debug?: boolean;
}

/** Everything another thread needs to attach to a pool; post it to workers as is. */
export interface PagePoolHandle {
  /** The pages themselves: pages * granule bytes. */
  readonly memory: SharedArrayBuffer;
  /** Allocator header and per-page metadata (layout.ts). */
  readonly meta: SharedArrayBuffer;
  readonly granule: Granule;
  readonly pages: number;
  readonly basePa: number;
  readonly debug: boolean;
}

/** Default physical address of page 0 (1 GiB, where many arm64 virt platforms start their RAM). */
export const DEFAULT_BASE_PA = 0x4000_0000;
/** Physical addresses are below 2^48 (descriptor output-address bits 47:PAGE_SHIFT). */
export const PA_LIMIT = 2 ** 48;
/** Upper bound on pageCount, so that page indices and metadata indices stay small integers. */
export const MAX_POOL_PAGES = 2 ** 26;

export type ResolvedPoolOptions = Omit<PagePoolHandle, "memory" | "meta">;

/** Checks `opts` and fills in defaults; throws TypeError or RangeError naming the bad option. */
export function resolvePoolOptions(opts: PagePoolOptions): ResolvedPoolOptions {
  if (typeof opts !== "object" || opts === null) {
    throw new TypeError("Cannot create page pool: options must be an object");
  }
  const { granule, pages } = opts;
  if (granule !== 4096 && granule !== 16384 && granule !== 65536) {
    throw new RangeError(`Cannot create page pool: granule ${String(granule)} is not 4096, 16384 or 65536`);
  }
  if (!Number.isInteger(pages) || pages < 1 || pages > MAX_POOL_PAGES) {
    throw new RangeError(
      `Cannot create page pool: page count ${String(pages)} is not an integer in 1..${MAX_POOL_PAGES}`,
    );
  }
  const basePa = opts.basePa ?? DEFAULT_BASE_PA;
  if (!Number.isInteger(basePa) || basePa < 0 || basePa % granule !== 0) {
    throw new RangeError(
      `Cannot create page pool at 0x${hex(basePa)}: base is not a ${granule}-byte aligned address`,
    );
  }
  if (basePa + pages * granule > PA_LIMIT) {
    throw new RangeError(
      `Cannot create page pool at 0x${hex(basePa)}: ${pages} pages of ${granule} bytes exceed the 48-bit PA space`,
    );
  }
  const debug = opts.debug ?? false;
  if (typeof debug !== "boolean") throw new TypeError("Cannot create page pool: debug must be a boolean");
  return { granule, pages, basePa, debug };
}

/** Checks that `handle` looks like a PagePoolHandle whose buffers fit its options. */
export function checkPoolHandle(
  handle: PagePoolHandle,
  metaBytes: (pages: number) => number,
): ResolvedPoolOptions {
  if (typeof handle !== "object" || handle === null) {
    throw new TypeError("Cannot attach page pool: handle must be the object from PagePool.handle");
  }
  const resolved = resolvePoolOptions(handle);
  const { memory, meta } = handle;
  if (!(memory instanceof SharedArrayBuffer) || !(meta instanceof SharedArrayBuffer)) {
    throw new TypeError("Cannot attach page pool: handle.memory and handle.meta must be SharedArrayBuffers");
  }
  if (
    memory.byteLength !== resolved.pages * resolved.granule ||
    meta.byteLength !== metaBytes(resolved.pages)
  ) {
    throw new RangeError(
      "Cannot attach page pool: buffer sizes do not match the handle's page count and granule",
    );
  }
  return resolved;
}

/** Allocates a SharedArrayBuffer, turning an engine failure into a RangeError that says what was asked. */
export function allocShared(bytes: number, what: string): SharedArrayBuffer {
  try {
    return new SharedArrayBuffer(bytes);
  } catch (err) {
    throw new RangeError(`Cannot create page pool: ${what} of ${bytes} bytes could not be allocated`, {
      cause: err,
    });
  }
}

function hex(n: number): string {
  return Number.isFinite(n) ? n.toString(16) : String(n);
}
