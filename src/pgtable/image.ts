/**
 * Exporting a stage-2 table for other tools: `tables.bin` + `tables.json`.
 *
 * tables.bin is the page pool byte for byte: page p of the pool is at file offset p * pageSize and
 * at physical address poolBasePa + p * pageSize. Descriptors are 64-bit little-endian words, exactly
 * as a hardware walker would read them from memory. Pages that are free or still cached hold zeros
 * (or the poison pattern of a debug pool); no valid table descriptor points at them.
 *
 * tables.json says how to walk it, with nothing project-specific needed:
 *
 *   {
 *     "format": "stage2-image-v1",
 *     "granule": 4096, "pageSize": 4096, "pageCount": 1024, "poolBytes": 4194304,
 *     "poolBasePa": "0x40000000", "poolBasePaNumber": 1073741824,
 *     "rootPa": "0x40000000", "rootPaNumber": 1073741824,
 *     "startLevel": 1, "levels": 3, "iaBits": 40, "paBits": 48, "pgdPages": 2,
 *     "vtcr": "0x80053558", "vmid": 1, "vttbr": "0x0001000040000000",
 *     "note": "..."
 *   }
 *
 * VTTBR_EL2 is VMID << 48 | BADDR (the root, aligned to the concatenated start-level tables), CnP 0.
 * A conforming walker derives everything from VTCR_EL2 and VTTBR_EL2; the other keys are redundant
 * conveniences that it can cross-check.
 *
 * Take the image with no walker running: the copy is not a consistent snapshot otherwise.
 *
 * Both files are written whole or not at all: each goes to a temporary name in DIR, is flushed to
 * disk, and only when both are complete are they renamed over tables.bin and tables.json. A
 * failure (a full disk, a tables.json that is a directory) removes the temporary files, leaves any
 * earlier image as it was, and throws ImageWriteError naming the file that failed.
 */
import { randomBytes } from "node:crypto";
import { lstat, mkdir, open, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Stage2 } from "./stage2.js";

/** The `format` of a tables.json written by writeImage(). */
export const IMAGE_FORMAT = "stage2-image-v1";

/** The contents of tables.json: what any ARMv8 walker needs to read tables.bin. */
export interface ImageMeta {
  format: string;
  granule: number;
  pageSize: number;
  pageCount: number;
  poolBytes: number;
  poolBasePa: string;
  poolBasePaNumber: number;
  rootPa: string;
  rootPaNumber: number;
  startLevel: number;
  levels: number;
  iaBits: number;
  paBits: number;
  pgdPages: number;
  vtcr: string;
  vmid: number;
  vttbr: string;
  note: string;
}

const NOTE =
  "tables.bin holds pageCount pages of pageSize bytes; the byte at file offset o has physical address " +
  "poolBasePa + o. Descriptors are 64-bit little-endian. Walk from VTTBR_EL2.BADDR (rootPa) as VTCR_EL2 " +
  "describes: ARMv8-A VMSAv8-64 stage 2, pgdPages concatenated tables at startLevel.";

/** The tables.json object for `pgt`. Throws RangeError once the table is destroyed. */
export function imageMeta(pgt: Stage2): ImageMeta {
  const rootPa = pgt.rootPa;
  if (rootPa < 0) throw new RangeError("Cannot export the stage-2 image: the table has been destroyed");
  const pool = pgt.pool;
  const geo = pgt.geo;
  const vttbr = (BigInt(pgt.vmid & 0xffff) << 48n) | BigInt(rootPa);
  return {
    format: IMAGE_FORMAT,
    granule: geo.granule,
    pageSize: pool.granule,
    pageCount: pool.pageCount,
    poolBytes: pool.pageCount * pool.granule,
    poolBasePa: `0x${pool.basePa.toString(16)}`,
    poolBasePaNumber: pool.basePa,
    rootPa: `0x${rootPa.toString(16)}`,
    rootPaNumber: rootPa,
    startLevel: geo.startLevel,
    levels: geo.levels,
    iaBits: geo.iaBits,
    paBits: geo.paBits,
    pgdPages: geo.pgdPages,
    vtcr: `0x${geo.vtcr.toString(16)}`,
    vmid: pgt.vmid,
    vttbr: `0x${vttbr.toString(16).padStart(16, "0")}`,
    note: NOTE,
  };
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A copy of the whole page pool as little-endian bytes (tables.bin). */
export function imageBytes(pgt: Stage2): Uint8Array {
  const pool = pgt.pool;
  if (HOST_LITTLE_ENDIAN) return new Uint8Array(pool.handle.memory).slice();
  const out = new Uint8Array(pool.pageCount * pool.granule);
  const view = new DataView(out.buffer);
  for (let i = 0; i < pool.ptes.length; i++) view.setBigInt64(i * 8, Atomics.load(pool.ptes, i), true);
  return out;
}

/**
 * mkdir -p, one component at a time. Node's `mkdir(..., { recursive: true })` loops forever where a
 * pseudo file system answers ENOENT for a path it will never create (under /proc, for one).
 */
async function makeDirs(dir: string): Promise<void> {
  const parent = dirname(dir);
  if (parent !== dir) {
    try {
      await stat(parent);
    } catch {
      await makeDirs(parent);
    }
  }
  try {
    await mkdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  }
}

/** Writing the image failed: `path` is the file or directory that could not be written. */
export class ImageWriteError extends Error {
  constructor(
    readonly path: string,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ImageWriteError";
  }
}

/** The file operations writeImage uses; tests substitute failing ones (a full disk). */
export interface ImageFs {
  /** Creates `path` (it must not exist), writes `data`, flushes it to disk, closes it. */
  writeNew(path: string, data: Uint8Array | string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
}

const nodeFs: ImageFs = {
  async writeNew(path, data) {
    const file = await open(path, "wx");
    try {
      await file.writeFile(data);
      await file.sync();
    } finally {
      await file.close();
    }
  },
  rename: (from, to) => rename(from, to),
  remove: (path) => rm(path, { force: true }),
};

function failure(path: string, e: unknown): ImageWriteError {
  const err = e as NodeJS.ErrnoException;
  const code = err.code ?? "EIO";
  return new ImageWriteError(path, code, `Cannot write ${path}: ${code}`);
}

/** A target that exists and is not a regular file (a directory, say) would fail the rename late. */
async function refuseNonFile(path: string): Promise<void> {
  let isFile = true;
  try {
    isFile = (await lstat(path)).isFile();
  } catch {
    return; // absent: fine
  }
  if (!isFile) throw new ImageWriteError(path, "EEXIST", `Cannot write ${path}: it exists and is not a file`);
}

/**
 * Writes DIR/tables.bin and DIR/tables.json (creating DIR), both or neither (see the file comment);
 * returns the two paths. Throws ImageWriteError naming the path that failed.
 */
export async function writeImage(
  pgt: Stage2,
  dir: string,
  fs: ImageFs = nodeFs,
): Promise<{ bin: string; json: string }> {
  const meta = imageMeta(pgt);
  const bin = join(dir, "tables.bin");
  const json = join(dir, "tables.json");
  const files: [string, Uint8Array | string][] = [
    [bin, imageBytes(pgt)],
    [json, `${JSON.stringify(meta, null, 2)}\n`],
  ];
  try {
    await makeDirs(dir);
  } catch (e) {
    throw failure(dir, e);
  }
  for (const [path] of files) await refuseNonFile(path);
  const tag = `${process.pid}-${randomBytes(4).toString("hex")}`;
  const temps: string[] = [];
  try {
    for (const [path, data] of files) {
      const tmp = join(dir, `.${path.slice(dir.length + 1)}.${tag}.tmp`);
      temps.push(tmp);
      await fs.writeNew(tmp, data).catch((e: unknown) => Promise.reject(failure(path, e)));
    }
    for (const [i, [path]] of files.entries())
      await fs.rename(temps[i] as string, path).catch((e: unknown) => Promise.reject(failure(path, e)));
  } catch (e) {
    for (const tmp of temps) await fs.remove(tmp).catch(() => {});
    throw e;
  }
  return { bin, json };
}
