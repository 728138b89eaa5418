/**
 * The report folder `stage2 run`, `compare` and `report` write: results.jsonl (one RunResult per
 * line), report.html (self-contained), and trace.json when traced. Each file is written under a
 * temporary name and renamed into place, so a failed write (a full disk) never leaves a truncated
 * file behind, and the error names the file.
 */
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { RunResult } from "../experiment/result.js";
import { renderHtml } from "../report/html.js";
import { UsageError } from "./command.js";

/** Writes `text` to `path` atomically (temporary name, then rename). */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, text);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    throw new Error(`Cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Creates `dir` (and its parents); a one-line UsageError when that is impossible. */
export async function ensureDir(dir: string): Promise<string> {
  const abs = resolve(dir);
  try {
    await mkdir(abs, { recursive: true });
  } catch (e) {
    throw new UsageError(
      `--out: cannot create ${abs}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  return abs;
}

/** A fresh folder name for runs that were given no --out: ./stage2-report-YYYYMMDD-HHMMSS. */
export function defaultOutDir(now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  const stamp = `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
  return `stage2-report-${stamp}`;
}

export function resultsJsonl(results: readonly RunResult[]): string {
  return results.map((r) => `${JSON.stringify(r)}\n`).join("");
}

/** Writes results.jsonl and report.html into `dir`; returns their paths. */
export async function writeReport(
  dir: string,
  results: readonly RunResult[],
): Promise<{ jsonl: string; html: string }> {
  const abs = await ensureDir(dir);
  const jsonl = join(abs, "results.jsonl");
  const html = join(abs, "report.html");
  await writeAtomic(jsonl, resultsJsonl(results));
  await writeAtomic(html, renderHtml([...results]));
  return { jsonl, html };
}
