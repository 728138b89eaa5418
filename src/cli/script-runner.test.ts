import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { UsageError } from "./command.js";
import { parseScript } from "./script-parser.js";
import { type OpResult, type ScriptConfig, ScriptSession } from "./script-runner.js";

const BASE: ScriptConfig = {
  granule: 4096,
  iaBits: 40,
  paBits: 48,
  poolPages: 2048,
  poolBasePa: 0x4000_0000,
};

function run(
  source: string,
  config: Partial<ScriptConfig> = {},
): { session: ScriptSession; results: OpResult[] } {
  const session = ScriptSession.create({ ...BASE, ...config });
  return { session, results: session.runAll(parseScript(source)) };
}

function failsWith(source: string, re: RegExp, config: Partial<ScriptConfig> = {}): void {
  const session = ScriptSession.create({ ...BASE, ...config });
  assert.throws(
    () => session.runAll(parseScript(source)),
    (e: unknown) => {
      assert.ok(e instanceof UsageError, String(e));
      assert.match(e.message, re);
      return true;
    },
  );
}

describe("ScriptSession", () => {
  test("runs every operation and reports get, mkold, flush and dump", () => {
    const { session, results } = run(
      [
        "map 0x0 2M 0x80000000 rw",
        "map 0x40000000 1G 0xc0000000 rwx",
        "collapse 0x200000 2M 0x80200000 r",
        "owner 0x400000 8K 9",
        "wrprotect 0x0 2M",
        "relax 0x0 w",
        "get 0x1234",
        "mkold 0x40000000 4K",
        "mkold 0x40000000 4K",
        "mkyoung 0x40000000",
        "mkold 0x40000000 4K",
        "split 0x40000000 1G",
        "unmap 0x40000000 4K",
        "flush 0x40000000 8K",
        "get 0x40000000",
        "dump",
      ].join("\n"),
    );
    const [get1, old1, old2, old3, fl, get2, dump] = results;
    assert.equal(get1?.kind, "get");
    if (get1?.kind === "get") {
      assert.equal(get1.pa, 0x8000_1234);
      assert.equal(get1.decoded.type, "block");
      assert.equal(get1.decoded.leaf?.write, true, "relax restored write");
    }
    assert.deepEqual(
      [old1, old2, old3].map((r) => (r?.kind === "mkold" ? r.young : null)),
      [true, false, true],
    );
    assert.deepEqual(fl?.kind === "flush" ? fl.dcacheCleans : null, 1, "the unmapped page is skipped");
    if (get2?.kind === "get") {
      assert.equal(get2.decoded.type, "invalid");
      assert.equal(get2.decoded.level, 3, "split left a level-3 table");
      assert.equal(get2.pa, -1);
    }
    assert.equal(dump?.kind, "dump");
    if (dump?.kind === "dump") {
      assert.deepEqual(
        dump.ranges.map((r) => [r.start, r.level, r.kind]),
        [
          [0x0, 2, "block"],
          [0x20_0000, 2, "block"],
          [0x40_0000, 3, "owner"],
          [0x4000_1000, 3, "page"],
        ],
      );
    }
    // Root (2), L2 for 0-1G, L3 for the owner annotation, L2 + 512 L3 for the split 1G block.
    assert.equal(session.tablePages(), 2 + 1 + 1 + 1 + 512);
    assert.deepEqual(session.finish(), []);
  });

  test("splits a 1G block to pages in one go (the cache holds enough pages)", () => {
    const { session } = run("map 0x0 1G 0x0 rw\nsplit 0x0 1G");
    assert.equal(session.tablePages(), 2 + 1 + 512);
    assert.deepEqual(session.finish(), []);
  });

  test("names the line, the errno and the reason of a failing operation", () => {
    failsWith(
      "dump\nmap 0x1001 4K 0x0 rw",
      /^line 2: map 0x1001 4K 0x0 rw: EINVAL \(IPA 0x1001 is not aligned to the 4K granule\)$/,
    );
    failsWith("map 0x0 0x1800 0x0 rw", /: EINVAL \(SIZE 0x1800 is not aligned to the 4K granule\)$/);
    failsWith("map 0x0 4K 0x800 rw", /: EINVAL \(PA 0x800 is not aligned/);
    failsWith(
      "unmap 0xfffffff000 8K",
      /: ERANGE \(range 0xfffffff000-0x10000001000 ends beyond the 40-bit IPA space\)$/,
    );
    failsWith("map 0x0 4K 0xfffffffff000 rw", /: ERANGE \(PA range .* ends beyond the 40-bit PA space\)$/, {
      paBits: 40,
    });
    failsWith("map 0x0 4K 0x0 rx device", /: EINVAL \(device memory cannot be executable at stage 2\)$/);
    // relax used to grant X on a device mapping that map refuses to create executable.
    failsWith(
      "map 0x0 4K 0x0 rw device\nrelax 0x0 x",
      /^line 2: relax 0x0 x: EINVAL \(device memory cannot be executable at stage 2 \(map refuses it too\)\)$/,
    );
    failsWith("collapse 0x0 4M 0x0 rw", /: EINVAL \(SIZE 4M is not a block size \(1G or 2M\)\)$/);
    failsWith("collapse 0x1000 2M 0x0 rw", /: EINVAL \(IPA 0x1000 is not aligned to the 2M block size\)$/);
    failsWith(
      "relax 0x5000 rw",
      /^line 1: relax 0x5000 rw: ENOENT \(no valid leaf maps IPA 0x5000 \(L1 entry is invalid\)\)$/,
    );
    failsWith("mkyoung 0x5000", /: ENOENT \(no valid leaf/);
    failsWith("get 0x10000000000", /: ERANGE \(IPA 0x10000000000 is beyond the 40-bit IPA space\)$/);
    failsWith(
      "map 0x0 64M 0x0 rw\nsplit 0x0 64M",
      /^line 2: split 0x0 64M: ENOMEM \(page pool exhausted: .* raise --pool\)$/,
      {
        poolPages: 20,
      },
    );
  });

  test("finish() reports pages that are still allocated after destroy", () => {
    const { session } = run("map 0x0 4K 0x0 rw");
    const stray = session.pool.allocPage();
    const problems = session.finish();
    assert.ok(problems.length >= 2, problems.join("\n"));
    assert.match(problems[0]!, /^leak: 1 page\(s\) still allocated after destroy$/);
    assert.match(problems[1]!, new RegExp(`^leak: .*\\b${stray}\\b`));
  });
});
