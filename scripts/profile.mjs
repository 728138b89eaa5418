#!/usr/bin/env node
// `npm run profile`: where the fault path's time goes.
//
// Runs `stage2 bench faults` (1 vCPU: shared, exclusive and the MMU model; 3 counted rounds of
// 256 MiB per vCPU) under `node --cpu-prof`, which writes one V8 CPU profile per thread, vCPU
// workers included, into bench/results/profile/<date>/. Then it prints, for the vCPU workers with
// the MMU model off and on, the functions with the most self time inside the populate loop (plus
// the garbage collector, which BigInt allocation feeds), and the same by source file.
//
// Open a .cpuprofile in Chrome DevTools (Performance > Load profile) or speedscope for the flame
// graph. Extra arguments go to `stage2 bench faults` (e.g. `npm run profile -- --vcpus 2`).
// Sampling is every 100 us (--cpu-prof-interval), so short functions inlined by TurboFan show up
// under their caller.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
if (args[0] === "--help" || args[0] === "-h") {
  console.log(`Usage: npm run profile [-- BENCH-FAULTS-OPTIONS]
       node scripts/profile.mjs --summarize DIR

Runs \`stage2 bench faults\` (default: --vcpus 1 --reps 3 --size 256M) under node --cpu-prof,
which writes one CPU profile per thread, vCPU workers included, into
bench/results/profile/<date>/, then prints the functions and files with the most self time in the
vCPU workers' populate loop, with the MMU model off and on. --summarize DIR prints that summary
for profiles written earlier. Options after -- go to bench faults (see \`stage2 bench --help\`).
Open a .cpuprofile in Chrome DevTools (Performance > Load profile) or speedscope.`);
  process.exit(0);
}
// `--summarize DIR`: only print the summary of profiles written earlier.
const only = args[0] === "--summarize" ? resolve(args[1] ?? ".") : null;
const dir = only ?? join(root, "bench/results/profile", new Date().toISOString().replace(/[:.]/g, "-"));
const benchArgs = args.length > 0 ? args : ["--vcpus", "1", "--reps", "3", "--size", "256M"];
if (only === null) profileBench();

function profileBench() {
  mkdirSync(dir, { recursive: true });
  const run = spawnSync(
    process.execPath,
    [
      "--cpu-prof",
      `--cpu-prof-dir=${dir}`,
      "--cpu-prof-interval=100",
      join(root, "dist/src/cli/main.js"),
      "bench",
      "faults",
      ...benchArgs,
    ],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
  if (run.status !== 0) {
    console.error(`profile: stage2 bench faults exited with ${run.status}`);
    process.exit(1);
  }
}

/** The vCPU workload's populate loop (not the benchmark's bare loop, also named populate). */
function isPopulate(node) {
  return node.callFrame.functionName === "populate" && node.callFrame.url.endsWith("/sim/workloads.js");
}

/** Self samples per function and per file inside the populate loop of one profile. */
function summarize(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Nodes under a `populate` frame (the timed loop), memoized.
  const inLoop = new Map();
  const underPopulate = (id) => {
    if (inLoop.has(id)) return inLoop.get(id);
    const n = byId.get(id);
    const p = parent.get(id);
    const v = isPopulate(n) || (p !== undefined && underPopulate(p));
    inLoop.set(id, v);
    return v;
  };
  const self = new Map();
  let total = 0;
  for (const id of profile.samples) {
    const n = byId.get(id);
    const name = n.callFrame.functionName;
    if (!underPopulate(id) && name !== "(garbage collector)") continue;
    const u = n.callFrame.url;
    const url = u.startsWith("file:") ? relative(root, fileURLToPath(u)) : u;
    const key = `${name || "(anonymous)"}\t${url}${url ? `:${n.callFrame.lineNumber + 1}` : ""}`;
    self.set(key, (self.get(key) ?? 0) + 1);
    total++;
  }
  return { self, total };
}

function merge(into, from) {
  for (const [k, v] of from.self) into.self.set(k, (into.self.get(k) ?? 0) + v);
  into.total += from.total;
}

const OFF = "MMU model off, no lock waits (shared, and exclusive at 1 vCPU)";
const WAITS = "MMU model off, waiting on mmu_lock (exclusive, 2+ vCPUs)";
const ON = "MMU model on";
const groups = Object.fromEntries([OFF, WAITS, ON].map((g) => [g, { self: new Map(), total: 0 }]));
for (const file of readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))) {
  const profile = JSON.parse(readFileSync(join(dir, file), "utf8"));
  if (!profile.nodes.some(isPopulate)) continue;
  const hit = (suffix) => profile.nodes.some((n) => n.hitCount > 0 && n.callFrame.url.endsWith(suffix));
  const group = hit("/mmu/hardware-walker.js") ? ON : hit("/sync/backoff.js") ? WAITS : OFF;
  merge(groups[group], summarize(profile));
}

const pct = (n, total) => `${((100 * n) / total).toFixed(1).padStart(5)}%`;
console.log(`\nprofiles: ${relative(root, dir)}`);
for (const [name, g] of Object.entries(groups)) {
  if (g.total === 0) continue;
  console.log(`\n## vCPU workers, ${name}: self time inside populate (${g.total} samples)`);
  const rows = [...g.self].sort((a, b) => b[1] - a[1]).slice(0, 25);
  for (const [k, v] of rows) {
    const [fn, where] = k.split("\t");
    console.log(`  ${pct(v, g.total)}  ${fn.padEnd(28)} ${where}`);
  }
  const files = new Map();
  for (const [k, v] of g.self) {
    const file = (k.split("\t")[1] ?? "").replace(/:\d+$/, "") || "(native / VM)";
    files.set(file, (files.get(file) ?? 0) + v);
  }
  console.log("  by file:");
  for (const [f, v] of [...files].sort((a, b) => b[1] - a[1]).slice(0, 12))
    console.log(`  ${pct(v, g.total)}  ${f}`);
}
