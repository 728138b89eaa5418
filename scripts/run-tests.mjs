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
