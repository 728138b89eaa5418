/**
 * What `stage2 compare` and `stage2 report` print on the terminal: the answers first, wrapped,
 * then the comparison tables.
 */
import type { RunResult } from "../experiment/result.js";
import { answers } from "./answers.js";
import { compare, renderTable } from "./compare.js";

/** Greedy word wrap to `width` columns, continuation lines indented by `indent` spaces. */
export function wrap(text: string, width: number, indent = 0): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const pad = lines.length === 0 ? 0 : indent;
    if (line !== "" && pad + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(line);
  return lines.map((l, i) => (i === 0 ? l : " ".repeat(indent) + l)).join("\n");
}

/** The answers (numbered, wrapped to `width`), a blank line, then every workload's table. */
export function renderText(results: readonly RunResult[], width = 100): string {
  const numbered = answers(results).map((a, i) => wrap(`${i + 1}. ${a}`, width, 3));
  return `${numbered.join("\n")}\n\n${renderTable(compare(results))}\n`;
}
