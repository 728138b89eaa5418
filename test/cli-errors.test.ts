/**
 * Every class of bad input the CLI must answer with one line naming the problem, exit code 2, no
 * stack trace and nothing written (and the I/O failures that are not bad input: a closed pipe ends
 * quietly, a full disk is one line and exit 1). Each test spawns the compiled CLI as a user would.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function cli(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Run {
  const env = { ...process.env, ...opts.env };
  if (opts.env?.STAGE2_SEED === undefined) delete env.STAGE2_SEED;
  const r = spawnSync(process.execPath, [MAIN, ...args], { input: opts.input, encoding: "utf8", env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Exit 2, nothing on stdout, exactly one stderr line, no stack, no raw control characters. */
function badInput(r: Run, re: RegExp): string {
  assert.equal(r.code, 2, `exit code (stderr: ${r.err})`);
  assert.equal(r.out, "", "nothing on stdout");
  const lines = r.err.replace(/\n$/, "").split("\n");
  assert.equal(lines.length, 1, `one line: ${r.err}`);
  const line = lines[0] as string;
  assert.doesNotMatch(line, /\bat .*:\d+:\d+\)?$/, "no stack frame");
  // biome-ignore lint/suspicious/noControlCharactersInRegex: none may reach the terminal
  assert.doesNotMatch(line, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, "no raw control characters");
  assert.match(line, re);
  return line;
}

describe("names a user types never select Object.prototype members", () => {
  for (const word of ["toString", "constructor", "__proto__", "hasOwnProperty"]) {
    test(`bench ${word} is an unknown benchmark`, () => {
      badInput(
        cli(["bench", word]),
        new RegExp(`^stage2 bench: unknown benchmark "${word}": use one of rcu,`),
      );
    });
    test(`decode --granule ${word} and geometry --granule ${word} are refused`, () => {
      badInput(
        cli(["decode", "0x3", "--granule", word]),
        /^stage2 decode: --granule: ".*" is not one of 4k, 16k, 64k$/,
      );
      badInput(cli(["geometry", "--granule", word]), /^stage2 geometry: --granule: ".*" is not one of/);
    });
    test(`faults --strategy ${word}, --mode ${word} and --rcu ${word} are refused`, () => {
      badInput(
        cli(["faults", "--strategy", word]),
        /^stage2 faults: --strategy: ".*" is not one of per-table/,
      );
      badInput(
        cli(["faults", "--mode", word]),
        /^stage2 faults: --mode: ".*" is not one of shared, exclusive$/,
      );
      badInput(cli(["faults", "--rcu", word]), /^stage2 faults: --rcu: ".*" is not one of mb, qsbr$/);
    });
    test(`script operation ${word} is unknown`, () => {
      badInput(cli(["script", "-"], { input: `${word} 0\n` }), /^stage2 script: line 1: unknown operation/);
    });
  }
  test("an unknown command is named", () => {
    badInput(cli(["constructor"]), /^stage2: unknown command "constructor"/);
  });
});

describe("seeds are 32-bit whole numbers, never wrapped", () => {
  for (const seed of ["abc", "-5", "1.5", "4294967296", "0x1ffffffff", " "]) {
    test(`STAGE2_SEED=${JSON.stringify(seed)} is refused with the range`, () => {
      badInput(
        cli(["faults", "--iterations", "1"], { env: { STAGE2_SEED: seed } }),
        /^stage2 faults: STAGE2_SEED: ".*" is not a seed: use a whole number 0\.\.4294967295/,
      );
    });
  }
  test("--seed 4294967296 is refused, not wrapped to 0", () => {
    badInput(cli(["faults", "--seed", "4294967296"]), /^stage2 faults: --seed: "4294967296" is not a seed/);
  });
});

describe("closed or failing output", () => {
  const many = `map 0 2M 0x80000000 rw\n${"get 0x1000\n".repeat(20_000)}`;

  test("stdout closed by its reader (| head -1) ends quietly with exit 0", async () => {
    const child = spawn(process.execPath, [MAIN, "script", "-", "--quiet"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let err = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      err += d;
    });
    child.stdin.end(many);
    let got = 0;
    child.stdout.on("data", (chunk: Buffer) => {
      got += chunk.length;
      child.stdout.destroy(); // the reader goes away after its first line
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    assert.ok(got > 0, "some output arrived first");
    assert.equal(err, "", "nothing on stderr");
    assert.equal(code, 0);
  });

  test("stdout on a full disk (/dev/full): one line naming ENOSPC, exit 1", () => {
    const full = openSync("/dev/full", "w");
    try {
      const r = spawnSync(process.execPath, [MAIN, "geometry"], {
        stdio: ["ignore", full, "pipe"],
        encoding: "utf8",
      });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /^stage2: cannot write standard output: ENOSPC \(.*\)\n$/);
    } finally {
      closeSync(full);
    }
  });
});

describe("script --image and the pool", () => {
  let tmp = "";
  const script = "map 0 2M 0x80000000 rw\n";
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), "stage2-cli-errors-"));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test("tables.json that cannot be written: the file is named and tables.bin is not written", async () => {
    const dir = join(tmp, "img");
    await mkdir(join(dir, "tables.json"), { recursive: true });
    badInput(
      cli(["script", "-", "--image", dir], { input: script }),
      /^stage2 script: --image: cannot write ".*tables\.json": EEXIST \(exists and is not a file\); nothing was written$/,
    );
    assert.deepEqual(await readdir(dir), ["tables.json"], "no tables.bin and no temporary file left");
  });

  test("--image under a file is refused, naming the path", async () => {
    const file = join(tmp, "plain");
    await writeFile(file, "x");
    badInput(
      cli(["script", "-", "--image", join(file, "sub")], { input: script }),
      /--image: cannot write ".*plain\/sub": ENOTDIR/,
    );
  });

  test("--pool-base is checked against --pa-bits", () => {
    badInput(
      cli(["script", "-", "--pa-bits", "40", "--pool-base", "0x10000000000"], { input: script }),
      /^stage2 script: --pool-base: pool 0x10000000000\+16M ends beyond the 40-bit PA space \(--pa-bits\)$/,
    );
  });

  test("a 16K pool with no aligned run for the start-level tables says so (not 'pool exhausted')", () => {
    badInput(
      cli(
        ["script", "-", "--granule", "16k", "--ia-bits", "40", "--pool", "256K", "--pool-base", "0x40004000"],
        {
          input: script,
        },
      ),
      /^stage2 script: --pool-base: the 16 start-level table pages need a 256K-aligned run, which a 256K pool at 0x40004000 does not hold/,
    );
  });
});

describe("permissions", () => {
  test("relax cannot make a device mapping executable, as map cannot", () => {
    badInput(
      cli(["script", "-"], { input: "map 0 4K 0x80000000 rw device\nrelax 0 x\n" }),
      /line 2: relax 0 x: EINVAL \(device memory cannot be executable/,
    );
    badInput(
      cli(["script", "-"], { input: "map 0 4K 0x80000000 rwx device\n" }),
      /line 1: .*: EINVAL \(device memory cannot be executable/,
    );
  });
});

describe("unbounded work is bounded, and the bound is stated", () => {
  test("--iterations above 10,000,000 and --race-spins above 100,000 are refused", () => {
    badInput(
      cli(["faults", "--iterations", "10000001"]),
      /^stage2 faults: --iterations: 10000001 is not in 1\.\.10000000$/,
    );
    badInput(cli(["faults", "--race-spins", "1e9"]), /^stage2 faults: --race-spins: "1e9" is not a number/);
    badInput(
      cli(["faults", "--race-spins", "100001"]),
      /^stage2 faults: --race-spins: 100001 is not in 0\.\.100000$/,
    );
  });
  test("faults --controlled: unknown schedules, contradictions and --pct-depth bounds are refused", () => {
    badInput(
      cli(["faults", "--controlled", "fifo"]),
      /^stage2 faults: --controlled: "fifo" is not one of random, pct$/,
    );
    badInput(cli(["faults", "--pct-depth", "3"]), /^stage2 faults: --pct-depth needs --controlled pct$/);
    badInput(cli(["faults", "--controlled", "random", "--mode", "exclusive"]), /shared faults only/);
    badInput(cli(["faults", "--controlled", "random", "--race-spins", "10"]), /takes no --race-spins/);
    badInput(
      cli(["faults", "--controlled", "pct", "--pct-depth", "65"]),
      /^stage2 faults: --pct-depth: 65 is not in 1\.\.64$/,
    );
  });
  test("faults --help states the limits", () => {
    const r = cli(["faults", "--help"]);
    assert.equal(r.code, 0);
    assert.match(r.out, /--iterations N +operations per vCPU, 1\.\.10000000/);
    assert.match(r.out, /0\.\.100000/);
  });
});

describe("nothing is silently accepted", () => {
  test('--touch-ratio "" is refused (not taken as 0)', () => {
    badInput(
      cli(["faults", "--touch-ratio", ""]),
      /^stage2 faults: --touch-ratio: "" is not a ratio between 0 and 1$/,
    );
  });
  test("--slice-budget 0 is refused (not raised to 1)", () => {
    badInput(cli(["faults", "--slice-budget", "0"]), /^stage2 faults: --slice-budget: 0 is not in 1\.\./);
  });
  test("--iterations 0 is refused (no run that reports zeros)", () => {
    badInput(cli(["faults", "--iterations", "0"]), /^stage2 faults: --iterations: 0 is not in 1\.\./);
  });
  test("decode --granule 64k --level 0: a level the granule does not have", () => {
    badInput(
      cli(["decode", "0x3", "--granule", "64k", "--level", "0"]),
      /^stage2 decode: --level: level 0 does not exist with the 64K granule \(levels 1 to 3\)$/,
    );
    assert.equal(cli(["decode", "0x3", "--granule", "64k", "--level", "1"]).code, 0);
  });
});

describe("messages", () => {
  test("a negative number names the flag and its range", () => {
    badInput(cli(["faults", "--vcpus", "-5"]), /^stage2 faults: --vcpus: "-5" is not in 1\.\.32$/);
    badInput(cli(["script", "-", "--pool", "-1"]), /^stage2 script: --pool: "-1" is negative/);
  });
  test("escape codes from the input are shown escaped, never raw", () => {
    const line = badInput(
      cli(["geometry", "--ia-bits", "\x1b[2J\x1b]0;title\x07"]),
      /--ia-bits: "\\x1b\[2J\\x1b\]0;title\\x07"/,
    );
    assert.ok(!line.includes("\x1b"));
    badInput(cli(["script", "-"], { input: "map 0 2M 0x0 r\x1b[31mw\n" }), /PROT "r\\x1b\[31mw"/);
  });
  test("a very long argument is cut with an ellipsis", () => {
    const line = badInput(cli(["bench", "z".repeat(100_000)]), /^stage2 bench: unknown benchmark "z+…"/);
    assert.ok(line.length < 200, `${line.length} characters`);
  });
  test("stage2 with no command: one line on stderr, exit 2", () => {
    badInput(
      cli([]),
      /^stage2: missing command: one of run, compare, report, geometry, decode, script, faults, bench/,
    );
  });
  test("stage2 --help still prints usage on stdout with exit 0", () => {
    const r = cli(["--help"]);
    assert.equal(r.code, 0);
    assert.match(r.out, /^Usage: stage2 <command>/m);
  });
});

describe("internal errors", () => {
  // A preload that breaks stdout.write with a plain TypeError: the kind of bug no check expects.
  const BREAK = `data:text/javascript,process.stdout.write = () => { throw new TypeError("boom \\x1b[31m"); };`;

  function broken(env: Record<string, string> = {}): Run {
    const r = spawnSync(process.execPath, ["--import", BREAK, MAIN, "geometry"], {
      encoding: "utf8",
      env: { ...process.env, STAGE2_DEBUG: "", ...env },
    });
    return { code: r.status, out: r.stdout, err: r.stderr };
  }

  test("a bug is one line asking for a report, exit 70, no stack", () => {
    const r = broken();
    assert.equal(r.code, 70, r.err);
    assert.equal(
      r.err,
      "stage2: internal error: TypeError: boom \\x1b[31m; please report it (STAGE2_DEBUG=1 shows the stack)\n",
    );
  });

  test("STAGE2_DEBUG=1 adds the stack", () => {
    const r = broken({ STAGE2_DEBUG: "1" });
    assert.equal(r.code, 70);
    assert.match(r.err, /^stage2: internal error: TypeError: boom .*; please report it\nTypeError: boom/);
    assert.match(r.err, /\n +at /);
  });
});
