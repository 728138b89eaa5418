import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { Prot } from "../arch/descriptor.js";
import { Errno } from "../common/errno.js";
import { MemCache, PagePool } from "../mem/mod.js";
import { type ImageFs, ImageWriteError, writeImage } from "./image.js";
import { map, Stage2 } from "./mod.js";

function table(): Stage2 {
  const pool = PagePool.create({ granule: 4096, pages: 16, basePa: 0x8000_0000 });
  const pgt = Stage2.create(pool, { granule: 4096, iaBits: 40, vmid: 1 });
  const cache = new MemCache(pool, 4);
  cache.topup(2);
  assert.equal(map(pgt, 0x20_0000, 0x1000, 0x1234_5000, Prot.RW, cache), Errno.OK);
  cache.drain();
  return pgt;
}

function enospc(): NodeJS.ErrnoException {
  return Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
}

/** Real file operations, except that `fail` decides which call throws ENOSPC (after a partial write). */
async function realFs(fail: (op: string, path: string) => boolean): Promise<ImageFs> {
  const fs = await import("node:fs/promises");
  return {
    async writeNew(path, data) {
      if (fail("write", path)) {
        await fs.writeFile(path, typeof data === "string" ? data.slice(0, 3) : data.subarray(0, 100));
        throw enospc();
      }
      await fs.writeFile(path, data, { flag: "wx" });
    },
    async rename(from, to) {
      if (fail("rename", to)) throw enospc();
      await fs.rename(from, to);
    },
    remove: (path) => fs.rm(path, { force: true }),
  };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "stage2-image-write-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("writeImage() writes both files or neither", () => {
  test("a full disk while writing tables.json: no file appears, the temporaries are removed", async () => {
    await withDir(async (dir) => {
      const fs = await realFs((op, path) => op === "write" && path.includes("tables.json"));
      await assert.rejects(writeImage(table(), dir, fs), (e: unknown) => {
        assert.ok(e instanceof ImageWriteError);
        assert.equal(e.code, "ENOSPC");
        assert.equal(e.path, join(dir, "tables.json"), "names the file that failed");
        return true;
      });
      assert.deepEqual(await readdir(dir), []);
    });
  });

  test("a failure leaves an earlier image as it was", async () => {
    await withDir(async (dir) => {
      await writeFile(join(dir, "tables.bin"), "old bin");
      await writeFile(join(dir, "tables.json"), "old json");
      const fs = await realFs((op, path) => op === "write" && path.includes("tables.bin"));
      await assert.rejects(writeImage(table(), dir, fs), ImageWriteError);
      assert.equal(await readFile(join(dir, "tables.bin"), "utf8"), "old bin");
      assert.equal(await readFile(join(dir, "tables.json"), "utf8"), "old json");
      assert.deepEqual((await readdir(dir)).sort(), ["tables.bin", "tables.json"]);
    });
  });

  test("with working file operations both files are complete and no temporary is left", async () => {
    await withDir(async (dir) => {
      const paths = await writeImage(table(), dir);
      assert.equal((await readFile(paths.bin)).length, 16 * 4096);
      assert.equal(JSON.parse(await readFile(paths.json, "utf8")).format, "stage2-image-v1");
      assert.deepEqual((await readdir(dir)).sort(), ["tables.bin", "tables.json"]);
    });
  });
});
