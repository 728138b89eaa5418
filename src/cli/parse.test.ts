import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { UsageError } from "./command.js";
import {
  chooseSeed,
  ECHO_MAX,
  parseChoice,
  parseFlags,
  parseIntIn,
  parseNumber,
  parseRatio,
  parseSeed,
  quote,
  sanitize,
} from "./parse.js";

/** Throws a UsageError whose one-line message matches `re`. */
function refuses(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UsageError, String(e));
    assert.ok(!e.message.includes("\n"), `one line: ${JSON.stringify(e.message)}`);
    assert.match(e.message, re);
    return true;
  });
}

describe("sanitize()", () => {
  test("shows control characters, escape sequences, NUL and bidi marks as escapes", () => {
    assert.equal(
      sanitize("a\x1b[31mred\x00\n\t\x7f\u009b\u202e"),
      "a\\x1b[31mred\\x00\\x0a\\x09\\x7f\\x9b\\u202e",
    );
    const out = sanitize(`x${"\x1b".repeat(10)}`);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: checking none is left
    assert.doesNotMatch(out, /[\u0000-\u001f\u007f-\u009f]/);
  });

  test("cuts long text to the cap with an ellipsis, never splitting a surrogate pair", () => {
    const long = "y".repeat(10_000);
    const out = sanitize(long);
    assert.equal(Array.from(out).length, ECHO_MAX);
    assert.ok(out.endsWith("…"));
    assert.equal(sanitize("short"), "short");
    const emoji = "😀".repeat(100);
    const cut = sanitize(emoji, 10);
    assert.equal(cut, `${"😀".repeat(9)}…`);
  });

  test("quote() wraps sanitized text in double quotes", () => {
    assert.equal(quote("a\x07b"), '"a\\x07b"');
  });
});

describe("parseSeed()", () => {
  test("takes decimal and 0x hex from 0 to 2^32-1", () => {
    assert.equal(parseSeed("0", "--seed"), 0);
    assert.equal(parseSeed(" 42 ", "--seed"), 42);
    assert.equal(parseSeed("4294967295", "--seed"), 4294967295);
    assert.equal(parseSeed("0xffffffff", "--seed"), 0xffffffff);
    assert.equal(parseSeed("0X00000000000000ff", "--seed"), 255);
  });

  test("refuses words, negatives, fractions, empty text and values above 32 bits, with the range", () => {
    for (const bad of [
      "abc",
      "-5",
      "1.5",
      "",
      " ",
      "4294967296",
      "0x100000000",
      "1e3",
      "0x",
      "99999999999999999999",
    ])
      refuses(
        () => parseSeed(bad, "STAGE2_SEED"),
        /^STAGE2_SEED: ".*" is not a seed: use a whole number 0\.\.4294967295/,
      );
  });

  test("chooseSeed() prefers --seed, then STAGE2_SEED, and refuses a bad STAGE2_SEED", () => {
    const saved = process.env.STAGE2_SEED;
    try {
      process.env.STAGE2_SEED = "7";
      assert.equal(chooseSeed("9"), 9);
      assert.equal(chooseSeed(undefined), 7);
      process.env.STAGE2_SEED = "-5";
      refuses(() => chooseSeed(undefined), /^STAGE2_SEED: "-5"/);
      process.env.STAGE2_SEED = "";
      const s = chooseSeed(undefined);
      assert.ok(Number.isInteger(s) && s >= 0 && s <= 0xffffffff);
    } finally {
      if (saved === undefined) delete process.env.STAGE2_SEED;
      else process.env.STAGE2_SEED = saved;
    }
  });
});

describe("parseNumber() and parseIntIn()", () => {
  test("sizes, hex and decimal", () => {
    assert.equal(parseNumber("2M", "x"), 2 * 1024 * 1024);
    assert.equal(parseNumber("0x1000", "x"), 4096);
    assert.equal(parseNumber("1_000", "x"), 1000);
  });

  test("a negative number names the range instead of a cut-off message", () => {
    refuses(() => parseNumber("-5", "--pool"), /^--pool: "-5" is negative/);
    refuses(() => parseIntIn("-5", "--vcpus", 1, 32), /^--vcpus: "-5" is not in 1\.\.32$/);
    refuses(() => parseIntIn("0", "--iterations", 1, 100), /^--iterations: 0 is not in 1\.\.100$/);
    refuses(() => parseIntIn("101", "--iterations", 1, 100), /^--iterations: 101 is not in 1\.\.100$/);
    assert.equal(parseIntIn("100", "--iterations", 1, 100), 100);
  });

  test("echoes bad text sanitized and capped", () => {
    refuses(
      () => parseNumber(`\x1b]0;pwned\x07${"9".repeat(500)}z`, "--region"),
      /^--region: "\\x1b\]0;pwned\\x079+…" is not a number/,
    );
  });
});

describe("parseRatio()", () => {
  test("takes decimals in 0..1 and refuses empty or other text", () => {
    assert.equal(parseRatio("0.6", "--touch-ratio"), 0.6);
    assert.equal(parseRatio(".25", "--touch-ratio"), 0.25);
    assert.equal(parseRatio("1", "--touch-ratio"), 1);
    assert.equal(parseRatio("0", "--touch-ratio"), 0);
    for (const bad of ["", " ", "1.5", "-0.1", "0x1", "1e-1", "NaN", "Infinity", "abc"])
      refuses(() => parseRatio(bad, "--touch-ratio"), /^--touch-ratio: ".*" is not a ratio between 0 and 1$/);
  });
});

describe("parseChoice()", () => {
  test("matches without case and never selects an Object.prototype member", () => {
    assert.equal(parseChoice("MB", "--rcu", ["mb", "qsbr"] as const), "mb");
    // Choices spelled in capitals are matched without case too (--granule 4k or 4K).
    assert.equal(parseChoice("4k", "--granule", ["4K", "16K"] as const), "4K");
    assert.equal(parseChoice("16K", "--granule", ["4K", "16K"] as const), "16K");
    for (const bad of ["constructor", "toString", "__proto__", "hasOwnProperty"])
      refuses(() => parseChoice(bad, "--rcu", ["mb", "qsbr"] as const), /is not one of mb, qsbr$/);
  });
});

describe("parseFlags()", () => {
  const spec = { vcpus: { type: "string" as const }, json: { type: "boolean" as const } };

  test("a negative value after a string option reaches the number parser", () => {
    const { values } = parseFlags(["--vcpus", "-5"], spec);
    assert.equal(values.vcpus, "-5");
  });

  test("parseArgs errors become one line naming the option, sanitized", () => {
    refuses(() => parseFlags(["--nope"], spec), /^unknown option "--nope" \(see --help\)$/);
    refuses(() => parseFlags(["--\x1b[2Jx"], spec), /^unknown option "--\\x1b\[2Jx"/);
    refuses(() => parseFlags(["--vcpus"], spec), /^--vcpus needs a value$/);
    refuses(() => parseFlags(["--json=1"], spec), /^--json does not take a value$/);
    refuses(() => parseFlags(["extra"], spec), /^unexpected argument "extra"$/);
  });
});
