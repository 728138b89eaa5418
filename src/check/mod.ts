/** Checkers of a run: MMU coherence (break-before-make, stale TLB, use after free, dirty log), refcounts, leaks. */
export { type CheckInput, type Finding, findings, formatFindings } from "./checkers.js";
