/** The report layer: comparison tables, the answers, the HTML report, the trace and the schema. */
export { answers, DANGEROUS_BACKLOG_FRACTION } from "./answers.js";
export {
  type Comparison,
  type ComparisonRow,
  type ConfigColumn,
  compare,
  FIGURES,
  formatNumber,
  renderTable,
} from "./compare.js";
export { type HtmlOptions, renderHtml } from "./html.js";
export {
  type ChromeTrace,
  chromeTraceProblems,
  type PerfettoOptions,
  type TraceExpectations,
  toChromeTrace,
} from "./perfetto.js";
export { parseRunResults, RUN_RESULT_SCHEMA_PATH, readRunResultFiles, validateRunResult } from "./schema.js";
export { renderText } from "./text.js";
