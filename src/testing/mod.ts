/**
 * Test support shared by the unit tests under src/ and the multi-worker tests under test/, and
 * usable by anyone testing code built on stage2: page-table fixtures and an auditor that reads the
 * descriptors directly, independent of the walker.
 */
export {
  assertErr,
  assertNoLeak,
  assertSound,
  type AuditedLeaf,
  auditTree,
  type Fixture,
  type FixtureOptions,
  makeFixture,
  strayPages,
  type Translation,
  type TreeAudit,
  translate,
} from "./pgtable-harness.js";
