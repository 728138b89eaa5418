/**
 * The shipped JSON Schema of `RunResult` (schema/run-result.schema.json, draft 2020-12) and its
 * validator. `stage2 report` validates every line it merges; the tests validate `--json` output.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import { RESULT_SCHEMA_VERSION, type RunResult } from "../experiment/result.js";

/** Absolute path of the schema file (shipped in the package next to dist/). */
export const RUN_RESULT_SCHEMA_PATH = fileURLToPath(
  // This module runs as dist/src/report/schema.js: three levels below the package root.
  new URL("../../../schema/run-result.schema.json", import.meta.url),
);

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

let validator: ValidateFunction | undefined;

/** The schema as parsed JSON. */
export function runResultSchema(): Record<string, unknown> {
  return JSON.parse(readFileSync(RUN_RESULT_SCHEMA_PATH, "utf8")) as Record<string, unknown>;
}

function compiled(): ValidateFunction {
  if (validator === undefined) {
    const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
    ajv.addFormat("date-time", (s: string) => RFC3339.test(s) && !Number.isNaN(Date.parse(s)));
    validator = ajv.compile(runResultSchema());
  }
  return validator;
}

function describe(e: ErrorObject): string {
  const at = e.instancePath === "" ? "(root)" : e.instancePath;
  if (e.keyword === "additionalProperties")
    return `${at}: unknown property "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  if (e.keyword === "enum")
    return `${at}: ${e.message} (${(e.params as { allowedValues: unknown[] }).allowedValues.join(", ")})`;
  return `${at}: ${e.message}`;
}

/** Problems with `obj` as a RunResult, one "path: message" string each; empty when valid. */
export function validateRunResult(obj: unknown): string[] {
  const version = (obj as { schemaVersion?: unknown } | null)?.schemaVersion;
  if (typeof obj === "object" && obj !== null && version !== RESULT_SCHEMA_VERSION)
    return [
      `/schemaVersion: ${String(version)} is not supported (this stage2 reads version ${RESULT_SCHEMA_VERSION})`,
    ];
  const validate = compiled();
  if (validate(obj)) return [];
  return (validate.errors ?? []).map(describe);
}

/** Reads and merges the JSON-lines files given to `stage2 report`, in order. */
export function readRunResultFiles(paths: readonly string[]): RunResult[] {
  const out: RunResult[] = [];
  for (const path of paths) {
    const runs = parseRunResults(readFileSync(path, "utf8"), path);
    if (runs.length === 0) throw new TypeError(`Cannot read ${path}: it holds no run result`);
    out.push(...runs);
  }
  return out;
}

/**
 * Parses JSON lines (`stage2 run --json` output, possibly concatenated from many hosts) into run
 * results. Blank lines are skipped. Throws a TypeError naming `source:line` for any line that is
 * not JSON or not a valid RunResult.
 */
export function parseRunResults(text: string, source: string): RunResult[] {
  const out: RunResult[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (err) {
      throw new TypeError(`Cannot read ${source}:${i + 1}: not JSON (${(err as Error).message})`);
    }
    const problems = validateRunResult(obj);
    if (problems.length > 0)
      throw new TypeError(`Cannot read ${source}:${i + 1}: not a stage2 run result: ${problems.join("; ")}`);
    out.push(obj as RunResult);
  }
  return out;
}
