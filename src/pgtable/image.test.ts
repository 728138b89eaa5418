import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { Prot } from "../arch/descriptor.js";
import { Errno } from "../common/errno.js";
import { MemCache, PagePool } from "../mem/mod.js";
import { IMAGE_FORMAT, imageBytes, imageMeta, writeImage } from "./image.js";
import { destroy, map, Stage2 } from "./mod.js";

function setup() {
  const pool = PagePool.create({ granule: 4096, pages: 64, basePa: 0x8000_0000 });
  const pgt = Stage2.create(pool, { granule: 4096, iaBits: 40, vmid: 7 });
  const cache = new MemCache(pool, 4);
  cache.topup(2);
  assert.equal(map(pgt, 0x20_0000, 0x1000, 0x1234_5000, Prot.RW, cache), Errno.OK);
  cache.drain();
  return { pool, pgt };
}

describe("image", () => {
  test("imageMeta() describes the walk: root, VTCR_EL2, VTTBR_EL2 and the pool", () => {
    const { pgt } = setup();
    const m = imageMeta(pgt);
    assert.equal(m.format, IMAGE_FORMAT);
    assert.deepEqual(
      [m.granule, m.pageSize, m.pageCount, m.poolBytes, m.poolBasePa, m.poolBasePaNumber],
      [4096, 4096, 64, 64 * 4096, "0x80000000", 0x8000_0000],
    );
    assert.deepEqual([m.rootPa, m.rootPaNumber], ["0x80000000", 0x8000_0000]);
    assert.deepEqual([m.startLevel, m.levels, m.iaBits, m.paBits, m.pgdPages], [1, 3, 40, 48, 2]);
    assert.equal(m.vtcr, "0x80053558");
    assert.equal(m.vmid, 7);
    assert.equal(m.vttbr, "0x0007000080000000");
  });

  test("imageBytes() is the pool, descriptors little-endian at PA - poolBase", () => {
    const { pgt, pool } = setup();
    const bytes = imageBytes(pgt);
    assert.equal(bytes.length, 64 * 4096);
    const view = new DataView(bytes.buffer);
    // IPA 0x200000 at 4K/40: level-1 index 0 in the root, so the root's first entry is a table.
    const rootEntry = view.getBigUint64(pgt.rootPa - pool.basePa, true);
    assert.equal(rootEntry, BigInt.asUintN(64, Atomics.load(pool.ptes, pgt.rootPage * 512)));
    assert.equal(rootEntry & 3n, 3n);
    assert.deepEqual(bytes, new Uint8Array(pool.handle.memory));
  });

  test("writeImage() writes tables.bin and tables.json; a destroyed table cannot be exported", async () => {
    const { pgt } = setup();
    const dir = await mkdtemp(join(tmpdir(), "stage2-image-"));
    try {
      const paths = await writeImage(pgt, join(dir, "sub"));
      const meta = JSON.parse(await readFile(paths.json, "utf8"));
      assert.equal(meta.rootPa, "0x80000000");
      assert.deepEqual(new Uint8Array(await readFile(paths.bin)), imageBytes(pgt));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    assert.equal(destroy(pgt), Errno.OK);
    assert.throws(() => imageMeta(pgt), /destroyed/);
  });
});
