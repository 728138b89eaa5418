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
export { type ChromeTrace, type PerfettoOptions, toChromeTrace } from "./perfetto.js";
export { parseRunResults, RUN_RESULT_SCHEMA_PATH, validateRunResult } from "./schema.js";
