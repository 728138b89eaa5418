// A quiet reporter for node's test runner (node --test --test-reporter=./scripts/test-reporter.mjs).
//
// While running: one "." per passing test and one "F" per failure, 80 to a line.
// At the end: every failure in full (the test's path of names, file:line, the error with its
// stack, and the output its test file printed, where randomized tests print their seeds), then the
// runner's closing counts exactly as node's TAP reporter prints them ("# tests N", "# pass N",
// "# fail N", ...) so CI reads them as before, and one plain line: "N passed, N failed".
import { inspect } from "node:util";

/** Lines of a failing file's own output kept for its report (the most recent ones). */
const OUTPUT_LINES = 60;
/** The runner's closing counts ("tests 306", "duration_ms 28372.8", ...). */
const SUMMARY = /^(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) [\d.]+$/;

function relative(file) {
  if (!file) return "?";
  const cwd = `${process.cwd()}/`;
  return file.startsWith(cwd) ? file.slice(cwd.length) : file;
}

function errorText(error) {
  // The runner wraps what the test threw in ERR_TEST_FAILURE; the cause is what matters.
  const inner = error?.code === "ERR_TEST_FAILURE" && error.cause !== undefined ? error.cause : error;
  if (inner instanceof Error) return inspect(inner, { depth: 6, colors: false });
  return typeof inner === "string" ? inner : inspect(inner, { depth: 6, colors: false });
}

function indent(text, prefix = "    ") {
  return text
    .replace(/\n+$/, "")
    .split("\n")
    .map((l) => `${prefix}${l}`)
    .join("\n");
}

export default async function* quietReporter(source) {
  const paths = new Map(); // file -> names by nesting, for "suite > test"
  const output = new Map(); // file -> recent lines it printed
  const failures = [];
  const diagnostics = [];
  let column = 0;
  const mark = (c) => {
    column++;
    return column % 80 === 0 ? `${c}\n` : c;
  };
  for await (const event of source) {
    const d = event.data ?? {};
    switch (event.type) {
      case "test:start": {
        const names = paths.get(d.file) ?? [];
        names.length = d.nesting;
        names[d.nesting] = d.name;
        paths.set(d.file, names);
        break;
      }
      case "test:stdout":
      case "test:stderr": {
        const lines = output.get(d.file) ?? [];
        lines.push(...String(d.message).replace(/\n$/, "").split("\n"));
        if (lines.length > OUTPUT_LINES) lines.splice(0, lines.length - OUTPUT_LINES);
        output.set(d.file, lines);
        break;
      }
      case "test:pass":
        if (d.details?.type !== "suite" && !d.skip && !d.todo) yield mark(".");
        break;
      case "test:fail": {
        // A suite that failed because a test in it failed adds nothing: the test is reported.
        if (d.details?.error?.failureType === "subtestsFailed") break;
        const names = (paths.get(d.file) ?? []).slice(0, d.nesting);
        failures.push({
          name: [...names, d.name].join(" > "),
          where: `${relative(d.file)}${d.line ? `:${d.line}` : ""}`,
          file: d.file,
          error: errorText(d.details?.error),
        });
        yield mark("F");
        break;
      }
      case "test:diagnostic":
        // The runner's closing counts are collected for the summary; a test's own diagnostic is
        // printed where it happens.
        if (d.nesting === 0 && SUMMARY.test(d.message)) diagnostics.push(d.message);
        else {
          yield `${column % 80 === 0 ? "" : "\n"}# ${d.message}\n`;
          column = 0;
        }
        break;
      default:
        break;
    }
  }
  if (column % 80 !== 0) yield "\n";
  const shownOutput = new Set();
  for (const [i, f] of failures.entries()) {
    yield `\nFAIL ${i + 1}/${failures.length}: ${f.name}\n  at ${f.where}\n${indent(f.error)}\n`;
    const lines = output.get(f.file);
    if (lines?.length && !shownOutput.has(f.file)) {
      shownOutput.add(f.file);
      yield `  output of ${relative(f.file)} (last ${lines.length} lines):\n${indent(lines.join("\n"))}\n`;
    }
  }
  const counts = new Map();
  for (const m of diagnostics) {
    const [key, value] = m.split(" ");
    counts.set(key, Number(value));
  }
  yield `\n${diagnostics.map((m) => `# ${m}`).join("\n")}\n`;
  const extra = ["cancelled", "skipped", "todo"]
    .filter((k) => (counts.get(k) ?? 0) > 0)
    .map((k) => `, ${counts.get(k)} ${k}`)
    .join("");
  yield `${counts.get("pass") ?? 0} passed, ${counts.get("fail") ?? 0} failed${extra}\n`;
}
