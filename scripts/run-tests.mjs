#!/usr/bin/env node
// Runs every compiled test under dist/ with node's built-in test runner.
// Unit tests sit beside the code (dist/src/**/*.test.js); multi-worker tests live in dist/test/.
// `--long` adds the long stress variants (files named *.long.test.js), which `npm test` leaves out.
// Output: scripts/test-reporter.mjs (dots, every failure in full, node's closing counts, and
// "N passed, N failed"); `--tap` (or STAGE2_TEST_REPORTER=tap) gives node's full TAP stream instead.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const known = new Set(["--long", "--tap", "--help", "-h"]);
const unknown = process.argv.slice(2).filter((a) => !known.has(a));
if (process.argv.includes("--help") || process.argv.includes("-h") || unknown.length > 0) {
  const usage = `Usage: node scripts/run-tests.mjs [--long] [--tap]   (npm test builds and lints first)

Runs every compiled test under dist/ (run \`npm run build\` first): unit tests beside the code,
multi-worker tests in dist/test/. A test that runs over 5 minutes (30 with --long) fails.

  --long   also run the long stress variants (*.long.test.js)
  --tap    node's full TAP stream instead of dots (or STAGE2_TEST_REPORTER=tap)

Randomized tests print their seed; STAGE2_SEED=N replays one.`;
  if (unknown.length > 0) {
    console.error(`run-tests: unknown option ${unknown[0]}\n\n${usage}`);
    process.exit(2);
  }
  console.log(usage);
  process.exit(0);
}
const long = process.argv.includes("--long");
const tap = process.argv.includes("--tap") || process.env.STAGE2_TEST_REPORTER === "tap";
const reporter = tap ? "tap" : fileURLToPath(new URL("./test-reporter.mjs", import.meta.url));
const files = [];
function collect(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) collect(path);
    else if (name.endsWith(".test.js") && (long || !name.endsWith(".long.test.js"))) files.push(path);
  }
}
for (const root of ["dist/src", "dist/test"]) {
  try {
    collect(root);
  } catch {
    // a root with no tests yet
  }
}
if (files.length === 0) {
  console.error("run-tests: no compiled tests found under dist/ (run `npm run build` first)");
  process.exit(1);
}
// A hung test fails with its name (and its seed, which every randomized test prints first)
// instead of hanging CI: 5 minutes per test, 30 with --long.
const timeout = String((long ? 30 : 5) * 60_000);
const args = [
  "--test",
  `--test-timeout=${timeout}`,
  `--test-reporter=${reporter}`,
  "--test-reporter-destination=stdout",
];
const result = spawnSync(process.execPath, [...args, ...files], {
  stdio: "inherit",
});
process.exit(result.status ?? 1);
