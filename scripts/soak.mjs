#!/usr/bin/env node
// Soak: runs `stage2 torture` for a given time in segments (each a fresh seed, printed), and writes
// a summary (JSON) of what ran: operations, races seen, faults injected, violations with their
// replay lines. Segments alternate no injected failures and --alloc-fail 0.2, and every fourth is a
// controlled one (PCT depth 3, --alloc-fail 0.2: vCPUs, host and RCU worker take turns). Needs
// `npm run build` first.
//
//   node scripts/soak.mjs --minutes 10 [--segment 120] [--out soak-summary.json] [--vcpus 2]
//   node scripts/soak.mjs --help
//
// Exit: 0 when no segment found a violation, 1 otherwise, 2 on bad arguments.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

let values;
try {
  ({ values } = parseArgs({
    options: {
      minutes: { type: "string", default: "10" },
      segment: { type: "string", default: "120" },
      out: { type: "string", default: "soak-summary.json" },
      vcpus: { type: "string", default: "2" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  }));
} catch (e) {
  console.error(`soak: ${e.message.split("\n")[0]}`);
  process.exit(2);
}
if (values.help) {
  console.log(`Usage: node scripts/soak.mjs --minutes N [--segment SECONDS] [--out FILE] [--vcpus N]

Runs \`stage2 torture\` for N minutes (default 10) in segments of SECONDS (default 120, at least
5), each with a fresh seed that it prints. Segments alternate no injected failures and
--alloc-fail 0.2; every fourth is a controlled one (PCT depth 3, --alloc-fail 0.2). Writes a
JSON summary to FILE (default soak-summary.json): operations, races seen, faults injected, and
each violation with its replay line. Needs \`npm run build\` first.

Exit status: 0 when no segment found a violation, 1 otherwise, 2 on bad arguments.`);
  process.exit(0);
}
const minutes = Number(values.minutes);
const segment = Number(values.segment);
if (!(minutes > 0) || !(segment >= 5) || !/^\d+$/.test(values.vcpus)) {
  console.error("soak: --minutes must be > 0, --segment >= 5 seconds, --vcpus a whole number");
  process.exit(2);
}
const main = fileURLToPath(new URL("../dist/src/cli/main.js", import.meta.url));
const started = new Date();
const deadline = Date.now() + minutes * 60_000;
const total = {
  started: started.toISOString(),
  minutes,
  segments: [],
  operations: 0,
  rounds: 0,
  faults: 0,
  races: { again: 0, casFailures: 0 },
  gracePeriods: 0,
  injected: {},
  nomemReported: 0,
  hostNomem: 0,
  gaveUp: 0,
  rcuAge: [0, 0, 0, 0],
  checksPassed: 0,
  checksRun: 0,
  configs: {},
  violations: [],
};
for (let i = 0; Date.now() < deadline - 5000; i++) {
  const seed = (Math.random() * 2 ** 32) >>> 0;
  const secs = Math.max(5, Math.min(segment, Math.floor((deadline - Date.now()) / 1000) - 5));
  const args = [
    "torture",
    "--seed",
    String(seed),
    "--seconds",
    String(secs),
    "--vcpus",
    values.vcpus,
    "--json",
  ];
  if (i % 4 === 3) args.push("--controlled", "--pct-depth", "3", "--alloc-fail", "0.2");
  else if (i % 2 === 1) args.push("--alloc-fail", "0.2");
  console.error(`soak: segment ${i}: stage2 ${args.join(" ")}`);
  const r = spawnSync(process.execPath, [main, ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 1 << 28,
  });
  let s;
  try {
    s = JSON.parse(r.stdout);
  } catch {
    total.violations.push({ segment: i, seed, checker: "process", detail: `exit ${r.status}, no summary` });
    total.segments.push({ seed, args: args.join(" "), exit: r.status });
    continue;
  }
  total.segments.push({
    seed,
    args: args.join(" "),
    exit: r.status,
    rounds: s.rounds,
    operations: s.operations,
  });
  total.operations += s.operations;
  total.rounds += s.rounds;
  total.faults += s.faults;
  total.races.again += s.races.again;
  total.races.casFailures += s.races.casFailures;
  total.gracePeriods += s.gracePeriods;
  total.nomemReported += s.nomemReported;
  total.hostNomem += s.hostNomem ?? 0;
  total.gaveUp += s.gaveUp ?? 0;
  total.checksPassed += s.checksPassed;
  total.checksRun += s.checksRun;
  s.rcuAge.forEach((n, k) => {
    total.rcuAge[k] += n;
  });
  for (const [k, v] of Object.entries(s.injected)) total.injected[k] = (total.injected[k] ?? 0) + v;
  for (const [k, v] of Object.entries(s.configs)) total.configs[k] = (total.configs[k] ?? 0) + v;
  for (const v of s.violations) total.violations.push({ segment: i, seed, ...v });
}
total.finished = new Date().toISOString();
writeFileSync(values.out, `${JSON.stringify(total, null, 2)}\n`);
console.log(JSON.stringify({ ...total, segments: total.segments.length }, null, 2));
console.error(`soak: summary written to ${values.out}`);
process.exit(total.violations.length > 0 ? 1 : 0);
