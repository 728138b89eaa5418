/**
 * `stage2 bench <name>`: one benchmark, as a table with labels and units, or one JSON object with
 * the raw keys. `npm run bench` (bench/run-all.ts) runs them all next to the liburcu anchor.
 */
import { BENCHES, LABELS, resultText, stormsText } from "../../bench/mod.js";
import type { StormResult } from "../../bench/reclaim.js";
import { type CliIo, type Command, UsageError } from "../command.js";
import { parseFlags, quote } from "../parse.js";
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

${[...BENCHES.values()].map((b) => `  ${b.name.padEnd(8)} ${b.summary}`).join("\n")}

Options:
  --json    print one JSON object with the raw keys below (no table, no progress line)
  --quick   a short run (smoke test; figures are noisy)

Figures are wall-clock on this machine, the best of several rounds; compare them only with figures
from the same run (npm run bench prints them side by side with the liburcu anchor). A progress
line is shown on a terminal for runs longer than a second.

bench reclaim answers: when vCPUs replace populated tables with blocks as fast as they can, how
much table memory waits for a grace period at peak under each reclaim strategy, and how long does
each RCU callback run? Callback p50/p99 are upper bounds of power-of-two buckets (shown "≤").

JSON keys and what they mean (bench reclaim: one object per storm and strategy, see its table):
${legend()}`;

export const benchCommand: Command = {
  name: "bench",
  summary: `run one benchmark (${NAMES.join(", ")})`,
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseFlags(
      argv,
      { json: { type: "boolean" }, quick: { type: "boolean" } },
      true,
    );
    const [name, ...extra] = positionals;
    if (name === undefined) throw new UsageError(`missing benchmark name: one of ${NAMES.join(", ")}`);
    if (extra.length > 0) throw new UsageError(`unexpected argument ${quote(extra[0] as string)}`);
    const bench = BENCHES.get(name);
    if (!bench) throw new UsageError(`unknown benchmark ${quote(name)}: use one of ${NAMES.join(", ")}`);
    const json = values.json === true;
    const progress = startProgress(`stage2 bench ${name}`, undefined, { enabled: !json });
    let result: object;
    try {
      result = await bench.run({
        quick: values.quick === true,
        progress: (done, total, step) => progress.update(done, step, total),
      });
    } finally {
      progress.done();
    }
    if (json) io.out(JSON.stringify(result));
    else if ("storms" in result) io.out(stormsText((result as { storms: StormResult[] }).storms).join("\n"));
    else io.out(resultText(result).join("\n"));
    return 0;
  },
};
