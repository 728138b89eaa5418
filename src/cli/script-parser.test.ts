import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Prot } from "../arch/descriptor.js";
import { UsageError } from "./command.js";
import { parseProt, parseScript } from "./script-parser.js";

function ops(source: string) {
  return parseScript(source).map((l) => l.op);
}

/** Asserts that parsing fails with a UsageError whose message matches `re` exactly once per call. */
function fails(source: string, re: RegExp): void {
  assert.throws(
    () => parseScript(source),
    (e: unknown) => {
      assert.ok(e instanceof UsageError, `expected UsageError, got ${String(e)}`);
      assert.match(e.message, re);
      assert.equal(e.message.includes("\n"), false, "one line");
      return true;
    },
  );
}

describe("parseScript", () => {
  test("parses every operation", () => {
    const source = [
      "map 0x0 2M 0x40000000 rw",
      "collapse 0x200000 2M 0x40200000 r-x",
      "map 0x9000000 4K 0x9000000 rw device",
      "unmap 0x0 4K",
      "wrprotect 0 1G",
      "relax 0x1000 rwx",
      "mkyoung 0x1000",
      "mkold 0x0 2M",
      "owner 0x400000 8K 5",
      "split 0x0 1G",
      "flush 0x0 16K",
      "get 0x1234",
      "dump",
    ].join("\n");
    assert.deepEqual(ops(source), [
      { kind: "map", ipa: 0, size: 2 ** 21, pa: 0x4000_0000, prot: Prot.RW },
      { kind: "collapse", ipa: 0x20_0000, size: 2 ** 21, pa: 0x4020_0000, prot: Prot.R | Prot.X },
      { kind: "map", ipa: 0x900_0000, size: 4096, pa: 0x900_0000, prot: Prot.RW | Prot.DEVICE },
      { kind: "unmap", ipa: 0, size: 4096 },
      { kind: "wrprotect", ipa: 0, size: 2 ** 30 },
      { kind: "relax", ipa: 0x1000, prot: Prot.RWX },
      { kind: "mkyoung", ipa: 0x1000 },
      { kind: "mkold", ipa: 0, size: 2 ** 21 },
      { kind: "owner", ipa: 0x40_0000, size: 8192, owner: 5 },
      { kind: "split", ipa: 0, size: 2 ** 30 },
      { kind: "flush", ipa: 0, size: 16384 },
      { kind: "get", ipa: 0x1234 },
      { kind: "dump" },
    ]);
  });

  test("skips comments and blank lines but keeps line numbers and the quoted text", () => {
    const lines = parseScript("# header\n\n  MAP   0x0  4k 0x1000 RW   # trailing\r\n\ndump\n");
    assert.deepEqual(
      lines.map((l) => [l.line, l.text]),
      [
        [3, "map 0x0 4k 0x1000 RW"],
        [5, "dump"],
      ],
    );
    assert.equal(parseScript("").length, 0);
    assert.equal(parseScript("# only\n   \n").length, 0);
  });

  test("names the line and the problem for each kind of mistake", () => {
    fails("dump\nmapp 0x0 4K 0x0 rw", /^line 2: unknown operation "mapp" \(use map, collapse, .*dump\)$/);
    fails("map 0x0 4K 0x0", /^line 1: map: expected IPA SIZE PA PROT \[device\], got 3 arguments$/);
    fails("get", /^line 1: get: expected IPA, got 0 arguments$/);
    fails("dump now", /^line 1: dump: expected no arguments, got 1 argument$/);
    fails("unmap 0x0 4K extra", /^line 1: unmap: expected IPA SIZE, got 3 arguments$/);
    fails("\n\nmap 0xzz 4K 0x0 rw", /^line 3: map: IPA: "0xzz" is not a number/);
    fails("unmap 0x0 4Q", /^line 1: unmap: SIZE: "4Q" is not a number/);
    fails("map 0x0 4K 12abc rw", /^line 1: map: PA: "12abc" is not a number/);
    fails("split 0x0 0", /^line 1: split: SIZE must not be zero$/);
    fails("map 0x0 4K 0x0 rq", /^line 1: map: PROT "rq" is not a combination of r, w and x$/);
    fails("map 0x0 4K 0x0 rwr", /^line 1: map: PROT "rwr" repeats "r"$/);
    fails("relax 0x0 ---", /^line 1: relax: PROT "---" grants nothing/);
    fails(
      "map 0x0 4K 0x0 rw cached",
      /^line 1: map: unexpected argument "cached" \(only "device" may follow PROT\)$/,
    );
    fails("relax 0x0 rw device", /^line 1: relax: expected IPA PROT, got 3 arguments$/);
    fails("owner 0x0 4K 0", /^line 1: owner: ID 0 is not an owner id \(1\.\.255\)$/);
    fails("owner 0x0 4K 256", /^line 1: owner: ID 256 is not an owner id/);
    fails("get 0x20000000000000000", /^line 1: get: IPA: "0x20000000000000000" is too large \(over 2\^53\)$/);
  });
});

describe("parseProt", () => {
  test("accepts letters in any order, dashes, and device", () => {
    assert.equal(parseProt("r", false), Prot.R);
    assert.equal(parseProt("xwr", false), Prot.RWX);
    assert.equal(parseProt("R-X", false), Prot.R | Prot.X);
    assert.equal(parseProt("rw", true), Prot.RW | Prot.DEVICE);
    assert.throws(() => parseProt("", false));
  });
});
