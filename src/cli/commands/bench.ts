/**
 * `stage2 bench <name>`: one benchmark, as a table with labels and units, or one JSON object with
 * the raw keys. `npm run bench` (bench/run-all.ts) runs them all next to the liburcu anchor.
 */
import type { Granule } from "../../arch/geometry.js";
import { BENCHES, type BenchOptions, LABELS, resultText } from "../../bench/mod.js";
import { type CliIo, type Command, UsageError } from "../command.js";
import { parseChoice, parseFlags, parseIntIn, parseNumber, quote } from "../parse.js";
import { startProgress } from "../progress.js";

const NAMES = [...BENCHES.keys()];

/** Every --json key under its benchmark's name, with its label and unit. */
function legend(): string {
  const width = Math.max(...[...LABELS.keys()].map((k) => k.length));
  const lines: string[] = [];
  for (const name of BENCHES.keys()) {
    const keys = [...LABELS.entries()].filter(([, l]) => l.bench === name);
    if (keys.length === 0) continue;
    lines.push(`  ${name}:`);
    for (const [key, l] of keys)
      lines.push(`    ${key.padEnd(width)}  ${l.label}${l.unit ? ` (${l.unit})` : ""}`);
  }
  return lines.join("\n");
}

const USAGE = `Usage: stage2 bench <${NAMES.join("|")}> [--json] [--quick]
       stage2 bench faults [--vcpus 1,2,4,8] [--ipa-bits 40] [--granule 4K] [--reps 7] [--size 512M]
                           [--rcu qsbr|mb]

${[...BENCHES.values()].map((b) => `  ${b.name.padEnd(8)} ${b.summary}`).join("\n")}

Options:
  --json    print one JSON object with the raw keys below (no table, no progress line)
  --quick   a short run (smoke test; figures are noisy)

bench faults only:
  --vcpus LIST     vCPU counts of the sweep, comma-separated (1 and 2 are always run; default 1,2,8):
                   prints the throughput curve for shared and exclusive modes
  --ipa-bits N     IPA size of the VM, 32..48 (default 40, KVM's default)
  --granule G      4K, 16K or 64K (default 4K)
  --reps N         counted rounds, 1..101 (default 7; the first, warm-up round is extra)
  --size BYTES     memory each vCPU populates per round (default 512M; --quick 16M)
  --rcu FLAVOR     RCU flavor of the VMs: qsbr (default; like the kernel's RCU, the read side is
                   free and a vCPU reports a quiescent state between faults) or mb (liburcu's
                   memory-barrier readers); shared 1 vCPU also runs under the other flavor

Figures are wall-clock on this machine; compare them only with figures from the same run (npm run
bench prints them side by side with the liburcu anchor). bench faults reports the median of its
rounds with the spread (min-max), and takes every ratio within a round. It ends with a WARNING
when its control (two 1-vCPU VMs at once over one) is under 1.3: the machine did not give the run
two cores, and its 2-vCPU figures are not comparable with other runs. A progress line is shown
on a terminal for runs longer than a second.

bench reclaim answers: when vCPUs replace populated tables with blocks as fast as they can, how
much table memory waits for a grace period at peak under each reclaim strategy, and how long does
each RCU callback run? Callback p50/p99 are upper bounds of power-of-two buckets (shown "≤").

JSON keys and what they mean (bench reclaim: one object per storm and strategy, see its table):
${legend()}`;

const GRANULES: Record<string, Granule> = { "4K": 4096, "16K": 16384, "64K": 65536 };

/** The bench faults flags given, checked (absent flags stay absent: the benchmark's defaults). */
function faultFlags(values: Record<string, unknown>): NonNullable<BenchOptions["faults"]> {
  const out: NonNullable<BenchOptions["faults"]> = {};
  if (typeof values.vcpus === "string")
    out.vcpus = values.vcpus.split(",").map((v) => parseIntIn(v.trim(), "--vcpus", 1, 64));
  if (typeof values["ipa-bits"] === "string")
    out.iaBits = parseIntIn(values["ipa-bits"], "--ipa-bits", 32, 48);
  if (typeof values.granule === "string")
    out.granule = GRANULES[parseChoice(values.granule, "--granule", ["4K", "16K", "64K"])];
  if (typeof values.reps === "string") out.reps = parseIntIn(values.reps, "--reps", 1, 101);
  if (typeof values.rcu === "string") out.rcu = parseChoice(values.rcu, "--rcu", ["qsbr", "mb"] as const);
  if (typeof values.size === "string") {
    const size = parseNumber(values.size, "--size");
    if (size < 2 ** 20 || size % 2 ** 20 !== 0)
      throw new UsageError(`--size: ${quote(values.size)} is not a whole number of MiB (at least 1M)`);
    out.bytesPerVcpu = size;
  }
  return out;
}

export const benchCommand: Command = {
  name: "bench",
  summary: `run one benchmark (${NAMES.join(", ")})`,
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseFlags(
      argv,
      {
        json: { type: "boolean" },
        quick: { type: "boolean" },
        vcpus: { type: "string" },
        "ipa-bits": { type: "string" },
        granule: { type: "string" },
        reps: { type: "string" },
        size: { type: "string" },
        rcu: { type: "string" },
      },
      true,
    );
    const [name, ...extra] = positionals;
    if (name === undefined) throw new UsageError(`missing benchmark name: one of ${NAMES.join(", ")}`);
    if (extra.length > 0) throw new UsageError(`unexpected argument ${quote(extra[0] as string)}`);
    const bench = BENCHES.get(name);
    if (!bench) throw new UsageError(`unknown benchmark ${quote(name)}: use one of ${NAMES.join(", ")}`);
    const faults = faultFlags(values);
    if (name !== "faults" && Object.keys(faults).length > 0)
      throw new UsageError(
        `--vcpus, --ipa-bits, --granule, --reps, --size and --rcu apply to bench faults only`,
      );
    const json = values.json === true;
    const progress = startProgress(`stage2 bench ${name}`, undefined, { enabled: !json });
    let result: object;
    try {
      result = await bench.run({
        quick: values.quick === true,
        progress: (done, total, step) => progress.update(done, step, total),
        faults,
      });
    } finally {
      progress.done();
    }
    if (json) io.out(JSON.stringify(result));
    else io.out((bench.text ?? resultText)(result).join("\n"));
    return 0;
  },
};
