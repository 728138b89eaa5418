/** The scripts' help and their refusals of bad arguments (none of them does its work here). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";

function run(script: string, ...args: string[]) {
  const path = new URL(`../../scripts/${script}`, import.meta.url).pathname;
  return spawnSync(process.execPath, [path, ...args], { encoding: "utf8", timeout: 30_000 });
}

test("soak.mjs --help prints its usage and exits 0", () => {
  const r = run("soak.mjs", "--help");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Usage: node scripts\/soak\.mjs --minutes N/);
  assert.match(r.stdout, /Exit status: 0 when no segment found a violation/);
});

test("soak.mjs refuses unknown options and bad values with exit 2", () => {
  const unknown = run("soak.mjs", "--bogus");
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /soak: Unknown option '--bogus'/);
  const bad = run("soak.mjs", "--minutes", "0");
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--minutes must be > 0/);
});

test("run-tests.mjs --help prints its usage without running a test; an unknown option exits 2", () => {
  const r = run("run-tests.mjs", "--help");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Usage: node scripts\/run-tests\.mjs \[--long\] \[--tap\]/);
  assert.doesNotMatch(r.stdout, /passed/);
  const bad = run("run-tests.mjs", "--lnog");
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /run-tests: unknown option --lnog/);
});

test("profile.mjs --help prints its own usage, not bench's", () => {
  const r = run("profile.mjs", "--help");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Usage: npm run profile/);
  assert.match(r.stdout, /--summarize DIR/);
});
