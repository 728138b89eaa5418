import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseArgs, parseChoice, parseInt32, parseSeed, parseSize } from "./args.js";
import { ConfigError, shown } from "./errors.js";
import { divTs, formatTs } from "./timespec.js";

const LONGS = new Map([
  ["strategy", { value: true, multiple: true }],
  ["json", { value: false }],
]);

describe("parseArgs", () => {
  test("getopt clusters and values, like `-v 2 -b1G -eg`", () => {
    const a = parseArgs(["-v", "2", "-b1G", "-eg"], "b:egv:", LONGS, "t");
    assert.equal(a.short.get("v"), "2");
    assert.equal(a.short.get("b"), "1G");
    assert.equal(a.short.get("e"), "");
    assert.equal(a.short.get("g"), "");
  });

  test("a value may start with a dash (`-s -1`), which node's parseArgs refuses", () => {
    const a = parseArgs(["-s", "-1"], "s:", LONGS, "t");
    assert.equal(a.short.get("s"), "-1");
  });

  test("long options with a value, `=value`, repeated, and switches", () => {
    const a = parseArgs(["--strategy", "per-table", "--strategy=bounded", "--json"], "", LONGS, "t");
    assert.deepEqual(a.long.get("strategy"), ["per-table", "bounded"]);
    assert.deepEqual(a.long.get("json"), [""]);
  });

  test("unknown flags and options name themselves and the valid ones", () => {
    assert.throws(() => parseArgs(["-z"], "ab:", LONGS, "t"), /unknown flag -z \(valid: -a -b\)/);
    assert.throws(
      () => parseArgs(["--nope"], "", LONGS, "t"),
      /unknown option --nope \(valid: --strategy, --json\)/,
    );
    assert.throws(() => parseArgs(["-b"], "b:", LONGS, "t"), /-b needs a value/);
    assert.throws(() => parseArgs(["--json=1"], "", LONGS, "t"), /--json takes no value/);
  });

  test("control characters and long words are never echoed raw", () => {
    try {
      parseArgs([`--\u001b[31m${"x".repeat(200)}`], "", LONGS, "t");
      assert.fail("no error");
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.ok(!e.message.includes("\u001b"), e.message);
      assert.ok(e.message.length < 300, e.message);
    }
    assert.equal(shown("a\u0000b"), "a\\x00b");
  });
});

describe("numbers", () => {
  test("parseSize: [0-9]+[kmgt], case-insensitive, binary units", () => {
    assert.equal(parseSize("4096", "-b"), 4096);
    assert.equal(parseSize("64M", "-b"), 64 * 2 ** 20);
    assert.equal(parseSize("1g", "-b"), 2 ** 30);
    assert.throws(() => parseSize("1.5G", "-b"), /-b: "1.5G" is not a size/);
    // As strtoull(base 0) + the unit letter: hex, octal, "1GB".
    assert.equal(parseSize("0x1000", "-b"), 4096);
    assert.equal(parseSize("010", "-b"), 8);
    assert.equal(parseSize("1GB", "-b"), 2 ** 30);
    assert.equal(parseSize("4096b", "-b"), 4096);
    assert.throws(() => parseSize("1Q", "-b"), ConfigError);
    assert.throws(() => parseSize("", "-b"), ConfigError);
    assert.throws(() => parseSize("99999999999t", "-b"), /too large/);
  });

  test("parseInt32 names the flag and the range", () => {
    assert.equal(parseInt32("3", "-v", 1, 64), 3);
    assert.throws(() => parseInt32("0", "-v", 1, 64), /-v: 0 is out of range \(valid: 1..64\)/);
    assert.throws(() => parseInt32("two", "-v", 1, 64), /not an integer \(valid: 1..64\)/);
  });

  test("parseSeed: 0..2^32-1, decimal or hex; nothing wraps", () => {
    assert.equal(parseSeed("0x10", "-r"), 16);
    assert.equal(parseSeed("4294967295", "-r"), 4294967295);
    for (const bad of ["4294967296", "-5", "1.5", "abc", ""])
      assert.throws(() => parseSeed(bad, "-r"), ConfigError);
  });
});

describe("parseChoice", () => {
  test("matches without regard to case, as the CLI does, and names the flag otherwise", () => {
    assert.equal(parseChoice("SHARED", "--mode", ["shared", "exclusive"] as const), "shared");
    assert.equal(parseChoice("qsbr", "--rcu", ["mb", "qsbr"] as const), "qsbr");
    for (const bad of ["", "shared ", "constructor", "__proto__"])
      assert.throws(
        () => parseChoice(bad, "--mode", ["shared", "exclusive"] as const),
        (e: unknown) =>
          e instanceof ConfigError && /^--mode: ".*" is not one of shared, exclusive$/.test(e.message),
      );
  });
});

describe("timespec", () => {
  test("formatTs prints %ld.%.9lds", () => {
    assert.equal(formatTs(0n), "0.000000000s");
    assert.equal(formatTs(1_234_567_890n), "1.234567890s");
    assert.equal(formatTs(12_000_000_005n), "12.000000005s");
    assert.equal(divTs(10n, 3), 3n);
    assert.equal(divTs(10n, 0), 0n);
  });
});
