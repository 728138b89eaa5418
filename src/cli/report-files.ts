/**
 * The report folder `stage2 run`, `compare` and `report` write: results.jsonl (one RunResult per
 * line), report.html (self-contained), and trace.json when traced. Each file is written under a
 * temporary name and renamed into place, so a failed write (a full disk) never leaves a truncated
 * file behind, and the error names the file.
 */
import { constants } from "node:fs";
import { access, mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import type { RunResult } from "../experiment/result.js";
import { renderHtml } from "../report/html.js";
import { OutputError, UsageError } from "./command.js";

/** Writes `text` to `path` atomically (temporary name, then rename); OutputError (exit 1) on failure. */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, text);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    throw new OutputError(
      `cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
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

/**
 * Checks, before anything runs, that the output can be written: `--out` can be created as a
 * directory and `--trace`'s folder exists and takes files. Bad paths are bad input (exit 2) with
 * nothing run or written; only an empty `--out` folder this creates may remain.
 */
export async function checkOutputs(outDir: string | null, tracePath: string | null): Promise<void> {
  if (outDir !== null) {
    if (outDir === "") throw new UsageError("--out: needs a directory");
    await ensureDir(outDir);
  }
  if (tracePath !== null) {
    if (tracePath === "") throw new UsageError("--trace: needs a file name");
    const dir = dirname(resolve(tracePath));
    try {
      await access(dir, constants.W_OK);
      if (!(await stat(dir)).isDirectory())
        throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" });
    } catch (e) {
      throw new UsageError(
        `--trace: cannot write into ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
  }
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
  // The report first: a folder with results.jsonl has its report.html.
  await writeAtomic(html, renderHtml([...results]));
  await writeAtomic(jsonl, resultsJsonl(results));
  return { jsonl, html };
}
