/**
 * `stage2 report FILE...`: merges JSON lines written by `stage2 run --json` (or fanned out from
 * `stage2 compare --plan`) into the comparison table and the HTML report. Every line is validated
 * against the shipped schema first; a bad line is named (file and line) and nothing is written.
 */
import { ConfigError, shown } from "../../experiment/errors.js";
import { parseArgs } from "../../experiment/args.js";
import type { RunResult } from "../../experiment/result.js";
import { renderText } from "../../report/text.js";
import { parseRunResults } from "../../report/schema.js";
import type { CliIo, Command } from "../command.js";
import { checkOutputs, writeReport } from "../report-files.js";

const USAGE = `Usage: stage2 report FILE... [--out DIR]

Reads RunResult JSON lines (from \`stage2 run --json\`, \`stage2 compare --json\` or a batch of
\`stage2 compare --plan\` command lines; "-" reads standard input), checks each against the shipped
schema (schema/run-result.schema.json), and prints the answers to the review's questions and the
comparison table. With --out DIR it also writes DIR/results.jsonl (all runs merged) and
DIR/report.html.

Exit codes: 0 success, 2 bad input (a file that cannot be read, a line that is not a run result).`;

export const reportCommand: Command = {
  name: "report",
  summary: "merge run results (JSON lines) into the comparison table and the HTML report",
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const parsed = parseArgs(argv, "", new Map([["out", { value: true }]]), "options");
    if (parsed.positionals.length === 0) throw new ConfigError("name at least one FILE of JSON lines");
    const results: RunResult[] = [];
    for (const file of parsed.positionals) {
      let text: string;
      try {
        text = await io.readInput(file);
      } catch (e) {
        throw new ConfigError(
          `cannot read ${shown(file)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        );
      }
      try {
        results.push(...parseRunResults(text, file));
      } catch (e) {
        throw new ConfigError((e as Error).message);
      }
    }
    if (results.length === 0) throw new ConfigError("the files hold no run results");
    const out = parsed.long.get("out")?.[0];
    if (out !== undefined) await checkOutputs(out, null);
    io.out(renderText(results));
    if (out !== undefined) {
      const files = await writeReport(out, results);
      io.out(`Report: ${files.html}`);
    }
    return 0;
  },
};
