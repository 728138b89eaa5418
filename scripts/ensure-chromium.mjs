#!/usr/bin/env node
// Makes sure headless Chromium is installed for the HTML report's browser test
// (test/report-browser.test.ts), which drives Debian's chromium package with playwright-core.
//
// - Chromium present (/usr/bin/chromium, or STAGE2_CHROMIUM): nothing to do.
// - Missing, on Debian, as root: runs `apt-get update` and `apt-get install -y chromium`, saying so.
//   If another apt or dpkg holds the lock (an install already under way), waits and retries rather
//   than failing, and stops as soon as Chromium appears.
// - Missing anywhere else: exits non-zero with the exact command to run. The browser test then
//   fails too; it never passes quietly.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const custom = process.env.STAGE2_CHROMIUM;
const path = custom || "/usr/bin/chromium";
const COMMAND = "sudo apt-get update && sudo apt-get install -y chromium";
const RETRY_MS = 10_000;
const ATTEMPTS = 90; // 15 minutes of waiting for a lock held by another installer

function fail(message) {
  console.error(`ensure-chromium: ${message}`);
  process.exit(1);
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Runs an apt-get step; true when it succeeded. */
function apt(args) {
  console.log(`ensure-chromium: running apt-get ${args.join(" ")}`);
  const r = spawnSync("apt-get", args, {
    stdio: "inherit",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  return r.status === 0;
}

if (existsSync(path)) process.exit(0);
if (custom) fail(`STAGE2_CHROMIUM=${custom} does not exist. Point it at a Chromium binary, or unset it.`);
const debian = existsSync("/etc/debian_version");
const root = process.getuid?.() === 0;
if (!debian)
  fail(
    `Chromium is missing (${path}) and this is not Debian. Install Chromium and run the tests with STAGE2_CHROMIUM=/path/to/chromium.`,
  );
if (!root) fail(`Chromium is missing (${path}). Install it with:\n  ${COMMAND}`);

console.log(`ensure-chromium: ${path} is missing; installing Debian's chromium package for the browser test`);
let updated = false;
for (let attempt = 1; attempt <= ATTEMPTS && !existsSync(path); attempt++) {
  const lock = ["-o", "DPkg::Lock::Timeout=60"];
  if (!updated) updated = apt([...lock, "update"]);
  if (updated && apt([...lock, "install", "-y", "chromium"])) break;
  if (existsSync(path)) break;
  console.log(
    `ensure-chromium: apt-get did not finish (another install may hold the lock); retrying in ${RETRY_MS / 1000} s`,
  );
  sleep(RETRY_MS);
}
if (!existsSync(path))
  fail(`could not install Chromium (${path} still missing). Install it with:\n  ${COMMAND}`);
console.log(`ensure-chromium: installed ${path}`);
